// Applies a tunnel configuration to the host (TUN address and MTU, routes, DNS) and takes it back.
// Called once when the tunnel first comes up and again after each reconnect, because the headend
// may assign a different address, MTU, routes or DNS, and a network change may have removed the
// routes that went through the old path.

import type { Logger } from '../core/log.js';
import { formatNetwork } from '../core/ip.js';
import type { TunnelConfig } from '../cstp/tunnel-config.js';
import { runIp } from '../net/ip-command.js';
import { configureTunLink } from '../net/link.js';
import { planRoutes } from '../net/routes/plan.js';
import { RouteManager } from '../net/routes/apply.js';
import { readHostRouting } from '../net/routes/host-state.js';
import { startForwardedDns, type ForwardedDns } from '../net/dns/host-dns.js';
import { applyResolved, detectResolved, revertResolved, runCommand } from '../net/dns/resolved.js';
import { decideDnsRouting } from '../net/dns/routing.js';
import { buildScriptEnvironment } from '../net/script/environment.js';
import { runVpncScript } from '../net/script/run-script.js';

export interface HostConfigurationOptions {
  tunName: string;
  /** Route undo file, for `acvpn cleanup` after a killed process. */
  undoFile?: string;
  /** Path of the copy of the original resolv.conf, kept while the tunnel is up. */
  resolvConfBackup: string;
  /** False leaves the host's DNS alone (--no-dns). */
  manageDns: boolean;
  /**
   * A vpnc-script-compatible program (--script). When set, it configures the TUN link, routes and
   * DNS instead of acvpn, with the environment OpenConnect gives it, so existing scripts keep working.
   */
  script?: { path: string; logLevel: number };
  log: Logger;
}

export interface AppliedConfiguration {
  routes: string[];
  dns: 'forwarder' | 'systemd-resolved' | 'unchanged' | 'script';
}

// vpnc-script normally finishes in well under a second; a hung script must not hang the session.
const scriptTimeoutMs = 30_000;

export class HostConfiguration {
  private readonly routes: RouteManager;
  private forwardedDns: ForwardedDns | undefined;
  private resolvedLink: string | undefined;
  /** The configuration last passed to the script, so that disconnect gets the same environment. */
  private scriptState: { config: TunnelConfig; headendIp: string } | undefined;

  constructor(private readonly options: HostConfigurationOptions) {
    this.routes = new RouteManager(runIp, options.log, { undoFile: options.undoFile });
  }

  /**
   * Configures the TUN link, the routes and DNS for `config`. On a second call the previous routes
   * and DNS are taken back first, so the host matches the newest configuration exactly.
   */
  async apply(config: TunnelConfig, headendIp: string): Promise<AppliedConfiguration> {
    const { log, tunName } = this.options;
    if (this.options.script !== undefined) {
      const reason = this.scriptState === undefined ? 'connect' : 'reconnect';
      this.scriptState = { config, headendIp };
      await this.runScript(reason);
      return { routes: [`configured by ${this.options.script.path}`], dns: 'script' };
    }
    await this.routes.restore();
    await this.restoreDns();

    // The host's own routes are read with the tunnel routes removed, so the plan sees the
    // original paths (a reconnect may follow a change of network).
    const host = await readHostRouting(runIp, { tunName, headendIp });
    await configureTunLink(runIp, { name: tunName, ipv4: config.ipv4, ipv6: config.ipv6, mtu: config.mtu });

    const plan = planRoutes(config, host);
    for (const warning of plan.warnings) log.warn(warning);
    await this.routes.apply(plan);
    const routes = plan.routes.map((route) => `${formatNetwork(route.network)} ${route.via}`);

    const dns = this.options.manageDns ? await this.applyDns(config) : 'unchanged';
    return { routes, dns };
  }

  /** Runs the script with reason attempt-reconnect before a reconnect (no-op without a script). */
  async beforeReconnect(): Promise<void> {
    if (this.options.script !== undefined && this.scriptState !== undefined) await this.runScript('attempt-reconnect');
  }

  /** Runs the script with reason pre-init, before the TUN device exists (no-op without a script). */
  async beforeTunDevice(config: TunnelConfig, headendIp: string): Promise<void> {
    if (this.options.script === undefined) return;
    const env = buildScriptEnvironment('pre-init', { config, headendIp, pid: process.pid, logLevel: this.options.script.logLevel });
    await runVpncScript(this.options.script.path, env, { timeoutMs: scriptTimeoutMs, log: this.options.log });
  }

  private async runScript(reason: 'connect' | 'reconnect' | 'attempt-reconnect' | 'disconnect'): Promise<void> {
    const script = this.options.script!;
    const state = this.scriptState!;
    const env = buildScriptEnvironment(reason, {
      config: state.config,
      tunName: this.options.tunName,
      headendIp: state.headendIp,
      pid: process.pid,
      logLevel: script.logLevel,
      mtu: state.config.mtu,
    });
    this.options.log.info({ script: script.path, reason }, 'running the vpnc-script');
    await runVpncScript(script.path, env, { timeoutMs: scriptTimeoutMs, log: this.options.log });
  }

  /** Removes every route and DNS change this object made. Safe to call twice. */
  async restore(): Promise<void> {
    const { log } = this.options;
    if (this.options.script !== undefined) {
      if (this.scriptState === undefined) return;
      try {
        await this.runScript('disconnect');
      } catch (error) {
        log.error({ err: error }, 'the vpnc-script failed on disconnect');
      }
      this.scriptState = undefined;
      return;
    }
    try {
      await this.restoreDns();
    } catch (error) {
      log.error({ err: error }, 'restoring DNS failed; run acvpn cleanup');
    }
    try {
      await this.routes.restore();
    } catch (error) {
      log.error({ err: error }, 'restoring routes failed; run acvpn cleanup');
    }
  }

  private async applyDns(config: TunnelConfig): Promise<AppliedConfiguration['dns']> {
    const { log, tunName } = this.options;
    const fullTunnel = config.splitInclude.length === 0;

    if (await detectResolved()) {
      const routing = decideDnsRouting(config, fullTunnel);
      for (const warning of routing.warnings) log.warn(warning);
      await applyResolved(runCommand, tunName, routing, config.dnsServers);
      this.resolvedLink = tunName;
      log.info({ mode: routing.mode, domains: routing.tunnelDomains }, 'split DNS configured through systemd-resolved');
      return 'systemd-resolved';
    }

    this.forwardedDns = await startForwardedDns({
      config,
      fullTunnel,
      resolvConfPath: '/etc/resolv.conf',
      backupPath: this.options.resolvConfBackup,
      log,
    });
    const routing = this.forwardedDns.routing;
    for (const warning of routing.warnings) log.warn(warning);
    log.info({ mode: routing.mode, domains: routing.tunnelDomains }, 'split DNS configured through the acvpn forwarder');
    return 'forwarder';
  }

  private async restoreDns(): Promise<void> {
    const forwarded = this.forwardedDns;
    this.forwardedDns = undefined;
    if (forwarded !== undefined) {
      const { restore, stats } = await forwarded.stop();
      this.options.log.debug({ restore, ...stats }, 'DNS forwarder stopped');
    }
    const link = this.resolvedLink;
    this.resolvedLink = undefined;
    if (link !== undefined) await revertResolved(runCommand, link);
  }
}
