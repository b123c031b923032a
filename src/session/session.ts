// One VPN session from login to logoff:
//
//   idle ─► authenticating ─► connecting ─► connected ─► disconnecting ─► disconnected
//                 ▲                              │  ▲
//                 │ (cookie refused,             ▼  │ (CONNECT again with the same cookie)
//                 │  credentials at hand)     reconnecting
//                 └──────────────────────────────┘
//
// The session drives the pure protocol modules (auth, cstp) and owns every side effect: TLS
// sockets, the TUN device, routes, DNS, timers. The TUN device stays open across reconnects, so
// the tunnel address and the applications' sockets survive a short network loss. Whatever the
// session changed on the host is undone on every exit path: clean logoff, signal, or error.

import { randomBytes } from 'node:crypto';
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
import { openTun, type TunDevice } from '../net/tun/tun-device.js';
import { runIp } from '../net/ip-command.js';
import { routeToHeadend } from '../net/routes/host-state.js';
import { LinkMonitor } from '../net/link-monitor.js';
import { CstpChannel } from './cstp-channel.js';
import { DtlsChannel } from './dtls-channel.js';
import { appIdToSessionId, derivePsk } from '../dtls/psk.js';
import { FIPS_SUITES } from '../dtls/suites.js';
import { DataPath } from './data-path.js';
import { HostConfiguration } from './host-config.js';
import { resolvConfBackupPath, undoFilePath } from './host-setup.js';
import { defaultReconnectPolicy, isRecoverable, reconnectDelayMs, shouldGiveUp, type ReconnectPolicy } from './reconnect.js';

export type SessionState = 'idle' | 'authenticating' | 'connecting' | 'connected' | 'reconnecting' | 'disconnecting' | 'disconnected';

export interface SessionOptions {
  url: URL;
  userAgent: string;
  posture: Posture;
  tls: TlsSettings;
  answers: AnswerSources;
  group?: string;
  /** TUN device name to request. */
  interfaceName: string;
  /** Directory for the route undo file and the resolv.conf backup. */
  runDir: string;
  /** False leaves the host's DNS alone. */
  manageDns: boolean;
  /** False keeps all traffic on CSTP (--no-dtls). */
  dtls: boolean;
  /** vpnc-script-compatible program that configures routes and DNS instead of acvpn. */
  script?: { path: string; logLevel: number };
  reconnect: ReconnectPolicy;
  log: Logger;
  /** Machine-readable events (state changes, banners, tunnel configuration). */
  emit(event: SessionEvent): void;
}

export interface SessionSnapshot {
  state: SessionState;
  channel: 'dtls' | 'cstp' | 'none';
  interface?: string;
  address?: string;
  address6?: string;
  dnsServers: string[];
  mtu?: number;
  dtlsSuite?: string;
  /** When the current tunnel came up (ISO 8601). */
  connectedSince?: string;
  reconnects: number;
  /** The headend drops the session after this long without tunnel data (X-CSTP-Idle-Timeout). */
  idleTimeoutSeconds?: number;
  /** When the headend will end the session for good (X-CSTP-Session-Timeout, ISO 8601). */
  sessionExpiresAt?: string;
  cstp?: { packetsSent: number; bytesSent: number; packetsReceived: number; bytesReceived: number; packetsDropped: number; dpdRequestsSent: number };
  dtls?: { packetsSent: number; bytesSent: number; packetsReceived: number; bytesReceived: number; packetsDropped: number; dpdRequestsSent: number };
  droppedWithoutChannel: number;
}

export type SessionEvent =
  | { event: 'state'; state: SessionState; reason?: string }
  | { event: 'banner'; text: string }
  | { event: 'tunnel'; interface: string; address?: string; mtu: number; routes: string[]; dns: string }
  | { event: 'channel'; channel: 'cstp' | 'dtls' | 'none' };

/** The end of one tunnel: a logoff requested by the user, or a failure. */
type TunnelOutcome = { kind: 'logoff' } | { kind: 'failed'; error: AcvpnError };

interface Tunnel {
  connection: TlsConnection;
  config: TunnelConfig;
  /** MTU of the TUN device: the CSTP MTU, lowered to what DTLS carries when DTLS is offered. */
  tunMtu: number;
  /** The link MTU toward the headend that the CONNECT request announced. */
  baseMtu: number;
  /** Bytes that arrived together with the CONNECT reply (the first CSTP frames). */
  rest: Buffer;
}

const requestTimeoutMs = 30_000;

// ocserv ignores a new UDP association for the same session within 3 s of the last one, and a
// failing path should not be probed continuously; OpenConnect waits 60 s.
const dtlsRetryDelayMs = 10_000;

// The largest per-record overhead of the offered suites: 13-byte header, 8-byte explicit nonce and
// 16-byte tag for AES-GCM, plus the AnyConnect type byte. ChaCha20-Poly1305 needs 8 bytes less.
const dtlsWorstPacketOverhead = 13 + 8 + 16 + 1;

export class Session {
  private state: SessionState = 'idle';
  private tun: TunDevice | undefined;
  private dataPath: DataPath | undefined;
  private host: HostConfiguration | undefined;
  private channel: CstpChannel | undefined;
  private linkMonitor: LinkMonitor | undefined;
  private readonly bannersSeen = new Set<string>();
  /** The TLS connection used for login and CONNECT, until the CSTP channel owns it. */
  private pendingConnection: TlsConnection | undefined;
  /** Wakes a reconnect back-off early (a link came up) or ends a tunnel (a link went down). */
  private networkChanged: (() => void) | undefined;
  private lastConfig: TunnelConfig | undefined;
  private dtlsChannel: DtlsChannel | undefined;
  private connectedSinceMs: number | undefined;
  private reconnects = 0;
  /** The device that carries the TLS connection to the headend, watched for link loss. */
  private headendDevice: string | undefined;

  constructor(private readonly options: SessionOptions) {}

  get currentState(): SessionState {
    return this.state;
  }

  /**
   * Replaces the current tunnel with a new one (new TLS connection and CONNECT with the same
   * cookie), as after a network change. False when no tunnel is up.
   */
  reconnectNow(): boolean {
    if (this.state !== 'connected' || this.channel === undefined) return false;
    this.options.log.info('reconnect requested');
    this.channel.close(new AcvpnError('NETWORK_UNREACHABLE', 'reconnect requested', { rekey: true }));
    return true;
  }

  /** Returns a snapshot for status and statistics requests: state, addresses, channel, counters. */
  snapshot(): SessionSnapshot {
    const config = this.lastConfig;
    return {
      state: this.state,
      channel: this.dataPath?.activeChannel ?? 'none',
      interface: this.tun?.name,
      address: config?.ipv4?.address,
      address6: config?.ipv6?.address,
      dnsServers: config?.dnsServers ?? [],
      mtu: config?.mtu,
      dtlsSuite: this.dtlsChannel?.established ? this.dtlsChannel.suiteName : undefined,
      connectedSince: this.connectedSinceMs === undefined ? undefined : new Date(this.connectedSinceMs).toISOString(),
      reconnects: this.reconnects,
      idleTimeoutSeconds: config?.idleTimeoutSeconds,
      sessionExpiresAt:
        config?.sessionTimeoutSeconds === undefined || this.connectedSinceMs === undefined
          ? undefined
          : new Date(this.connectedSinceMs + config.sessionTimeoutSeconds * 1000).toISOString(),
      cstp: this.channel === undefined ? undefined : { ...this.channel.statistics },
      dtls: this.dtlsChannel === undefined ? undefined : { ...this.dtlsChannel.statistics },
      droppedWithoutChannel: this.dataPath?.statistics.droppedWithoutChannel ?? 0,
    };
  }

  /**
   * Runs the session until `signal` aborts (then logs off with a BYE) or the tunnel fails for
   * good. Resolves on a clean logoff; rejects with an AcvpnError otherwise. The host is restored
   * in both cases.
   */
  async run(signal: AbortSignal): Promise<void> {
    const log = this.options.log;
    // A signal during login or CONNECT closes the connection in use, so the request in flight
    // ends at once instead of waiting for its timeout.
    const abortPending = (): void => {
      this.pendingConnection?.close();
      this.networkChanged?.();
    };
    signal.addEventListener('abort', abortPending, { once: true });

    try {
      const target = this.target();
      const login = await this.authenticate(target, signal);
      let cookie = login.cookie;
      let connection: TlsConnection | undefined = login.connection;
      let lostAtMs: number | undefined;
      let lastError: AcvpnError | undefined;
      let attempt = 0;

      for (;;) {
        if (connection === undefined) {
          connection = await this.reconnectWithBackoff(target, signal, lostAtMs ?? Date.now(), lastError, () => attempt++);
          if (connection === undefined) break;
        }

        let outcome: TunnelOutcome;
        try {
          const tunnel = await this.connectTunnel(target, cookie, connection, signal);
          await this.configureHost(tunnel, target);
          lostAtMs = undefined;
          attempt = 0;
          outcome = await this.carryTraffic(tunnel, signal);
        } catch (error) {
          outcome = { kind: 'failed', error: asAcvpnError(error) };
        }
        connection = undefined;
        if (outcome.kind === 'logoff' || signal.aborted) break;

        lastError = outcome.error;
        if (lastError.code === 'COOKIE_REJECTED') {
          // The headend forgot the session (restarted, or the cookie expired). A new login needs
          // the answers again, and only secrets that can be given twice (not one-time codes) are
          // at hand.
          if (!this.canLogInAgain()) {
            throw new AcvpnError('COOKIE_REJECTED', 'the headend no longer accepts the session cookie (session expired); connect again to log in');
          }
          log.warn('the headend rejected the session cookie; logging in again');
          this.setState('reconnecting', lastError.message);
          ({ cookie, connection } = await this.authenticate(target, signal));
          continue;
        }
        if (!isRecoverable(lastError)) throw lastError;
        if (lastError.details.rekey === true) {
          // A new-tunnel rekey or a requested reconnect: a fresh TLS connection and CONNECT with
          // the same cookie, at once.
          this.reconnects += 1;
          this.setState('reconnecting', lastError.message);
          connection = await this.openConnection(target).catch(() => undefined);
          if (connection !== undefined) continue;
        }
        lostAtMs ??= Date.now();
        this.reconnects += 1;
        this.setState('reconnecting', lastError.message);
        await this.host?.beforeReconnect().catch((error: unknown) => log.warn({ err: error }, 'the vpnc-script failed on attempt-reconnect'));
      }
      this.setState('disconnected', signal.aborted ? 'logged off' : 'ended');
    } catch (error) {
      const failure = asAcvpnError(error);
      if (signal.aborted && this.state !== 'connected' && this.state !== 'disconnecting') {
        // Stopped by the user before or between tunnels: a clean end.
        log.info({ state: this.state }, 'stopped by a signal');
        this.setState('disconnected', 'stopped by a signal');
        return;
      }
      // The reason is the stable code; the message itself goes to the error line.
      this.setState('disconnected', failure.code);
      throw failure;
    } finally {
      signal.removeEventListener('abort', abortPending);
      const configured = this.tun !== undefined;
      await this.restoreHost();
      if (configured) log.info('host restored: routes and DNS removed, TUN device closed');
    }
  }

  private target(): TlsTarget {
    const url = this.options.url;
    return { host: url.hostname.replace(/^\[|\]$/g, ''), port: url.port === '' ? 443 : Number(url.port) };
  }

  private setState(state: SessionState, reason?: string): void {
    if (this.state === state && reason === undefined) return;
    this.state = state;
    this.options.emit({ event: 'state', state, reason });
  }

  private canLogInAgain(): boolean {
    const answers = this.options.answers;
    return answers.interactive || answers.envPassword !== undefined || answers.formEntries.size > 0;
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

  private async connectTunnel(target: TlsTarget, cookie: string, connection: TlsConnection, signal: AbortSignal): Promise<Tunnel> {
    const { log } = this.options;
    if (this.state !== 'reconnecting') this.setState('connecting');
    throwIfAborted(signal);

    const pathToHeadend = await routeToHeadend(runIp, connection.remoteAddress);
    this.headendDevice = pathToHeadend.dev;
    const baseMtu = (await readLinkMtu(pathToHeadend.dev)) ?? 1406;
    const ipv6Path = connection.remoteAddress.includes(':');
    const previous = this.lastConfig;
    const request = buildConnectRequest({
      host: hostHeader(target),
      userAgent: this.options.userAgent,
      cookie,
      hostname: osHostname(),
      posture: this.options.posture,
      baseMtu,
      mtu: mtuForBase(baseMtu, ipv6Path),
      addressTypes: 'IPv6,IPv4',
      // PSK-NEGOTIATE only: acvpn does not speak the legacy resumption DTLS. ocserv enables DTLS
      // only when it also receives a master secret, so a random one goes along (never used).
      dtls: this.options.dtls ? { masterSecretHex: randomSecretHex(), cipherSuites: 'PSK-NEGOTIATE' } : undefined,
      // On a reconnect, ask for the addresses the applications are already using.
      previousAddresses: [previous?.ipv4?.address, previous?.ipv6?.address].filter((address): address is string => address !== undefined),
    });

    const { response, rest } = await connection.exchange(request, { headersOnly: true, timeoutMs: requestTimeoutMs });
    if (response.status !== 200) connection.close();
    const config = parseConnectResponse(response.status, response.reason, response.headers);
    for (const warning of config.warnings) log.warn(warning);
    log.info(
      {
        address: config.ipv4?.address,
        address6: config.ipv6?.address,
        mtu: config.mtu,
        dpd: config.dpdSeconds,
        keepalive: config.keepaliveSeconds,
        idleTimeout: config.idleTimeoutSeconds,
        sessionTimeout: config.sessionTimeoutSeconds,
        rekey: config.rekeySeconds === undefined ? undefined : `${config.rekeyMethod} every ${config.rekeySeconds} s`,
        server: config.serverName,
      },
      'CSTP tunnel established',
    );
    // ocserv repeats the login banner in X-CSTP-Banner, so report that header only when its text is new.
    if (config.banner !== undefined && !this.bannersSeen.has(config.banner)) {
      this.bannersSeen.add(config.banner);
      this.options.emit({ event: 'banner', text: config.banner });
    }
    let tunMtu = config.mtu;
    if (this.useDtls(config)) {
      const linkMtu = config.baseMtu ?? baseMtu;
      const dtlsMtu = linkMtu - (ipv6Path ? 40 : 20) - 8 - dtlsWorstPacketOverhead;
      tunMtu = Math.max(576, Math.min(config.mtu, dtlsMtu));
    }
    return { connection, config, rest, tunMtu, baseMtu };
  }

  private useDtls(config: TunnelConfig): boolean {
    return this.options.dtls && config.dtls?.appId !== undefined && config.dtls.cipherSuite === 'PSK-NEGOTIATE';
  }

  // ── host configuration ────────────────────────────────────────────────────────────────────

  private async configureHost(tunnel: Tunnel, target: TlsTarget): Promise<void> {
    const { log } = this.options;
    const { config } = tunnel;

    if (this.tun === undefined) {
      const headendIp = tunnel.connection.remoteAddress || target.address || target.host;
      const host = new HostConfiguration({
        tunName: this.options.interfaceName,
        undoFile: undoFilePath(this.options.runDir),
        resolvConfBackup: resolvConfBackupPath(this.options.runDir),
        manageDns: this.options.manageDns,
        script: this.options.script,
        log,
      });
      await host.beforeTunDevice({ ...config, mtu: tunnel.tunMtu }, headendIp);
      this.tun = openTun({ name: this.options.interfaceName });
      this.host = host;
      log.info({ interface: this.tun.name }, 'TUN device opened');
      this.dataPath = new DataPath(this.tun);
      this.tun.onError((error) => {
        log.error({ err: error }, 'TUN device failed');
        this.channel?.close();
      });
      this.startLinkMonitor();
    } else if (this.lastConfig !== undefined && !sameAddresses(this.lastConfig, config)) {
      log.warn(
        { before: this.lastConfig.ipv4?.address, after: config.ipv4?.address },
        'the headend assigned a different tunnel address after the reconnect; connections using the old one will break',
      );
    }

    // One TUN MTU that fits both channels, so a switch between DTLS and CSTP never needs a change.
    const applied = await this.host!.apply({ ...config, mtu: tunnel.tunMtu }, tunnel.connection.remoteAddress || target.address || target.host);
    this.lastConfig = config;
    log.info({ interface: this.tun.name, routes: applied.routes, dns: applied.dns }, 'routes applied');
    this.options.emit({
      event: 'tunnel',
      interface: this.tun.name,
      address: config.ipv4?.address ?? config.ipv6?.address,
      mtu: tunnel.tunMtu,
      routes: applied.routes,
      dns: applied.dns,
    });
  }

  private startLinkMonitor(): void {
    const tunName = this.tun?.name;
    this.linkMonitor = new LinkMonitor((change) => {
      if (change.name === tunName) return;
      this.options.log.debug({ interface: change.name, up: change.up }, 'network link changed');
      // The link to the headend going down ends the tunnel at once (its TCP connection would
      // otherwise hang until dead-peer detection), and any link coming up cuts a reconnect
      // back-off short. Other links going down do not concern the tunnel.
      if (!change.up && change.name === this.headendDevice && this.state === 'connected') {
        this.options.log.info({ interface: change.name }, 'the link to the headend went down; reconnecting');
        this.channel?.close(new AcvpnError('NETWORK_UNREACHABLE', `network link ${change.name} went down`));
      }
      if (change.up) this.networkChanged?.();
    }, this.options.log);
    this.linkMonitor.start();
  }

  // ── connected: the data path ──────────────────────────────────────────────────────────────

  private async carryTraffic(tunnel: Tunnel, signal: AbortSignal): Promise<TunnelOutcome> {
    const { log } = this.options;
    const dataPath = this.dataPath!;
    const tun = this.tun!;
    const { config, connection } = tunnel;

    let finish!: (error: AcvpnError | undefined) => void;
    const finished = new Promise<AcvpnError | undefined>((resolve) => (finish = resolve));

    const channel = new CstpChannel(
      connection.socket,
      // Oversize packets from the headend are normal after decompression on some headends, so the
      // receive side accepts more than the MTU; the pool covers bursts of a full TUN batch.
      { dpdSeconds: config.dpdSeconds, keepaliveSeconds: config.keepaliveSeconds, maxPacketBytes: Math.max(config.mtu, 1500), poolSize: 256 },
      {
        onPacket: (packet) => dataPath.deliver(packet),
        onClosed: (error) => finish(error),
        onBackpressure: (full) => (full ? tun.pause() : tun.resume()),
      },
      log,
    );
    this.channel = channel;
    this.pendingConnection = undefined;
    dataPath.setCstp(channel);
    channel.start(tunnel.rest);
    tun.resume();
    this.connectedSinceMs = Date.now();
    this.setState('connected');
    this.options.emit({ event: 'channel', channel: dataPath.activeChannel });
    const dtls = this.useDtls(config) ? this.startDtls(tunnel) : undefined;
    const rekeyTimer = this.scheduleRekey(tunnel, channel);

    const onAbort = (): void => {
      this.setState('disconnecting', 'logoff requested');
      void channel.disconnect('user logout', 2000);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });

    const error = await finished;
    signal.removeEventListener('abort', onAbort);
    if (rekeyTimer !== undefined) clearTimeout(rekeyTimer.current);
    dtls?.stop();
    dataPath.setCstp(undefined);
    this.channel = undefined;
    log.info({ ...channel.statistics }, 'CSTP channel closed');
    return error === undefined ? { kind: 'logoff' } : { kind: 'failed', error };
  }

  /**
   * Rekeys the CSTP channel when the headend asks (X-CSTP-Rekey-Time): 'ssl' renegotiates the TLS
   * session in place (TLS 1.2 only), 'new-tunnel' (and a failed renegotiation) opens a new TLS
   * connection and CONNECT with the same cookie. DTLS takes its PSK from the current TLS session
   * each time it starts, so a renegotiated session is picked up by the next DTLS handshake.
   */
  private scheduleRekey(tunnel: Tunnel, channel: CstpChannel): { current: NodeJS.Timeout } | undefined {
    const { log } = this.options;
    const { rekeySeconds, rekeyMethod } = tunnel.config;
    if (rekeySeconds === undefined || rekeySeconds <= 0 || rekeyMethod === 'none') return undefined;
    const socket = tunnel.connection.socket;
    const newTunnel = (reason: string): void =>
      channel.close(new AcvpnError('TLS_FAILED', `rekey: ${reason}; opening a new tunnel with the same cookie`, { rekey: true }));

    const handle = { current: undefined as unknown as NodeJS.Timeout };
    const arm = (): void => {
      handle.current = setTimeout(rekey, Math.min(2 ** 31 - 1, rekeySeconds * 1000));
      handle.current.unref();
    };
    const rekey = (): void => {
      if (rekeyMethod === 'new-tunnel' || socket.getProtocol() === 'TLSv1.3') {
        log.info({ method: rekeyMethod }, 'rekey: the headend asked for a new tunnel');
        newTunnel('the rekey time passed');
        return;
      }
      // NOTE: the renegotiated handshake is not passed through the trust decision again. Secure
      // renegotiation (RFC 5746) binds it to the verified session, which is what OpenConnect relies on too.
      const started = socket.renegotiate({ rejectUnauthorized: false }, (error) => {
        if (error) {
          log.warn({ error: error.message }, 'rekey by TLS renegotiation failed');
          newTunnel(`renegotiation failed (${error.message})`);
          return;
        }
        log.info('rekey: TLS session renegotiated');
        arm();
      });
      if (!started) newTunnel('renegotiation could not start');
    };
    arm();
    return handle;
  }

  /**
   * Runs the DTLS channel beside CSTP for one tunnel: data moves to DTLS once it is established,
   * back to CSTP when it fails or dies, and DTLS is tried again after a pause.
   */
  private startDtls(tunnel: Tunnel): { stop(): void } {
    const { log } = this.options;
    const dataPath = this.dataPath!;
    const settings = tunnel.config.dtls!;
    const sessionId = appIdToSessionId(settings.appId!);
    const host = tunnel.connection.remoteAddress;
    let current: DtlsChannel | undefined;
    let retryTimer: NodeJS.Timeout | undefined;
    let stopped = false;

    const open = (): void => {
      if (stopped) return;
      let wasUp = false;
      const dtls = new DtlsChannel(
        {
          host,
          port: settings.port,
          // From the TLS session as it is now: a renegotiation (ssl rekey) changes it.
          psk: derivePsk(tunnel.connection.socket),
          sessionId,
          handshakeMtu: tunnel.baseMtu - (host.includes(':') ? 40 : 20) - 8,
          suites: this.options.tls.fips ? FIPS_SUITES : undefined,
          dpdSeconds: settings.dpdSeconds ?? tunnel.config.dpdSeconds,
          keepaliveSeconds: settings.keepaliveSeconds ?? tunnel.config.keepaliveSeconds,
          maxPacketBytes: Math.max(tunnel.tunMtu, 1500),
          poolSize: 256,
        },
        {
          onEstablished: (suite) => {
            wasUp = true;
            dataPath.setDtls(dtls);
            log.info({ suite, port: settings.port }, 'DTLS established; data moves to DTLS');
            this.options.emit({ event: 'channel', channel: 'dtls' });
          },
          onPacket: (packet) => dataPath.deliver(packet),
          onClosed: (error) => {
            dataPath.setDtls(undefined);
            current = undefined;
            log.info({ ...dtls.statistics }, 'DTLS channel closed');
            if (stopped) return;
            log.warn({ error: error?.message, retryInMs: dtlsRetryDelayMs }, wasUp ? 'DTLS failed; data falls back to CSTP' : 'DTLS handshake failed; staying on CSTP');
            if (wasUp) this.options.emit({ event: 'channel', channel: dataPath.activeChannel });
            retryTimer = setTimeout(open, dtlsRetryDelayMs);
            retryTimer.unref();
          },
        },
        log,
      );
      current = dtls;
      this.dtlsChannel = dtls;
      dtls.start();
    };

    open();
    return {
      stop: () => {
        stopped = true;
        if (retryTimer !== undefined) clearTimeout(retryTimer);
        current?.close();
        dataPath.setDtls(undefined);
      },
    };
  }

  // ── reconnecting ──────────────────────────────────────────────────────────────────────────

  private async waitBeforeReconnect(delayMs: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    this.options.log.info({ delayMs }, 'reconnecting after a delay');
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, delayMs);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.networkChanged = done;
    });
    this.networkChanged = undefined;
  }

  /**
   * Opens a new TLS connection to the headend, waiting between attempts. Returns undefined when
   * stopped by a signal; raises once network roaming is off and the give-up time has passed.
   */
  private async reconnectWithBackoff(
    target: TlsTarget,
    signal: AbortSignal,
    lostAtMs: number,
    lastError: AcvpnError | undefined,
    nextAttempt: () => number,
  ): Promise<TlsConnection | undefined> {
    const policy = this.options.reconnect;
    for (;;) {
      if (shouldGiveUp(policy, lostAtMs, Date.now())) {
        const cause = lastError === undefined ? '' : ` (last error: ${lastError.message})`;
        throw new AcvpnError(
          lastError?.code ?? 'NETWORK_UNREACHABLE',
          `gave up reconnecting to the headend after ${policy.giveUpAfterMs / 1000} s because network roaming is off${cause}; connect again when the network is back`,
        );
      }
      await this.waitBeforeReconnect(reconnectDelayMs(nextAttempt()), signal);
      if (signal.aborted) return undefined;
      try {
        return await this.openConnection(target);
      } catch (error) {
        const failure = asAcvpnError(error);
        if (!isRecoverable(failure)) throw failure;
        lastError = failure;
        this.options.log.info({ error: failure.message }, 'reconnect attempt failed');
      }
    }
  }

  // ── restore ───────────────────────────────────────────────────────────────────────────────

  private async restoreHost(): Promise<void> {
    this.linkMonitor?.stop();
    this.linkMonitor = undefined;
    this.channel?.close();
    this.channel = undefined;
    this.pendingConnection?.close();
    await this.host?.restore();
    this.host = undefined;
    this.tun?.close();
    this.tun = undefined;
  }
}

export { defaultReconnectPolicy };

function randomSecretHex(): string {
  const secret = randomBytes(48).toString('hex');
  registerSecret(secret);
  return secret;
}

function asAcvpnError(error: unknown): AcvpnError {
  return AcvpnError.is(error) ? error : new AcvpnError('INTERNAL', `internal error: ${String(error)}`, {}, { cause: error });
}

function sameAddresses(before: TunnelConfig, after: TunnelConfig): boolean {
  return before.ipv4?.address === after.ipv4?.address && before.ipv6?.address === after.ipv6?.address;
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
