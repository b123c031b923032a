// The control methods and the one session a daemon runs, with no knowledge of sockets: the server
// hands each request here and writes back what it returns or throws. Events (session state,
// banners, prompts) go to every listener registered with onEvent.
//
//   idle ──connect──► session running ──disconnect / failure / logoff──► idle
//                       │  a second connect → SESSION_ACTIVE
//                       └─ prompt and trust-decision events, answered by `answer`

import { AcvpnError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { Session, type SessionEvent, type SessionSnapshot } from '../session/session.js';
import { RpcError, RpcErrorCode } from './jsonrpc.js';
import {
  parseAnswerParams,
  parseConnectParams,
  parseEntryName,
  parseEntryParams,
  parseNoParams,
  parseSettingsPatch,
  type ConnectParams,
} from './params.js';
import { DEFAULT_ANSWER_TIMEOUT_MS, PromptBroker } from './prompt-broker.js';
import { buildSessionOptions, type ResolvedConnect, type SessionContext } from './session-factory.js';
import { EntriesStore, SettingsStore } from './state-files.js';

export const METHODS = [
  'connect',
  'disconnect',
  'reconnect',
  'status',
  'stats',
  'subscribe',
  'answer',
  'settings.get',
  'settings.set',
  'entries.list',
  'entries.create',
  'entries.delete',
] as const;

export type MethodName = (typeof METHODS)[number];

/** The part of a session the daemon uses. Session implements it, and unit tests pass a fake. */
export interface ControlSession {
  run(signal: AbortSignal): Promise<void>;
  snapshot(): SessionSnapshot;
  /** Drops the current tunnel and opens a new one with the same cookie, without a new login. */
  reconnectNow(): boolean;
}

export type SessionCreator = (request: ResolvedConnect, context: SessionContext) => Promise<ControlSession>;

export interface DaemonOptions {
  stateDir: string;
  runDir: string;
  log: Logger;
  packageVersion: string;
  /** Time limit for answering a prompt or trust decision, in milliseconds. */
  answerTimeoutMs?: number;
  createSession?: SessionCreator;
}

/** The side of a client connection that methods act on. */
export interface ClientHandle {
  id: number;
  /** Turns the connection into an event stream. */
  subscribe(): void;
}

export type DaemonEvent = Record<string, unknown> & { event: string };

interface ActiveSession {
  session: ControlSession;
  controller: AbortController;
  request: ResolvedConnect;
  /** Settles when run() has returned and the host is restored; never rejects. */
  ended: Promise<void>;
}

interface SessionEnd {
  at: string;
  exitCode: number;
  code?: string;
  message: string;
}

/** How long disconnect and shutdown wait for the logoff and the host restore. */
const DISCONNECT_WAIT_MS = 15_000;

export class Daemon {
  private readonly listeners = new Set<(event: DaemonEvent) => void>();
  readonly broker: PromptBroker;
  private readonly settingsStore: SettingsStore;
  private readonly entriesStore: EntriesStore;
  private readonly createSession: SessionCreator;
  private active: ActiveSession | undefined;
  /** True while a connect request builds its session, so that a second one is refused meanwhile. */
  private starting = false;
  private lastEnd: SessionEnd | undefined;

  constructor(private readonly options: DaemonOptions) {
    this.broker = new PromptBroker((event) => this.publish(event as DaemonEvent), options.answerTimeoutMs ?? DEFAULT_ANSWER_TIMEOUT_MS);
    this.settingsStore = new SettingsStore(options.stateDir);
    this.entriesStore = new EntriesStore(options.stateDir);
    this.createSession = options.createSession ?? (async (request, context) => new Session(await buildSessionOptions(request, context)));
  }

  onEvent(listener: (event: DaemonEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Events that bring a new subscriber up to date: the current state and the open questions. */
  currentEvents(): DaemonEvent[] {
    const state = this.active?.session.snapshot().state ?? 'idle';
    return [{ event: 'state', state }, ...this.broker.openQuestions()];
  }

  /** Runs one method. Raises RpcError or AcvpnError, which the server turns into error responses. */
  async handle(method: string, params: Record<string, unknown>, client: ClientHandle): Promise<unknown> {
    switch (method as MethodName) {
      case 'connect':
        return this.connect(parseConnectParams(params));
      case 'disconnect':
        parseNoParams(method, params);
        return this.disconnect();
      case 'reconnect':
        parseNoParams(method, params);
        return this.reconnect();
      case 'status':
        parseNoParams(method, params);
        return this.status();
      case 'stats':
        parseNoParams(method, params);
        return this.stats();
      case 'subscribe':
        parseNoParams(method, params);
        client.subscribe();
        return { subscribed: true };
      case 'answer': {
        const { id, value } = parseAnswerParams(params);
        this.broker.answer(id, value);
        return { answered: id };
      }
      case 'settings.get':
        parseNoParams(method, params);
        return this.settingsStore.load();
      case 'settings.set':
        return this.settingsStore.update(parseSettingsPatch(params));
      case 'entries.list':
        parseNoParams(method, params);
        return { entries: await this.entriesStore.list() };
      case 'entries.create':
        return { entries: await this.entriesStore.create(parseEntryParams(params)) };
      case 'entries.delete':
        return { entries: await this.entriesStore.delete(parseEntryName(params)) };
      default:
        throw new RpcError(RpcErrorCode.methodNotFound, `unknown method ${JSON.stringify(method.slice(0, 64))}; the methods are ${METHODS.join(', ')}`);
    }
  }

  /** Disconnects the session, if any, and ends every open question; for SIGTERM and SIGINT. */
  async shutdown(): Promise<void> {
    this.broker.cancelAll('the daemon is shutting down');
    if (this.active !== undefined) await this.disconnect();
  }

  // ── session lifecycle ─────────────────────────────────────────────────────────────────────

  private async connect(params: ConnectParams): Promise<unknown> {
    if (this.active !== undefined || this.starting) {
      throw new AcvpnError('USAGE', 'a session is already active in this daemon; disconnect it first (acvpn disconnect)', { reason: 'SESSION_ACTIVE' });
    }
    this.starting = true;
    let active: ActiveSession;
    let connected!: Promise<void>;
    try {
      const request = await this.resolveEntry(params);
      const settings = await this.settingsStore.load();
      let reachConnected!: () => void;
      connected = new Promise<void>((resolve) => (reachConnected = resolve));
      const context: SessionContext = {
        settings,
        stateDir: this.options.stateDir,
        runDir: this.options.runDir,
        log: this.options.log,
        broker: this.broker,
        packageVersion: this.options.packageVersion,
        emit: (event) => {
          if (event.event === 'state' && event.state === 'connected') reachConnected();
          this.publishSessionEvent(event);
        },
      };
      const session = await this.createSession(request, context);
      const controller = new AbortController();
      active = { session, controller, request, ended: Promise.resolve() };
      this.active = active;
      this.options.log.info({ url: request.url.href, user: request.user, group: request.group }, 'session starting');
      active.ended = this.runSession(active);
    } finally {
      this.starting = false;
    }

    if (params.wait) {
      // The session either reaches connected, or ends first and left its error in lastEnd.
      await Promise.race([connected, active.ended]);
      if (this.active !== active) throw this.endedError();
    }
    return this.status();
  }

  private async runSession(active: ActiveSession): Promise<void> {
    const log = this.options.log;
    let end: SessionEnd;
    try {
      await active.session.run(active.controller.signal);
      end = { at: new Date().toISOString(), exitCode: 0, message: 'logged off' };
      log.info('session ended with a logoff');
    } catch (error) {
      const failure = AcvpnError.is(error) ? error : new AcvpnError('INTERNAL', 'internal error in the session', {}, { cause: error });
      end = { at: new Date().toISOString(), exitCode: failure.exitCode, code: failure.code, message: failure.message };
      log.error({ code: failure.code, exitCode: failure.exitCode, ...failure.details }, failure.message);
      if (failure.code === 'INTERNAL') log.debug({ err: failure.cause }, 'internal error detail');
    }
    this.lastEnd = end;
    this.active = undefined;
    this.broker.cancelAll('the session ended');
    this.publish({ event: 'session-ended', ...end });
  }

  private endedError(): AcvpnError | RpcError {
    const end = this.lastEnd;
    if (end?.code === undefined) return new AcvpnError('SESSION_TERMINATED', 'the session ended before the tunnel came up');
    return new RpcError(RpcErrorCode.applicationBase - end.exitCode, end.message, { code: end.code, exitCode: end.exitCode });
  }

  private async resolveEntry(params: ConnectParams): Promise<ResolvedConnect> {
    if (params.entry === undefined) return { ...params, url: params.url! };
    const entry = await this.entriesStore.find(params.entry);
    if (entry === undefined) throw new RpcError(RpcErrorCode.invalidParams, `no saved entry is named ${JSON.stringify(params.entry.slice(0, 64))}; list them with entries.list`);
    return {
      ...params,
      url: params.url ?? new URL(entry.url),
      group: params.group ?? entry.group,
      user: params.user ?? entry.user,
    };
  }

  private async disconnect(): Promise<unknown> {
    const active = this.active;
    if (active === undefined) return { state: 'idle' };
    this.options.log.info('disconnect requested');
    active.controller.abort();
    // A login waiting for an answer would otherwise sit out the answer timeout.
    this.broker.cancelAll('the session is disconnecting');
    const timedOut = await Promise.race([active.ended.then(() => false), delay(DISCONNECT_WAIT_MS).then(() => true)]);
    if (timedOut) {
      throw new AcvpnError('INTERNAL', `the session did not end within ${DISCONNECT_WAIT_MS / 1000} s of the disconnect request; see the daemon log`);
    }
    return { state: 'disconnected', ...(this.lastEnd === undefined ? {} : { end: this.lastEnd }) };
  }

  private reconnect(): unknown {
    const active = this.active;
    if (active === undefined) throw new AcvpnError('USAGE', 'no session is active; connect first', { reason: 'NO_SESSION' });
    if (!active.session.reconnectNow()) {
      throw new AcvpnError('USAGE', `no tunnel is up to reconnect (state ${active.session.snapshot().state}); wait for connected`, { reason: 'NOT_CONNECTED' });
    }
    return { state: active.session.snapshot().state };
  }

  private status(): Record<string, unknown> {
    const active = this.active;
    if (active === undefined) return { state: 'idle', ...(this.lastEnd === undefined ? {} : { lastEnd: this.lastEnd }) };
    return {
      ...active.session.snapshot(),
      url: active.request.url.href,
      ...(active.request.user === undefined ? {} : { user: active.request.user }),
      ...(active.request.group === undefined ? {} : { group: active.request.group }),
      openQuestions: this.broker.openQuestions().length,
    };
  }

  private stats(): Record<string, unknown> {
    const active = this.active;
    if (active === undefined) return { state: 'idle' };
    const snapshot = active.session.snapshot();
    const channels = [snapshot.cstp, snapshot.dtls].filter((counters) => counters !== undefined);
    const sum = (key: 'packetsSent' | 'bytesSent' | 'packetsReceived' | 'bytesReceived' | 'packetsDropped'): number =>
      channels.reduce((total, counters) => total + counters[key], 0);
    return {
      state: snapshot.state,
      channel: snapshot.channel,
      connectedSince: snapshot.connectedSince,
      reconnects: snapshot.reconnects,
      totals: {
        packetsSent: sum('packetsSent'),
        bytesSent: sum('bytesSent'),
        packetsReceived: sum('packetsReceived'),
        bytesReceived: sum('bytesReceived'),
        packetsDropped: sum('packetsDropped') + snapshot.droppedWithoutChannel,
      },
      cstp: snapshot.cstp,
      dtls: snapshot.dtls,
      droppedWithoutChannel: snapshot.droppedWithoutChannel,
    };
  }

  // ── events ────────────────────────────────────────────────────────────────────────────────

  private publishSessionEvent(event: SessionEvent): void {
    this.options.log.info(event, event.event);
    this.publish(event);
  }

  private publish(event: DaemonEvent): void {
    for (const listener of this.listeners) listener(event);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
