// The forwarder hook-up for hosts without systemd-resolved: start the forwarder on the host
// resolvers taken from resolv.conf, then point resolv.conf at it; on stop, the reverse.
//
// The order matters. A backup left by a killed run is restored before resolv.conf is read, so
// the host resolvers are the real ones and not the dead forwarder. The forwarder listens before
// resolv.conf names it, so no lookup meets a closed port.

import type { TunnelConfig } from '../../cstp/tunnel-config.js';
import type { Logger } from '../../core/log.js';
import { DnsForwarder, upstreamsFromAddresses, type DnsForwarderStats } from './forwarder.js';
import { applyResolvConf, readResolvConf, restoreResolvConf, type RestoreResult } from './resolv-conf.js';
import { decideDnsRouting, type DnsRouting } from './routing.js';

export interface ForwardedDnsOptions {
  config: TunnelConfig;
  /** True when the tunnel carries the default route (no split-include networks). */
  fullTunnel: boolean;
  /** The file the resolver reads, normally /etc/resolv.conf. */
  resolvConfPath: string;
  /** Path of the copy of the original resolv.conf kept while the tunnel is up (in the run directory). */
  backupPath: string;
  /** 127.0.0.1 when omitted. */
  listenAddress?: string;
  /** 53 when omitted; resolv.conf cannot name another port, so only tests change it. */
  listenPort?: number;
  log: Logger;
}

export interface ForwardedDns {
  routing: DnsRouting;
  forwarder: DnsForwarder;
  /** Stops the forwarder and restores resolv.conf. Safe to call twice. */
  stop(): Promise<{ restore: RestoreResult; stats: DnsForwarderStats }>;
}

/**
 * Starts split DNS through the forwarder. Raises AcvpnError 'ENV_COMMAND_FAILED' when the port
 * is taken or resolv.conf cannot be written; the forwarder is stopped again in that case.
 */
export async function startForwardedDns(options: ForwardedDnsOptions): Promise<ForwardedDns> {
  const log = options.log.child({ component: 'dns' });
  const routing = decideDnsRouting(options.config, options.fullTunnel);
  for (const warning of routing.warnings) log.warn(warning);

  const stale = await restoreResolvConf(options.resolvConfPath, options.backupPath);
  if (stale !== 'no-backup') log.warn({ path: options.resolvConfPath, result: stale }, 'found a resolv.conf backup from an earlier run and restored it');

  const listenAddress = options.listenAddress ?? '127.0.0.1';
  const host = await readResolvConf(options.resolvConfPath);
  const forwarder = new DnsForwarder({
    listenAddress,
    listenPort: options.listenPort ?? 53,
    routing,
    tunnelServers: upstreamsFromAddresses(options.config.dnsServers),
    hostServers: upstreamsFromAddresses(host.nameservers),
    log: options.log,
  });
  await forwarder.start();

  try {
    await applyResolvConf(options.resolvConfPath, listenAddress, routing.searchDomains, options.backupPath);
  } catch (error) {
    await forwarder.stop();
    throw error;
  }

  let stopped: Promise<{ restore: RestoreResult; stats: DnsForwarderStats }> | undefined;
  return {
    routing,
    forwarder,
    stop() {
      stopped ??= (async () => {
        // resolv.conf first, so that no lookup is sent to a forwarder that has gone.
        const restore = await restoreResolvConf(options.resolvConfPath, options.backupPath);
        if (restore === 'replaced-by-other') log.warn({ path: options.resolvConfPath }, 'resolv.conf was replaced by another program while the VPN was up; kept it');
        await forwarder.stop();
        return { restore, stats: forwarder.stats() };
      })();
      return stopped;
    },
  };
}
