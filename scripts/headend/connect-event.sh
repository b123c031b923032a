#!/bin/sh
# ocserv connect-script and disconnect-script: appends one tab-separated line per event to
# connect-events.log beside this script. A non-zero exit would make ocserv reject the session,
# so write failures are ignored.
log="$(dirname "$0")/connect-events.log"
printf 'time=%s\tREASON=%s\tUSERNAME=%s\tGROUPNAME=%s\tDEVICE_TYPE=%s\tDEVICE_PLATFORM=%s\tIP_REAL=%s\tIP_REMOTE=%s\tDEVICE=%s\n' \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${REASON:-}" "${USERNAME:-}" "${GROUPNAME:-}" \
  "${DEVICE_TYPE:-}" "${DEVICE_PLATFORM:-}" "${IP_REAL:-}" "${IP_REMOTE:-}" "${DEVICE:-}" \
  >>"$log" 2>/dev/null || true
exit 0
