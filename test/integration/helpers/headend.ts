// Test headend for integration tests: ocserv in network namespaces, built by
// scripts/headend/headend.sh (the same script the Docker image runs), plus helpers that run
// commands inside a namespace with argument arrays and bounded time.
//
//   const headend = await startHeadend({ prefix: 'acvpn-xyz' });
//   try { ... nsExec(headend.clientNs, ['ping', '-c', '1', headend.targetHost]) ... }
//   finally { await headend.stop(); }
//
// Needs root, iproute2, nftables, ocserv, gnutls-bin (certtool) and node on the PATH.

import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const HEADEND_SCRIPT = fileURLToPath(
  new URL('../../../scripts/headend/headend.sh', import.meta.url),
);

/** Set to 1 to keep the state directory (logs, PKI, configuration) after stop(). */
const KEEP_STATE_VARIABLE = 'ACVPN_HEADEND_KEEP_STATE';

const SCRIPT_TIMEOUT_MS = 60_000;
const DEFAULT_EXEC_TIMEOUT_MS = 10_000;
/** Output beyond this many bytes per stream is dropped, so a chatty command cannot fill memory. */
const MAX_CAPTURED_BYTES = 4 * 1024 * 1024;

export interface HeadendOptions {
  /** Namespace name prefix: the headend builds PREFIX-cli, PREFIX-hub and PREFIX-lan. */
  prefix: string;
  /** Push a default route (`route = default`) and no split-include or split-exclude routes. */
  fullTunnel?: boolean;
  /** DPD interval in seconds that ocserv announces (60 when omitted). */
  dpdSeconds?: number;
  /** False leaves out the split-exclude routes (`no-route`); true when omitted. */
  splitExclude?: boolean;
  /** An IPv6 pool, IPv6 split routes and IPv6 links (see `ipv6` of Headend). */
  ipv6?: boolean;
  /** Start the tunnel and local DNS servers that log every query (see `dns` of Headend). */
  dnsServers?: boolean;
  /**
   * What ocserv announces besides the DNS server: `list` (split-dns corp.example and lab.example,
   * default-domain corp.example; the default), `none-default-domain` (default-domain only) or
   * `none`.
   */
  splitDns?: 'list' | 'none-default-domain' | 'none';
  /** Move the tunnel DNS server to 198.18.30.10, outside every split-include. */
  dnsOutside?: boolean;
  /**
   * Put the client namespace on 198.18.1.2/24 with the hub (198.18.1.1) as its default router, so
   * the headend's address is no longer on the client's own link.
   */
  routedClient?: boolean;
  /** A faulty server certificate for trust tests (a valid one signed by the rig CA when omitted). */
  serverCert?: 'valid' | 'self-signed' | 'expired' | 'wrong-name';
  /** Rekey period in seconds and method that ocserv announces (172800 s, ssl when omitted). */
  rekey?: { seconds: number; method: 'ssl' | 'new-tunnel' };
  /**
   * Certificate authentication only (`auth = "certificate"`, user name from the CN): a login
   * without a client certificate fails. See `clientCertificate` of Headend.
   */
  certAuth?: boolean;
  /** Like certAuth, but ocserv requires the password as well as the certificate. */
  certAndPassword?: boolean;
}

/** A running test headend; field values come from the state directory's headend.env. */
export interface Headend {
  prefix: string;
  fullTunnel: boolean;
  stateDir: string;
  /** https://vpn.rig.test (resolved by the client namespace's own hosts file). */
  url: string;
  headendIp: string;
  clientNs: string;
  hubNs: string;
  lanNs: string;
  caFile: string;
  user: string;
  password: string;
  targetHost: string;
  targetTcpPort: number;
  dnsServer: string;
  excludedHost: string;
  ocservLog: string;
  connectEventsLog: string;
  occtlSocket: string;
  /** pin-sha256:BASE64 of the server certificate's SubjectPublicKeyInfo. */
  serverPin: string;
  /** Present with the `ipv6` option. */
  ipv6?: HeadendIpv6;
  /** Present with the `dnsServers` option. */
  dns?: HeadendDnsServers;
  /** Present with the `certAuth` option. */
  clientCertificate?: HeadendClientCertificate;
  /** Stops every process of the headend and removes its namespaces; safe to call twice. */
  stop(): Promise<void>;
}

/** IPv6 addresses of a headend started with `ipv6`; the headend itself stays IPv4-only. */
export interface HeadendIpv6 {
  /** The client namespace's own address on its link to the hub. */
  clientIp: string;
  /** The hub's address on that link and the client namespace's IPv6 default gateway. */
  hubClientIp: string;
  /** Lan host inside the IPv6 split-include fd00:10::/64. */
  targetHost: string;
  /** Lan host inside the IPv6 split-exclude fd00:10::c0/122. */
  excludedHost: string;
}

/**
 * DNS servers of a headend started with `dnsServers`. Each log contains one JSON line per query,
 * `{"name", "type", "transport"}`, with the name lower-cased and without its final dot.
 */
export interface HeadendDnsServers {
  /** Query log of the tunnel DNS server (at `dnsServer`), which has records only under corp.example and lab.example. */
  tunnelLog: string;
  /** Address the tunnel DNS server returns for every name it has a record for. */
  tunnelAnswer: string;
  /** The resolver the client namespace's resolv.conf names; reached without the tunnel. */
  localServer: string;
  localLog: string;
  /** Address the local DNS server returns for every name. */
  localAnswer: string;
}

/**
 * The user's certificate (CN = user, signed by the headend CA, EC P-256 key) of a headend started
 * with `certAuth`, as two PKCS#12 files with the CA included and the same password.
 */
export interface HeadendClientCertificate {
  /** AES-256-CBC encryption and a SHA-256 MAC, which Node reads itself. */
  p12File: string;
  /** `openssl pkcs12 -legacy`: RC2-40 certificates, 3DES key, SHA-1 MAC. */
  legacyP12File: string;
  /** The same user with an RSA key (modern AES file). */
  rsaP12File: string;
  password: string;
}

export interface NsExecOptions {
  /** Milliseconds before the command gets SIGKILL; default 10 000. */
  timeoutMs?: number;
  /** Written to the command's standard input, which is then closed. */
  input?: string;
  env?: NodeJS.ProcessEnv;
}

export interface NsExecResult {
  /** Exit status, or null when a signal ended the command. */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

// ---------------------------------------------------------------------------------------------
// Running commands

/** Runs a command to completion and resolves with its result whatever its exit status. */
export function runCommand(argv: readonly string[], options: NsExecOptions = {}): Promise<NsExecResult> {
  const [file, ...args] = argv;
  if (file === undefined) {
    return Promise.reject(new TypeError('runCommand: argv is empty; pass the program and its arguments'));
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;

  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      env: options.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const stdout = captureStream(child.stdout);
    const stderr = captureStream(child.stderr);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);

    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`failed to start ${argv.join(' ')}: ${err.message}`, { cause: err }));
    });
    child.on('close', (exitCode, signal) => {
      clearTimeout(timer);
      resolve({ exitCode, signal, stdout: stdout(), stderr: stderr(), timedOut });
    });

    // A command that exits without reading its input makes the write fail with EPIPE.
    child.stdin?.on('error', () => {});
    child.stdin?.end(options.input ?? '');
  });
}

/** Runs a command inside network namespace NS (`ip netns exec`) and resolves with its result. */
export function nsExec(ns: string, argv: readonly string[], options: NsExecOptions = {}): Promise<NsExecResult> {
  if (argv.length === 0) {
    return Promise.reject(new TypeError(`nsExec: argv is empty for namespace ${ns}`));
  }
  return runCommand(['ip', 'netns', 'exec', ns, ...argv], options);
}

/**
 * Like nsExec, but rejects unless the command exits with status 0, with its output in the
 * message.
 */
export async function nsExecOk(
  ns: string,
  argv: readonly string[],
  options: NsExecOptions = {},
): Promise<NsExecResult> {
  const result = await nsExec(ns, argv, options);
  if (result.exitCode !== 0) {
    throw new Error(`in ${ns}: ${argv.join(' ')} failed: ${describeResult(result)}`);
  }
  return result;
}

/**
 * Starts a long-running command inside NS and returns the child. `ip netns exec` replaces itself
 * with the command, so child.pid is the command's own PID and a signal sent to it reaches the
 * command. The caller must end the child.
 */
export function nsSpawn(ns: string, argv: readonly string[], options: SpawnOptions = {}): ChildProcess {
  if (argv.length === 0) {
    throw new TypeError(`nsSpawn: argv is empty for namespace ${ns}`);
  }
  return spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['pipe', 'pipe', 'pipe'], ...options });
}

export function describeResult(result: NsExecResult): string {
  const status = result.timedOut
    ? 'timed out'
    : result.signal !== null
      ? `ended by ${result.signal}`
      : `exit status ${result.exitCode}`;
  return `${status}; stdout: ${result.stdout.trim() || '(empty)'}; stderr: ${result.stderr.trim() || '(empty)'}`;
}

function captureStream(stream: NodeJS.ReadableStream | null): () => string {
  const chunks: Buffer[] = [];
  let size = 0;
  stream?.on('data', (chunk: Buffer) => {
    if (size + chunk.length <= MAX_CAPTURED_BYTES) {
      chunks.push(chunk);
      size += chunk.length;
    }
  });
  return () => Buffer.concat(chunks).toString('utf8');
}

// ---------------------------------------------------------------------------------------------
// Headend lifecycle

export async function startHeadend(options: HeadendOptions): Promise<Headend> {
  const { prefix } = options;
  const fullTunnel = options.fullTunnel ?? false;
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$/.test(prefix)) {
    throw new TypeError(`startHeadend: invalid prefix '${prefix}'; use 1-40 letters, digits, '-' or '_'`);
  }

  // Leftovers of an earlier run that died before its teardown.
  await runHeadendScript(['sweep', '--prefix', prefix]);

  const stateDir = await mkdtemp(join(tmpdir(), `${prefix}-`));
  const upArgs = ['up', '--prefix', prefix, '--state-dir', stateDir];
  if (fullTunnel) upArgs.push('--full-tunnel');
  if (options.dpdSeconds !== undefined) upArgs.push('--dpd', String(options.dpdSeconds));
  if (options.splitExclude === false) upArgs.push('--no-split-exclude');
  if (options.ipv6 === true) upArgs.push('--ipv6');
  if (options.dnsServers === true) upArgs.push('--dns-servers');
  if (options.splitDns !== undefined) upArgs.push('--split-dns', options.splitDns);
  if (options.dnsOutside === true) upArgs.push('--dns-outside');
  if (options.routedClient === true) upArgs.push('--routed-client');
  if (options.serverCert !== undefined) upArgs.push('--server-cert', options.serverCert);
  if (options.rekey !== undefined) upArgs.push('--rekey', String(options.rekey.seconds), '--rekey-method', options.rekey.method);
  if (options.certAuth === true) upArgs.push('--cert-auth');
  if (options.certAndPassword === true) upArgs.push('--cert-and-password');
  try {
    // On failure the script has already torn down what it built and printed the log tail.
    await runHeadendScript(upArgs);
    const env = parseEnvFile(await readFile(join(stateDir, 'headend.env'), 'utf8'));
    const password = (await readFile(requireKey(env, 'VPN_PASSWORD_FILE'), 'utf8')).trim();
    const headend = buildHeadend(prefix, fullTunnel, stateDir, env, password);
    if (env.CLIENT_CERT_P12 !== undefined) {
      headend.clientCertificate = {
        p12File: env.CLIENT_CERT_P12,
        legacyP12File: requireKey(env, 'CLIENT_CERT_LEGACY_P12'),
        rsaP12File: requireKey(env, 'CLIENT_CERT_RSA_P12'),
        password: (await readFile(requireKey(env, 'CLIENT_CERT_PASSWORD_FILE'), 'utf8')).trim(),
      };
    }
    return headend;
  } catch (err) {
    await runHeadendScript(['down', '--prefix', prefix, '--state-dir', stateDir]).catch(() => {});
    await rm(stateDir, { recursive: true, force: true });
    throw err;
  }
}

function buildHeadend(
  prefix: string,
  fullTunnel: boolean,
  stateDir: string,
  env: Record<string, string>,
  password: string,
): Headend {
  const targetTcpPort = Number(requireKey(env, 'TARGET_TCP_PORT'));
  if (!Number.isInteger(targetTcpPort)) {
    throw new Error(`headend.env: TARGET_TCP_PORT is not a port number: ${env.TARGET_TCP_PORT}`);
  }
  let stopped: Promise<void> | undefined;

  return {
    prefix,
    fullTunnel,
    stateDir,
    url: requireKey(env, 'HEADEND_URL'),
    headendIp: requireKey(env, 'HEADEND_IP'),
    clientNs: requireKey(env, 'CLIENT_NS'),
    hubNs: requireKey(env, 'HUB_NS'),
    lanNs: requireKey(env, 'LAN_NS'),
    caFile: requireKey(env, 'CAFILE'),
    user: requireKey(env, 'VPN_USER'),
    password,
    targetHost: requireKey(env, 'TARGET_HOST'),
    targetTcpPort,
    dnsServer: requireKey(env, 'DNS_SERVER'),
    excludedHost: requireKey(env, 'EXCLUDED_HOST'),
    ocservLog: requireKey(env, 'OCSERV_LOG'),
    connectEventsLog: requireKey(env, 'CONNECT_EVENTS_LOG'),
    occtlSocket: requireKey(env, 'OCCTL_SOCKET'),
    serverPin: requireKey(env, 'SERVER_PIN'),
    ipv6:
      env.TARGET_HOST6 === undefined
        ? undefined
        : {
            clientIp: requireKey(env, 'CLIENT_IP6'),
            hubClientIp: requireKey(env, 'HUB_CLIENT_IP6'),
            targetHost: requireKey(env, 'TARGET_HOST6'),
            excludedHost: requireKey(env, 'EXCLUDED_HOST6'),
          },
    dns:
      env.TUNNEL_DNS_LOG === undefined
        ? undefined
        : {
            tunnelLog: requireKey(env, 'TUNNEL_DNS_LOG'),
            tunnelAnswer: requireKey(env, 'TUNNEL_DNS_ANSWER'),
            localServer: requireKey(env, 'LOCAL_DNS_SERVER'),
            localLog: requireKey(env, 'LOCAL_DNS_LOG'),
            localAnswer: requireKey(env, 'LOCAL_DNS_ANSWER'),
          },
    stop() {
      stopped ??= stopHeadend(prefix, stateDir);
      return stopped;
    },
  };
}

async function stopHeadend(prefix: string, stateDir: string): Promise<void> {
  await runHeadendScript(['down', '--prefix', prefix, '--state-dir', stateDir]);
  if (process.env[KEEP_STATE_VARIABLE] === '1') {
    console.warn(`headend state kept in ${stateDir} (${KEEP_STATE_VARIABLE}=1)`);
    return;
  }
  await rm(stateDir, { recursive: true, force: true });
}

async function runHeadendScript(args: string[]): Promise<NsExecResult> {
  const result = await runCommand(['bash', HEADEND_SCRIPT, ...args], { timeoutMs: SCRIPT_TIMEOUT_MS });
  if (result.exitCode !== 0) {
    throw new Error(`headend.sh ${args[0]} failed: ${describeResult(result)}`);
  }
  return result;
}

/** Parses KEY=VALUE lines (no quoting: headend.sh writes only unquoted values). */
export function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const equals = line.indexOf('=');
    if (equals <= 0) throw new Error(`headend.env: line without KEY=VALUE: ${line}`);
    env[line.slice(0, equals)] = line.slice(equals + 1);
  }
  return env;
}

function requireKey(env: Record<string, string>, key: string): string {
  const value = env[key];
  if (value === undefined || value === '') {
    throw new Error(`headend.env: ${key} is missing; headend.sh and this helper disagree`);
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Waiting on logs

/**
 * Polls a file until a line matches PATTERN and returns that line. Rejects after TIMEOUT_MS
 * with the file's last lines in the message.
 */
export async function waitForLine(path: string, pattern: RegExp, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let text = '';
  for (;;) {
    text = await readFile(path, 'utf8').catch(() => '');
    const line = text.split('\n').find((candidate) => pattern.test(candidate));
    if (line !== undefined) return line;
    if (Date.now() >= deadline) break;
    await sleep(100);
  }
  const tail = text.split('\n').slice(-20).join('\n');
  throw new Error(`no line matching ${pattern} in ${path} within ${timeoutMs} ms; last lines:\n${tail}`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
