#!/usr/bin/env node
// The acvpn command: parses arguments, checks the host, collects the values for the login form,
// runs one session in the foreground and turns its outcome into an exit code.

import { join } from 'node:path';
import { AcvpnError, ExitCode, toAcvpnError } from '../core/errors.js';
import { connectViaDaemon, findDaemon } from './connect-via-daemon.js';
import { createLogger, type Logger } from '../core/log.js';
import { redactText, registerSecret } from '../core/redact.js';
import type { AnswerSources } from '../auth/flow.js';
import { buildPosture, persistentRandomId, readHostFacts } from '../posture/collect.js';
import { Session } from '../session/session.js';
import { checkEnvironment, readCaFile, readPackageVersion, removeLeftovers } from '../session/host-setup.js';
import { scriptLogLevel } from '../net/script/environment.js';
import { defaultReconnectPolicy } from '../session/reconnect.js';
import { parseCommandLine, usageText, type CleanupOptions, type ConnectOptions } from './args.js';
import { runDaemonCommand } from './daemon-command.js';
import { runCertsCommand } from './certs-command.js';
import { ClientCertificateStore, checkClientCertificate, resolveClientIdentity, tlsClientOptions } from '../trust/client-cert.js';
import { runClientCommand } from './client-commands.js';
import { cancelActivePrompt, promptOnTerminal, promptTrustDecision } from './prompt.js';
import { decideServerTrust } from '../session/server-trust.js';
import { CertificateStore } from '../trust/store.js';
import type { TrustAnswer, TrustPromptDetails } from '../trust/policy.js';
import { readStdinLines } from './stdin.js';

const packageVersion = readPackageVersion();

async function main(argv: string[]): Promise<number> {
  // The daemon and its clients parse their own options.
  const [first, ...rest] = argv;
  if (first === 'daemon') return runDaemonCommand(rest);
  if (first === 'certs') return runCertsCommand(rest);
  if (first === 'status' || first === 'disconnect' || first === 'events' || first === 'stats' || first === 'reconnect') {
    return runClientCommand(first, rest);
  }

  let command;
  try {
    command = parseCommandLine(argv, process.env);
  } catch (error) {
    return reportEarlyError(error);
  }

  switch (command.command) {
    case 'help':
      process.stdout.write(usageText);
      return ExitCode.ok;
    case 'version':
      process.stdout.write(`acvpn ${packageVersion}\n`);
      return ExitCode.ok;
    case 'connect':
      return connect(command);
    case 'cleanup':
      return cleanup(command);
  }
}

async function cleanup(options: CleanupOptions): Promise<number> {
  const log = createLogger({ level: options.logLevel, json: options.jsonLogs });
  try {
    const removed = await removeLeftovers(options.runDir, log);
    const nothing = removed.routes === 0 && removed.resolvConf !== 'restored';
    log.info(removed, nothing ? 'nothing to clean up' : 'removed what a previous session left');
    return ExitCode.ok;
  } catch (error) {
    const failure = toAcvpnError(error);
    log.error({ code: failure.code, exitCode: failure.exitCode, ...failure.details }, failure.message);
    return failure.exitCode;
  } finally {
    log.flush();
  }
}

async function connect(options: ConnectOptions): Promise<number> {
  const log = createLogger({ level: options.logLevel, json: options.jsonLogs });
  try {
    const daemon = await findDaemon(options.socketPath);
    if (daemon !== undefined) {
      if (options.certificate !== undefined) {
        daemon.close();
        throw new AcvpnError('USAGE', 'the running acvpn daemon does not take client certificates yet; stop it (acvpn disconnect, then end the daemon) or connect without --certificate');
      }
      const answers = await gatherAnswers(options);
      return await connectViaDaemon(daemon, options, { password: answers.secretLines[0] ?? answers.envPassword }, log);
    }

    checkEnvironment();
    const leftovers = await removeLeftovers(options.runDir, log);
    if (leftovers.routes > 0 || leftovers.resolvConf === 'restored') {
      log.warn(leftovers, 'removed what a previous acvpn session left behind');
    }
    const extraCaPem = options.caFile === undefined ? undefined : await readCaFile(options.caFile);
    const identity =
      options.certificate === undefined
        ? undefined
        : await resolveClientIdentity(options.certificate, {
            store: ClientCertificateStore.inStateDirectory(options.stateDir),
            password: process.env.ACVPN_CERT_PASSWORD,
          });
    if (identity !== undefined) {
      const problems = checkClientCertificate(identity, new Date());
      if (problems.length > 0) log.warn({ problems }, 'the client certificate may be refused by the headend');
    }
    const answers = await gatherAnswers(options);
    const posture = buildPosture(packageVersion, readHostFacts(), options.posture, () => persistentRandomId(options.stateDir));

    const session = new Session({
      url: options.url,
      userAgent: options.userAgent ?? `AnyConnect-compatible acvpn VPN Agent v${packageVersion}`,
      posture,
      tls: {
        fips: options.trust.fips,
        connectTimeoutMs: 15_000,
        clientCertificate: identity === undefined ? undefined : tlsClientOptions(identity),
        verifyServer: (host, chainDer) =>
          decideServerTrust(host, chainDer, {
            settings: options.trust,
            pins: options.pins,
            extraCaPem,
            store: new CertificateStore(join(options.stateDir, 'certificates')),
            answer: (details, allowed) => answerTrustDecision(details, allowed, options, log),
            log,
          }),
      },
      answers,
      group: options.authgroup,
      interfaceName: options.interfaceName,
      runDir: options.runDir,
      manageDns: options.manageDns,
      dtls: options.dtls,
      script: options.script === undefined ? undefined : { path: options.script, logLevel: scriptLogLevel(options.logLevel) },
      reconnect: { ...defaultReconnectPolicy, netroam: options.netroam },
      log,
      emit: (event) => log.info(event, event.event),
    });

    const controller = new AbortController();
    const stop = (signal: NodeJS.Signals): void => {
      log.info({ signal }, 'signal received; logging off');
      controller.abort();
      cancelActivePrompt();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);

    await session.run(controller.signal);
    return ExitCode.ok;
  } catch (error) {
    const failure = toAcvpnError(error);
    log.error({ code: failure.code, exitCode: failure.exitCode, ...failure.details }, failure.message);
    if (failure.code === 'INTERNAL') log.debug({ err: failure.cause }, 'internal error detail');
    return failure.exitCode;
  } finally {
    log.flush();
  }
}

/**
 * Answers an "Untrusted VPN Server" decision request: from --trust-answer, else on the terminal
 * when interactive, else abort. The request is also logged as an event for scripts.
 */
async function answerTrustDecision(details: TrustPromptDetails, allowed: TrustAnswer[], options: ConnectOptions, log: Logger): Promise<TrustAnswer> {
  log.warn(
    {
      event: 'trust-decision',
      host: details.host,
      status: details.status,
      blocked: details.blocked,
      allowed,
      reasons: details.reasons.map((reason) => reason.code),
      subject: details.leaf.subject,
      issuer: details.leaf.issuer,
      fingerprintSha256: details.leaf.fingerprintSha256,
      pin: details.leaf.publicKeyPin,
    },
    `${details.title}: ${details.message}`,
  );
  if (options.trustAnswer !== undefined) return options.trustAnswer;
  const interactive = !options.nonInteractive && process.stdin.isTTY === true && !options.passwordOnStdin;
  if (!interactive) return 'abort';
  return promptTrustDecision(details, allowed.filter((answer) => answer !== 'view'));
}

async function gatherAnswers(options: ConnectOptions): Promise<AnswerSources> {
  const secretLines = options.passwordOnStdin ? await readStdinLines(process.stdin) : [];
  for (const line of secretLines) registerSecret(line);
  const envPassword = process.env.ACVPN_PASSWORD;
  registerSecret(envPassword);
  for (const value of options.formEntries.values()) registerSecret(value);

  const interactive = !options.nonInteractive && !options.passwordOnStdin && process.stdin.isTTY === true;
  return {
    username: options.user,
    group: options.authgroup,
    formEntries: options.formEntries,
    secretLines,
    envPassword: envPassword === '' ? undefined : envPassword,
    interactive,
    prompt: interactive ? promptOnTerminal : undefined,
  };
}

function reportEarlyError(error: unknown): number {
  const failure = toAcvpnError(error);
  process.stderr.write(`acvpn: ${redactText(failure.message)}\n`);
  return failure.exitCode;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Give pino's synchronous stderr writes and the socket teardown one tick, then leave even if a
    // stray handle (a half-closed socket) would keep the loop alive.
    setTimeout(() => process.exit(code), 50).unref();
  },
  (error: unknown) => {
    process.stderr.write(`acvpn: internal error: ${redactText(String(error))}\n`);
    process.exit(ExitCode.internal);
  },
);
