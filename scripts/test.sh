#!/usr/bin/env bash
# Installs what the tests need, then runs the whole test suite: unit tests and the integration
# tests against a real ocserv in network namespaces. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
npm test
