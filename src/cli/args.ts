// Command-line parsing for `acvpn`. Pure: it turns argv and the environment into typed options or
// a USAGE error that names the bad argument. Flags beat the environment.

import { parseArgs } from 'node:util';
import { AcvpnError } from '../core/errors.js';
import { LOG_LEVELS, type LogLevel } from '../core/log.js';
import { parsePin } from '../trust/pin.js';
import type { TrustAnswer } from '../trust/policy.js';

export interface ConnectOptions {
  command: 'connect';
  url: URL;
  user?: string;
  passwordOnStdin: boolean;
  authgroup?: string;
  formEntries: Map<string, string>;
  caFile?: string;
  pins: string[];
  /** Client certificate: a PKCS#12 file or an alias from `acvpn certs import-client`. */
  certificate?: string;
  trust: {
    blockUntrustedServers: boolean;
    strictCertificateTrust: boolean;
    ocsp: boolean;
    fips: boolean;
  };
  /** Answer to an "Untrusted VPN Server" decision request in non-interactive runs. */
  trustAnswer?: TrustAnswer;
  interfaceName: string;
  dtls: boolean;
  /** Change the host's DNS (resolv.conf or systemd-resolved) for split DNS. */
  manageDns: boolean;
  /** Keep reconnecting without a time limit (network roaming); off gives up after 20 s. */
  netroam: boolean;
  /** vpnc-script-compatible program that sets up routes and DNS instead of acvpn. */
  script?: string;
  logLevel: LogLevel;
  jsonLogs: boolean;
  nonInteractive: boolean;
  userAgent?: string;
  stateDir: string;
  runDir: string;
  /** Control socket of a running daemon; when one answers there, connect hands the session to it. */
  socketPath: string;
  posture: {
    clientVersion?: string;
    platform?: string;
    platformVersion?: string;
    deviceType?: string;
    deviceUniqueId?: string;
    androidId?: string;
  };
}

export interface CleanupOptions {
  command: 'cleanup';
  runDir: string;
  logLevel: LogLevel;
  jsonLogs: boolean;
}

export type CliCommand = ConnectOptions | CleanupOptions | { command: 'help' } | { command: 'version' };

export const usageText = `Usage: acvpn connect [options] URL
       acvpn cleanup [--run-dir DIR] [--log-level LEVEL] [--json-logs]
       acvpn daemon [--socket PATH] [--run-dir DIR] [--state-dir DIR] [--netns NAME]
                    [--answer-timeout S] [--log-level L] [--json-logs]
       acvpn status|stats [--json] [--socket PATH]
       acvpn disconnect|reconnect|events [--socket PATH]
       acvpn certs help
       acvpn help | version

acvpn daemon serves a JSON-RPC 2.0 control API (one JSON object per line) on a Unix socket
(default <run-dir>/control.sock, mode 0660); status, stats, disconnect, reconnect and events talk
to it. Each command takes --help.

acvpn cleanup removes the routes and the resolv.conf change that a killed acvpn left behind
(from the undo files in the run directory). acvpn connect does the same before it starts.

acvpn connect logs in to an AnyConnect-compatible headend (ocserv, Cisco ASA) and runs the
tunnel in the foreground until SIGINT or SIGTERM, then logs off and restores routes and DNS.
URL is https://host[:port][/group]. A path selects the group of that name.

Options of acvpn connect:

Authentication:
  -u, --user NAME            user name for the login form
      --passwd-on-stdin      read secrets from standard input, one line per secret field,
                             in the order the headend asks (password, then a second password or OTP)
      --authgroup GROUP      group to select from the headend's group list
      --form-entry NAME=VALUE
                             answer the form field NAME (repeatable)
      --non-interactive      never prompt; a missing answer is an error (exit 3)
      --certificate FILE|ALIAS
                             client certificate: a PKCS#12 file (its password from
                             ACVPN_CERT_PASSWORD) or an alias from acvpn certs import-client
  ACVPN_PASSWORD in the environment answers the first password field.

Server trust:
      --cafile FILE          PEM file with CA certificates to trust in addition to the system store
      --servercert PIN       accept the headend whose public key has this pin-sha256:BASE64 pin
                             (ignored under --strict-trust)
      --no-block-untrusted   turn off Block Untrusted Servers: an untrusted headend becomes a
                             decision (abort, continue, or import-and-continue for a valid but
                             untrusted certificate) instead of a refusal
      --strict-trust         Strict Certificate Trust: refuse any certificate that does not verify,
                             without a decision
      --trust-answer ANSWER  answer to the decision in non-interactive runs: abort (default),
                             continue or import-and-continue
      --no-ocsp              do not check revocation with OCSP (default: check every certificate
                             of the chain, 5 s timeout each)
      --fips                 FIPS mode: TLS 1.2+ with ECDHE and AES-GCM on P-256/P-384 only;
                             SHA-1 signatures and RSA keys under 2048 bits are refused

Tunnel:
  -i, --interface NAME       TUN device name (default acvpn0)
      --no-dtls              carry all traffic over CSTP (TLS)
      --no-dns               leave the host's DNS alone (no split-DNS forwarder, resolv.conf untouched)
  -s, --script PATH          run a vpnc-script-compatible program (OpenConnect's environment) for
                             pre-init, connect, attempt-reconnect, reconnect and disconnect; acvpn
                             then leaves the TUN address, routes and DNS to it
      --no-netroam           after a network loss, stop reconnecting after 20 s (default: retry
                             without a time limit)

Posture (ACIDex values sent to the headend):
      --version-string TEXT  client version (default v<acvpn version>)
      --os PLATFORM          platform id: linux-64 (default on Linux) or android
      --platform-version V   OS version (default: kernel release)
      --device-type TEXT     device type or model
      --device-id HEX        device unique id (default: SHA-256 of /etc/machine-id)
      --android-id ID        Android ID to derive the device unique id from
      --useragent TEXT       HTTP User-Agent (default AnyConnect-compatible acvpn VPN Agent v<version>)

Output:
      --log-level LEVEL      fatal, error, warn, info (default), debug, trace or silent
      --json-logs            write logs and events as JSON lines on stderr

Files:
      --state-dir DIR        state (device id, certificates); default /var/lib/acvpn
      --run-dir DIR          runtime files (route undo file, resolv.conf backup); default /run/acvpn
      --socket PATH          when an acvpn daemon answers on this control socket (default
                             <run-dir>/control.sock), hand the connection to it and return once
                             the tunnel is up; acvpn disconnect ends it

Exit codes: 0 clean logoff, 1 internal error, 2 bad arguments, 3 authentication rejected,
4 group not found, 5 server not trusted, 6 network or protocol failure, 7 environment
(not root, no /dev/net/tun, no ip), 8 session ended by the headend.
`;

export function parseCommandLine(argv: string[], env: NodeJS.ProcessEnv): CliCommand {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') return { command: 'help' };
  if (command === 'version' || command === '--version') return { command: 'version' };
  if (rest.includes('--help') || rest.includes('-h')) return { command: 'help' };
  if (command === 'cleanup') return parseCleanup(rest, env);
  if (command !== 'connect') {
    throw new AcvpnError('USAGE', `unknown command ${JSON.stringify(command)}; run acvpn help for the list of commands`);
  }
  return parseConnect(rest, env);
}

function parseCleanup(argv: string[], env: NodeJS.ProcessEnv): CleanupOptions {
  let values: { 'run-dir'?: string; 'log-level'?: string; 'json-logs'?: boolean };
  try {
    values = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: { 'run-dir': { type: 'string' }, 'log-level': { type: 'string' }, 'json-logs': { type: 'boolean' } },
    }).values;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new AcvpnError('USAGE', `${message}; run acvpn help for the options`);
  }
  return {
    command: 'cleanup',
    runDir: values['run-dir'] ?? defaultRunDir(env),
    logLevel: parseLogLevel(values['log-level']),
    jsonLogs: values['json-logs'] ?? false,
  };
}

function parseLogLevel(text: string | undefined): LogLevel {
  const level = (text ?? 'info') as LogLevel;
  if (!LOG_LEVELS.includes(level)) {
    throw new AcvpnError('USAGE', `--log-level must be one of ${LOG_LEVELS.join(', ')}, received ${JSON.stringify(text)}`);
  }
  return level;
}

function defaultRunDir(env: NodeJS.ProcessEnv): string {
  return env.XDG_RUNTIME_DIR ? `${env.XDG_RUNTIME_DIR}/acvpn` : '/run/acvpn';
}

function parseConnect(argv: string[], env: NodeJS.ProcessEnv): ConnectOptions {
  let parsed: ReturnType<typeof parseConnectArgs>;
  try {
    parsed = parseConnectArgs(argv);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new AcvpnError('USAGE', `${message}; run acvpn help for the options`);
  }
  const { values, positionals } = parsed;

  if (positionals.length !== 1) {
    throw new AcvpnError(
      'USAGE',
      positionals.length === 0
        ? 'missing the headend URL; usage: acvpn connect [options] https://host[/group]'
        : `expected one headend URL, received ${positionals.length}: ${positionals.join(' ')}`,
    );
  }

  const logLevel = parseLogLevel(values['log-level']);

  const formEntries = new Map<string, string>();
  for (const entry of values['form-entry'] ?? []) {
    const equals = entry.indexOf('=');
    if (equals <= 0) throw new AcvpnError('USAGE', `--form-entry expects NAME=VALUE, received ${JSON.stringify(entry.slice(0, 40))}`);
    formEntries.set(entry.slice(0, equals), entry.slice(equals + 1));
  }

  const platform = values.os;
  if (platform !== undefined && !['linux', 'linux-64', 'android', 'win', 'mac-intel', 'apple-ios'].includes(platform)) {
    throw new AcvpnError('USAGE', `--os must be one of linux, linux-64, android, win, mac-intel, apple-ios, received ${JSON.stringify(platform)}`);
  }

  const interfaceName = values.interface ?? 'acvpn0';
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(interfaceName)) {
    throw new AcvpnError('USAGE', `--interface must be 1 to 15 letters, digits, '_', '.' or '-', received ${JSON.stringify(interfaceName)}`);
  }

  return {
    command: 'connect',
    url: parseHeadendUrl(positionals[0] ?? ''),
    user: values.user,
    passwordOnStdin: values['passwd-on-stdin'] ?? false,
    authgroup: values.authgroup,
    formEntries,
    caFile: values.cafile,
    certificate: values.certificate,
    pins: (values.servercert ?? []).map(parsePin),
    trust: {
      blockUntrustedServers: !(values['no-block-untrusted'] ?? false),
      strictCertificateTrust: values['strict-trust'] ?? false,
      ocsp: !(values['no-ocsp'] ?? false),
      fips: values.fips ?? false,
    },
    trustAnswer: parseTrustAnswer(values['trust-answer']),
    interfaceName,
    dtls: !(values['no-dtls'] ?? false),
    manageDns: !(values['no-dns'] ?? false),
    netroam: !(values['no-netroam'] ?? false),
    script: values.script,
    logLevel,
    jsonLogs: values['json-logs'] ?? false,
    nonInteractive: values['non-interactive'] ?? false,
    userAgent: values.useragent,
    stateDir: values['state-dir'] ?? env.ACVPN_STATE_DIR ?? (env.XDG_STATE_HOME ? `${env.XDG_STATE_HOME}/acvpn` : '/var/lib/acvpn'),
    runDir: values['run-dir'] ?? defaultRunDir(env),
    socketPath: values.socket ?? `${values['run-dir'] ?? defaultRunDir(env)}/control.sock`,
    posture: {
      clientVersion: values['version-string'],
      platform,
      platformVersion: values['platform-version'],
      deviceType: values['device-type'],
      deviceUniqueId: values['device-id'],
      androidId: values['android-id'],
    },
  };
}

function parseConnectArgs(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      user: { type: 'string', short: 'u' },
      'passwd-on-stdin': { type: 'boolean' },
      authgroup: { type: 'string' },
      'form-entry': { type: 'string', multiple: true },
      'non-interactive': { type: 'boolean' },
      cafile: { type: 'string' },
      certificate: { type: 'string' },
      servercert: { type: 'string', multiple: true },
      'no-block-untrusted': { type: 'boolean' },
      'strict-trust': { type: 'boolean' },
      'trust-answer': { type: 'string' },
      'no-ocsp': { type: 'boolean' },
      fips: { type: 'boolean' },
      interface: { type: 'string', short: 'i' },
      'no-dtls': { type: 'boolean' },
      'no-dns': { type: 'boolean' },
      'no-netroam': { type: 'boolean' },
      script: { type: 'string', short: 's' },
      'version-string': { type: 'string' },
      os: { type: 'string' },
      'platform-version': { type: 'string' },
      'device-type': { type: 'string' },
      'device-id': { type: 'string' },
      'android-id': { type: 'string' },
      useragent: { type: 'string' },
      'log-level': { type: 'string' },
      'json-logs': { type: 'boolean' },
      'state-dir': { type: 'string' },
      'run-dir': { type: 'string' },
      socket: { type: 'string' },
    },
  });
}

function parseTrustAnswer(text: string | undefined): TrustAnswer | undefined {
  if (text === undefined) return undefined;
  if (text === 'abort' || text === 'continue' || text === 'import-and-continue') return text;
  throw new AcvpnError('USAGE', `--trust-answer must be abort, continue or import-and-continue, received ${JSON.stringify(text)}`);
}

/** Accepts https URLs and bare host names; rejects other schemes, credentials in the URL, queries. */
export function parseHeadendUrl(text: string): URL {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `https://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new AcvpnError('USAGE', `invalid headend URL ${JSON.stringify(text)}; expected https://host[:port][/group]`);
  }
  if (url.protocol !== 'https:') {
    throw new AcvpnError('USAGE', `the headend URL must use https, received ${JSON.stringify(url.protocol)}`);
  }
  if (url.username !== '' || url.password !== '') {
    throw new AcvpnError('USAGE', 'the headend URL must not contain credentials; use --user and --passwd-on-stdin');
  }
  if (url.search !== '' || url.hash !== '') {
    throw new AcvpnError('USAGE', `the headend URL must not contain a query or fragment, received ${JSON.stringify(text)}`);
  }
  return url;
}
