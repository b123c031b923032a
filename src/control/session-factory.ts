// Builds the SessionOptions for a `connect` request with the same construction as `acvpn connect`.
// The request's values override the daemon's settings. Prompts and trust decisions go to the
// prompt broker (events and `answer` requests) instead of a terminal.

import { join } from 'node:path';
import { checkEnvironment, readCaFile, readPackageVersion, removeLeftovers } from '../session/host-setup.js';
import type { Logger } from '../core/log.js';
import { registerSecret } from '../core/redact.js';
import type { AnswerSources } from '../auth/flow.js';
import { buildPosture, persistentRandomId, readHostFacts } from '../posture/collect.js';
import { defaultReconnectPolicy } from '../session/reconnect.js';
import { decideServerTrust } from '../session/server-trust.js';
import type { SessionEvent, SessionOptions } from '../session/session.js';
import type { TrustAnswer, TrustPromptDetails } from '../trust/policy.js';
import { CertificateStore } from '../trust/store.js';
import type { ConnectParams } from './params.js';
import type { PromptBroker } from './prompt-broker.js';
import type { DaemonSettings } from './state-files.js';

export const DEFAULT_INTERFACE_NAME = 'acvpn0';

export interface SessionContext {
  settings: DaemonSettings;
  stateDir: string;
  runDir: string;
  log: Logger;
  broker: PromptBroker;
  emit(event: SessionEvent): void;
  packageVersion: string;
}

/** A connect request after a saved entry filled in what the request left out. */
export type ResolvedConnect = ConnectParams & { url: URL };

/** Checks the host, removes what a killed session left, and builds the options for `new Session`. */
export async function buildSessionOptions(request: ResolvedConnect, context: SessionContext): Promise<SessionOptions> {
  const { settings, log } = context;
  checkEnvironment();
  const leftovers = await removeLeftovers(context.runDir, log);
  if (leftovers.routes > 0 || leftovers.resolvConf === 'restored') {
    log.warn(leftovers, 'removed what a previous acvpn session left behind');
  }

  const trust = { ...settings.trust, ...request.trust };
  const extraCaPem = request.cafile === undefined ? undefined : await readCaFile(request.cafile);
  const posture = buildPosture(context.packageVersion, readHostFacts(), {}, () => persistentRandomId(context.stateDir));

  return {
    url: request.url,
    userAgent: `AnyConnect-compatible acvpn VPN Agent v${context.packageVersion}`,
    posture,
    tls: {
      fips: trust.fips,
      connectTimeoutMs: 15_000,
      verifyServer: (host, chainDer) =>
        decideServerTrust(host, chainDer, {
          settings: trust,
          pins: request.pins,
          extraCaPem,
          store: new CertificateStore(join(context.stateDir, 'certificates')),
          answer: (details, allowed) => answerTrustDecision(details, allowed, request, context),
          log,
        }),
    },
    answers: buildAnswerSources(request, context.broker),
    group: request.group,
    interfaceName: request.interfaceName ?? DEFAULT_INTERFACE_NAME,
    runDir: context.runDir,
    manageDns: request.dns ?? settings.dns,
    dtls: request.dtls ?? settings.dtls,
    reconnect: { ...defaultReconnectPolicy, netroam: request.netroam ?? settings.netroam },
    log,
    emit: context.emit,
  };
}

/**
 * Builds the answer sources of a request. Its password answers the first password field, as
 * ACVPN_PASSWORD does for `acvpn connect`. Every other field, and a second try after a rejected
 * password, becomes a prompt event unless the request turned prompts off.
 */
export function buildAnswerSources(request: ConnectParams, broker: PromptBroker): AnswerSources {
  registerSecret(request.password);
  for (const value of request.formEntries.values()) registerSecret(value);
  return {
    username: request.user,
    group: request.group,
    formEntries: request.formEntries,
    secretLines: [],
    envPassword: request.password,
    interactive: request.interactive,
    prompt: request.interactive ? (field) => broker.askField(field) : undefined,
  };
}

async function answerTrustDecision(details: TrustPromptDetails, allowed: TrustAnswer[], request: ConnectParams, context: SessionContext): Promise<TrustAnswer> {
  context.log.warn(
    {
      event: 'trust-decision',
      host: details.host,
      status: details.status,
      blocked: details.blocked,
      allowed,
      reasons: details.reasons.map((reason) => reason.code),
      fingerprintSha256: details.leaf.fingerprintSha256,
      pin: details.leaf.publicKeyPin,
    },
    `${details.title}: ${details.message}`,
  );
  if (request.trustAnswer !== undefined) return request.trustAnswer;
  if (!request.interactive) return 'abort';
  return context.broker.askTrust(
    details,
    allowed.filter((answer) => answer !== 'view'),
  );
}

export { readPackageVersion };
