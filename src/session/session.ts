// One VPN session from login to logoff:
//
//   idle ─► authenticating ─► connecting ─► connected ─► disconnecting ─► disconnected
//              │ (XML auth over       │ (CONNECT,        │ (TUN ⇄ CSTP)
//              │  HTTPS, cookie)      │  tunnel config,  │
//              └──────────────────────┴──  TUN, routes) ─┴──► any failure: restore host, raise
//
// The session drives the pure protocol modules (auth, cstp) and owns every side effect: TLS
// sockets, the TUN device, routes, timers. Whatever it changed on the host is undone on every exit
// path: clean logoff, signal, or error.

import { hostname as osHostname } from 'node:os';
import { AcvpnError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { registerSecret } from '../core/redact.js';
import { AuthFlow, type AnswerSources } from '../auth/flow.js';
import { buildConnectRequest, mtuForBase } from '../cstp/connect-request.js';
import { parseConnectResponse } from '../cstp/connect-response.js';
import type { TunnelConfig } from '../cstp/tunnel-config.js';
import type { Posture } from '../posture/posture.js';
import { TlsConnection, type TlsSettings, type TlsTarget } from '../http/tls-connection.js';
import { headerValue } from '../http/response-parser.js';
import { openTun, type TunDevice } from '../net/tun/tun-device.js';
import { runIp } from '../net/ip-command.js';
import { configureTunLink } from '../net/link.js';
import { planRoutes } from '../net/routes/plan.js';
import { RouteManager } from '../net/routes/apply.js';
import { readHostRouting, routeToHeadend } from '../net/routes/host-state.js';
import { CstpChannel } from './cstp-channel.js';

export type SessionState = 'idle' | 'authenticating' | 'connecting' | 'connected' | 'disconnecting' | 'disconnected';

export interface SessionOptions {
  url: URL;
  userAgent: string;
  posture: Posture;
  tls: TlsSettings;
  answers: AnswerSources;
  group?: string;
  /** TUN device name to request. */
  interfaceName: string;
  /** Path of the route undo file, which lets `acvpn cleanup` repair what a killed process left. */
  undoFile?: string;
  log: Logger;
  /** Machine-readable events (state changes, banners, tunnel configuration). */
  emit(event: SessionEvent): void;
}

export type SessionEvent =
  | { event: 'state'; state: SessionState; reason?: string }
  | { event: 'banner'; text: string }
  | { event: 'tunnel'; interface: string; address?: string; mtu: number; routes: string[] };

const requestTimeoutMs = 30_000;

export class Session {
  private state: SessionState = 'idle';
  private tun: TunDevice | undefined;
  private routes: RouteManager | undefined;
  private channel: CstpChannel | undefined;
  private ended: ((error: AcvpnError | undefined) => void) | undefined;
  private readonly bannersSeen = new Set<string>();
  /** The TLS connection used for login and CONNECT, until the CSTP channel owns it. */
  private pendingConnection: TlsConnection | undefined;

  constructor(private readonly options: SessionOptions) {}

  /**
   * Runs the session until `signal` aborts (then logs off with a BYE) or the tunnel fails.
   * Resolves on a clean logoff; rejects with an AcvpnError otherwise. The host is restored in both cases.
   */
  async run(signal: AbortSignal): Promise<void> {
    const log = this.options.log;
    // A signal during login or CONNECT closes the connection in use, so the request in flight
    // ends at once instead of waiting for its timeout.
    const abortPending = (): void => {
      if (this.state === 'authenticating' || this.state === 'connecting') this.pendingConnection?.close();
    };
    signal.addEventListener('abort', abortPending, { once: true });
    try {
      const target = this.target();
      const { cookie, connection: authConnection } = await this.authenticate(target, signal);
      const { config, connection, rest } = await this.connectTunnel(target, cookie, authConnection, signal);
      await this.configureHost(config, connection.remoteAddress);
      await this.carryTraffic(config, connection, rest, signal);
      this.setState('disconnected', 'logged off');
    } catch (error) {
      if (signal.aborted && this.state !== 'connected' && this.state !== 'disconnecting') {
        // Stopped by the user before the tunnel was up: nothing was set up, so this is a clean end.
        log.info({ state: this.state }, 'stopped before the tunnel was up');
        this.setState('disconnected', 'stopped by a signal');
        return;
      }
      const failure = AcvpnError.is(error) ? error : new AcvpnError('INTERNAL', `internal error: ${String(error)}`, {}, { cause: error });
      this.setState('disconnected', failure.message);
      throw failure;
    } finally {
      signal.removeEventListener('abort', abortPending);
      await this.restoreHost();
      log.info('host restored: routes removed and TUN device closed');
    }
  }

  private target(): TlsTarget {
    const url = this.options.url;
    return { host: url.hostname.replace(/^\[|\]$/g, ''), port: url.port === '' ? 443 : Number(url.port) };
  }

  private setState(state: SessionState, reason?: string): void {
    this.state = state;
    this.options.emit({ event: 'state', state, reason });
  }

  // ── authenticating ────────────────────────────────────────────────────────────────────────

  private async authenticate(target: TlsTarget, signal: AbortSignal): Promise<{ cookie: string; connection: TlsConnection }> {
    const { log } = this.options;
    this.setState('authenticating');
    const flow = new AuthFlow({
      url: this.options.url,
      posture: this.options.posture,
      userAgent: this.options.userAgent,
      group: this.options.group,
      answers: this.options.answers,
    });

    let connection = await this.openConnection(target);
    // Later connections go to the same address, so DNS changes mid-login cannot redirect them.
    target.address = connection.remoteAddress;
    let request = flow.firstRequest();

    for (;;) {
      throwIfAborted(signal);
      log.debug({ path: request.path }, 'sending auth request');
      const { response } = await connection.exchange(serializeRequest(request, target), { timeoutMs: requestTimeoutMs });
      log.debug({ status: response.status }, 'auth response received');
      const step = await flow.next({ status: response.status, reason: response.reason, headers: response.headers, body: response.body.toString('utf8') });

      if (step.kind === 'complete') {
        registerSecret(step.cookie);
        for (const text of step.bannerLines) {
          this.bannersSeen.add(text);
          this.options.emit({ event: 'banner', text });
        }
        if (response.closes || !connection.isOpen) {
          connection.close();
          connection = await this.openConnection(target);
        }
        log.info({ user: this.options.answers.username }, 'authenticated');
        return { cookie: step.cookie, connection };
      }

      if (step.newConnection || response.closes || !connection.isOpen) {
        connection.close();
        connection = await this.openConnection(target);
      }
      request = step.request;
    }
  }

  private async openConnection(target: TlsTarget): Promise<TlsConnection> {
    const connection = await TlsConnection.open(target, this.options.tls, this.options.log);
    this.pendingConnection = connection;
    return connection;
  }

  // ── connecting ────────────────────────────────────────────────────────────────────────────

  private async connectTunnel(
    target: TlsTarget,
    cookie: string,
    connection: TlsConnection,
    signal: AbortSignal,
  ): Promise<{ config: TunnelConfig; connection: TlsConnection; rest: Buffer }> {
    const { log } = this.options;
    this.setState('connecting');
    throwIfAborted(signal);

    const pathToHeadend = await routeToHeadend(runIp, connection.remoteAddress);
    const baseMtu = (await readLinkMtu(pathToHeadend.dev)) ?? 1406;
    const ipv6Path = connection.remoteAddress.includes(':');
    const request = buildConnectRequest({
      host: hostHeader(target),
      userAgent: this.options.userAgent,
      cookie,
      hostname: osHostname(),
      posture: this.options.posture,
      baseMtu,
      mtu: mtuForBase(baseMtu, ipv6Path),
      addressTypes: 'IPv6,IPv4',
    });

    const { response, rest } = await connection.exchange(request, { headersOnly: true, timeoutMs: requestTimeoutMs });
    if (response.status !== 200) {
      connection.close();
      log.debug({ status: response.status, reason: headerValue(response.headers, 'X-Reason') }, 'CONNECT rejected');
    }
    const config = parseConnectResponse(response.status, response.reason, response.headers);
    for (const warning of config.warnings) log.warn(warning);
    log.info(
      {
        address: config.ipv4?.address,
        address6: config.ipv6?.address,
        mtu: config.mtu,
        dpd: config.dpdSeconds,
        keepalive: config.keepaliveSeconds,
        server: config.serverName,
      },
      'CSTP tunnel established',
    );
    // ocserv repeats the login banner in X-CSTP-Banner, so report that header only when its text is new.
    if (config.banner !== undefined && !this.bannersSeen.has(config.banner)) this.options.emit({ event: 'banner', text: config.banner });
    return { config, connection, rest };
  }

  // ── host configuration ────────────────────────────────────────────────────────────────────

  private async configureHost(config: TunnelConfig, headendIp: string): Promise<void> {
    const { log } = this.options;
    // Read the host's routes before the TUN device exists, so nothing of the tunnel shows up in them.
    const host = await readHostRouting(runIp, { tunName: this.options.interfaceName, headendIp });

    this.tun = openTun({ name: this.options.interfaceName });
    log.info({ interface: this.tun.name }, 'TUN device opened');
    await configureTunLink(runIp, { name: this.tun.name, ipv4: config.ipv4, ipv6: config.ipv6, mtu: config.mtu });

    const plan = planRoutes(config, { ...host, tunName: this.tun.name });
    for (const warning of plan.warnings) log.warn(warning);
    this.routes = new RouteManager(runIp, log, { undoFile: this.options.undoFile });
    await this.routes.apply(plan);

    const routeTexts = plan.routes.map((route) => `${route.network.address}/${route.network.prefixLength} ${route.via}`);
    log.info({ interface: this.tun.name, routes: routeTexts }, 'routes applied');
    this.options.emit({ event: 'tunnel', interface: this.tun.name, address: config.ipv4?.address ?? config.ipv6?.address, mtu: config.mtu, routes: routeTexts });
  }

  // ── connected: the data path ──────────────────────────────────────────────────────────────

  private async carryTraffic(config: TunnelConfig, connection: TlsConnection, rest: Buffer, signal: AbortSignal): Promise<void> {
    const { log } = this.options;
    const tun = this.tun;
    if (tun === undefined) throw new AcvpnError('INTERNAL', 'internal error: TUN device missing when the tunnel started');

    const finished = new Promise<AcvpnError | undefined>((resolve) => {
      this.ended = resolve;
    });

    const channel = new CstpChannel(
      connection.socket,
      // Oversize packets from the headend are normal after decompression on some headends, so the
      // receive side accepts more than the MTU; the pool covers bursts of a full TUN batch.
      { dpdSeconds: config.dpdSeconds, keepaliveSeconds: config.keepaliveSeconds, maxPacketBytes: Math.max(config.mtu, 1500), poolSize: 256 },
      {
        onPacket: (packet) => {
          tun.write(packet, 0, packet.length);
        },
        onClosed: (error) => this.ended?.(error),
        onBackpressure: (full) => (full ? tun.pause() : tun.resume()),
      },
      log,
    );
    this.channel = channel;

    tun.onPackets((buffer, lengths, count) => {
      let offset = 0;
      for (let index = 0; index < count; index += 1) {
        const length = lengths[index] ?? 0;
        channel.sendPacket(buffer, offset, length);
        offset += length;
      }
    });

    tun.onError((error) => {
      log.error({ err: error }, 'TUN device failed');
      this.ended?.(error);
    });
    channel.start(rest);
    this.setState('connected');

    const onAbort = (): void => {
      this.setState('disconnecting', 'signal received');
      void channel.disconnect('user logout', 2000).then(() => this.ended?.(undefined));
    };
    signal.addEventListener('abort', onAbort, { once: true });

    const error = await finished;
    signal.removeEventListener('abort', onAbort);
    const stats = channel.statistics;
    log.info({ ...stats }, 'CSTP channel closed');
    if (error !== undefined) throw error;
  }

  // ── restore ───────────────────────────────────────────────────────────────────────────────

  private async restoreHost(): Promise<void> {
    const { log } = this.options;
    this.channel?.close();
    this.channel = undefined;
    if (this.routes !== undefined) {
      try {
        await this.routes.restore();
      } catch (error) {
        log.error({ err: error }, 'restoring routes failed; run acvpn cleanup');
      }
      this.routes = undefined;
    }
    if (this.tun !== undefined) {
      this.tun.close();
      this.tun = undefined;
    }
  }
}

/** MTU of the device that leads to the headend: the base for the tunnel MTU request. */
async function readLinkMtu(dev: string): Promise<number | undefined> {
  try {
    const { stdout } = await runIp(['-json', 'link', 'show', 'dev', dev]);
    const links = JSON.parse(stdout) as Array<{ mtu?: number }>;
    return links[0]?.mtu;
  } catch {
    return undefined;
  }
}

function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw new AcvpnError('SESSION_TERMINATED', 'stopped by a signal before the tunnel was up');
}

function hostHeader(target: TlsTarget): string {
  const host = target.host.includes(':') ? `[${target.host}]` : target.host;
  return target.port === 443 ? host : `${host}:${target.port}`;
}

function serializeRequest(
  request: { method: string; path: string; headers: Array<[string, string]>; body: string },
  target: TlsTarget,
): string {
  const body = Buffer.from(request.body, 'utf8');
  const lines = [`${request.method} ${request.path} HTTP/1.1`, `Host: ${hostHeader(target)}`];
  for (const [name, value] of request.headers) lines.push(`${name}: ${value}`);
  lines.push(`Content-Length: ${body.length}`);
  return `${lines.join('\r\n')}\r\n\r\n${request.body}`;
}
