#!/usr/bin/env node
// Throughput benchmark: acvpn against OpenConnect through the same ocserv headend.
//
//   sudo node bench/throughput.mjs [--runs N] [--seconds S] [--variants LIST] [--smoke]
//
// Brings up the test headend (scripts/headend/headend.sh) in network namespaces, runs an iperf3
// server on the lan host behind it, then for each run connects one client in the client
// namespace, measures iperf3 upload and download through the tunnel and the client's CPU time
// and peak RSS, and logs off. Variants alternate (A B C A B C ...) so that slow drift of the
// machine spreads over all of them. Prints a table and writes every raw run to
// bench/results/throughput-<timestamp>.json. See bench/README.md.

import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import {
  NamespaceProcess,
  describeResult,
  nsRun,
  readCpuSeconds,
  readPeakRssBytes,
  runCommand,
  runCommandOk,
  sleep,
} from './lib/process.mjs';
import { compare, describeComparisons, renderTable, summarise } from './lib/report.mjs';
import { DEFAULT_VARIANTS, VARIANTS, selectVariants } from './lib/variants.mjs';

const REPO_DIR = fileURLToPath(new URL('..', import.meta.url));
const HEADEND_SCRIPT = join(REPO_DIR, 'scripts/headend/headend.sh');
const RESULTS_DIR = join(REPO_DIR, 'bench/results');
const PREFIX = 'acvpn-bench';

const IPERF_PORT = 5201;
/** The lan network behind the headend that the `staff` group routes through the tunnel. */
const LAN_NETWORK = '198.18.10.0/24';

const HEADEND_SCRIPT_TIMEOUT_MS = 90_000;
const LISTEN_TIMEOUT_MS = 10_000;
const CONNECT_TIMEOUT_MS = 30_000;
/** openconnect 9.01 starts DTLS a moment after CSTP, so a DTLS run waits this long for it. */
const DTLS_TIMEOUT_MS = 10_000;
/** iperf3 gets this much time beyond the test length before it is killed. */
const IPERF_SLACK_MS = 30_000;
/**
 * Pause before each iperf3 test. When an upload ends, the client's TCP send buffer still contains
 * a few MB, which drain through the tunnel afterwards. Without the pause, a download started right
 * after an acvpn upload often failed with "unable to receive control message: Connection reset
 * by peer" (iperf3 3.12). NOTE: that the server is still busy with the old test is a guess.
 */
const SETTLE_MS = 1_000;
/** Attempts per direction when iperf3's control connection is reset or the server is busy. */
const IPERF_ATTEMPTS = 3;
const CLIENT_STOP_GRACE_MS = 10_000;
const INTERFACE_GONE_TIMEOUT_MS = 5_000;

// ---------------------------------------------------------------------------------------------
// Options

const USAGE = `usage: sudo node bench/throughput.mjs [options]

  --runs N           runs per variant (default 3, at least 1)
  --seconds S        length of each iperf3 test in seconds, per direction (default 10)
  --variants LIST    comma-separated variants to run, alternating in this order
                     (default ${DEFAULT_VARIANTS.join(',')}; known: ${VARIANTS.map((variant) => variant.name).join(', ')})
  --smoke            one run per variant with 2-second tests, for CI; same as --runs 1 --seconds 2
  --report FILE      print the table for a results file written earlier, without running anything
  --help             print this text

Exit status: 0 when every run connected and moved data both ways, 1 when a run failed or the
setup failed, 2 on bad arguments, 130 or 143 when interrupted.`;

function parseOptions(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      runs: { type: 'string' },
      seconds: { type: 'string' },
      variants: { type: 'string' },
      smoke: { type: 'boolean', default: false },
      report: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const runs = parsePositiveInteger('--runs', values.runs ?? (values.smoke ? '1' : '3'));
  const seconds = parsePositiveInteger('--seconds', values.seconds ?? (values.smoke ? '2' : '10'));
  const variants = selectVariants(values.variants ?? DEFAULT_VARIANTS.join(','));
  const names = variants.map((variant) => variant.name);
  const duplicate = names.find((name, index) => names.indexOf(name) !== index);
  if (duplicate !== undefined) throw new Error(`--variants names ${duplicate} twice; name each variant once`);
  return { runs, seconds, variants, smoke: values.smoke, reportFile: values.report };
}

function parsePositiveInteger(flag, text) {
  if (!/^[1-9][0-9]{0,5}$/.test(text)) throw new Error(`${flag} must be a positive whole number, got '${text}'`);
  return Number(text);
}

// ---------------------------------------------------------------------------------------------
// Cleanup on every exit path

/**
 * Undo steps run in reverse order of registration, once, whether the benchmark finishes, fails
 * or is interrupted.
 */
class Cleanup {
  steps = [];
  finished = undefined;

  /** Registers STEP and returns a function that unregisters it after the caller undid it itself. */
  add(description, step) {
    const entry = { description, step };
    this.steps.push(entry);
    return () => {
      this.steps = this.steps.filter((candidate) => candidate !== entry);
    };
  }

  run() {
    this.finished ??= (async () => {
      for (const { description, step } of this.steps.reverse()) {
        try {
          await step();
        } catch (err) {
          console.error(`cleanup: ${description} failed: ${err.message}`);
        }
      }
      this.steps = [];
    })();
    return this.finished;
  }
}

const cleanup = new Cleanup();
let interrupted = false;

function installSignalHandlers() {
  const handle = (signal, status) => {
    if (interrupted) {
      console.error(`${signal} again while cleaning up; cleanup continues (bounded by its own timeouts)`);
      return;
    }
    interrupted = true;
    console.error(`${signal} received; stopping clients, iperf3 and the headend`);
    void cleanup.run().finally(() => process.exit(status));
  };
  process.on('SIGINT', () => handle('SIGINT', 130));
  process.on('SIGTERM', () => handle('SIGTERM', 143));
  process.on('SIGHUP', () => handle('SIGHUP', 129));
}

/** Throws once the benchmark is being interrupted, so the main loop starts nothing new. */
function checkInterrupted() {
  if (interrupted) throw new Error('interrupted');
}

// ---------------------------------------------------------------------------------------------
// Preconditions

async function checkPreconditions() {
  if (process.getuid?.() !== 0) {
    throw new Error('must run as root: the benchmark creates network namespaces and TUN devices (try sudo)');
  }
  if (!existsSync(join(REPO_DIR, 'dist/cli/main.js'))) {
    throw new Error('dist/cli/main.js not found: build acvpn first with `npm run build`');
  }
  for (const program of ['iperf3', 'openconnect', 'ocserv', 'ip', 'ss', 'ping']) {
    const found = await runCommand(['sh', '-c', 'command -v "$1"', 'sh', program]);
    if (found.exitCode !== 0) throw new Error(`${program} not found on PATH; install it (scripts/install-deps.sh lists the packages)`);
  }
}

// ---------------------------------------------------------------------------------------------
// Headend and iperf3 server

async function startHeadend() {
  // Leftovers of an earlier run that died before its teardown.
  await runCommandOk(['bash', HEADEND_SCRIPT, 'sweep', '--prefix', PREFIX], { timeoutMs: HEADEND_SCRIPT_TIMEOUT_MS });

  const stateDir = await mkdtemp(join(tmpdir(), `${PREFIX}-`));
  cleanup.add('remove the headend state directory', () => rm(stateDir, { recursive: true, force: true }));
  // `down` is idempotent and also sweeps, so it is safe even when `up` failed halfway.
  cleanup.add('stop the headend', () =>
    runCommandOk(['bash', HEADEND_SCRIPT, 'down', '--prefix', PREFIX, '--state-dir', stateDir], {
      timeoutMs: HEADEND_SCRIPT_TIMEOUT_MS,
    }),
  );
  checkInterrupted();
  await runCommandOk(['bash', HEADEND_SCRIPT, 'up', '--prefix', PREFIX, '--state-dir', stateDir], {
    timeoutMs: HEADEND_SCRIPT_TIMEOUT_MS,
  });

  const env = parseEnvFile(await readFile(join(stateDir, 'headend.env'), 'utf8'));
  const password = (await readFile(env.VPN_PASSWORD_FILE, 'utf8')).trim();
  // acvpn's run directory (route undo file) and state directory (device id) stay out of /run and /var/lib.
  const acvpnRunDir = join(stateDir, 'acvpn-run');
  const acvpnStateDir = join(stateDir, 'acvpn-state');
  await mkdir(acvpnRunDir, { mode: 0o700 });
  await mkdir(acvpnStateDir, { mode: 0o700 });
  return {
    stateDir,
    url: env.HEADEND_URL,
    caFile: env.CAFILE,
    user: env.VPN_USER,
    password,
    clientNs: env.CLIENT_NS,
    lanNs: env.LAN_NS,
    targetHost: env.TARGET_HOST,
    lanNetwork: LAN_NETWORK,
    acvpnRunDir,
    acvpnStateDir,
  };
}

/** Parses headend.env: KEY=VALUE lines without quoting, as headend.sh writes them. */
function parseEnvFile(text) {
  const env = {};
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const equals = line.indexOf('=');
    if (equals <= 0) throw new Error(`headend.env: line without KEY=VALUE: ${line}`);
    env[line.slice(0, equals)] = line.slice(equals + 1);
  }
  for (const key of ['HEADEND_URL', 'CAFILE', 'VPN_USER', 'VPN_PASSWORD_FILE', 'CLIENT_NS', 'LAN_NS', 'TARGET_HOST']) {
    if (!env[key]) throw new Error(`headend.env: ${key} is missing; headend.sh and this benchmark disagree`);
  }
  return env;
}

async function startIperfServer(context) {
  // --rcv-timeout frees the server within 10 s when a client dies in the middle of a test, so
  // the next run does not find it busy.
  const server = new NamespaceProcess('iperf3 server', context.lanNs, [
    'iperf3', '--server', '--bind', context.targetHost, '--port', String(IPERF_PORT), '--rcv-timeout', '10000',
  ]);
  cleanup.add(`stop the iperf3 server (PID ${server.pid})`, () => server.stop('SIGTERM', 5_000));

  const deadline = Date.now() + LISTEN_TIMEOUT_MS;
  for (;;) {
    if (!server.running) throw new Error(`iperf3 server exited before listening: ${server.output().trim()}`);
    const listeners = await nsRun(context.lanNs, ['ss', '-H', '-l', '-t', '-n', `sport = :${IPERF_PORT}`]);
    if (listeners.stdout.includes('LISTEN')) return server;
    if (Date.now() > deadline) throw new Error(`iperf3 server is not listening on ${context.targetHost}:${IPERF_PORT} after ${LISTEN_TIMEOUT_MS} ms`);
    await sleep(100);
  }
}

// ---------------------------------------------------------------------------------------------
// One run

/** Connects VARIANT's client, measures upload then download, logs off; returns the raw record. */
async function measureRun(context, variant, round, seconds) {
  // The load average shows whether other work shared the CPUs during the run.
  const record = { variant: variant.name, round, startedAt: new Date().toISOString(), loadAverage1m: loadavg()[0], ok: false };
  const { argv, input, env } = variant.command(context);
  const startedMs = Date.now();
  const client = new NamespaceProcess(variant.name, context.clientNs, argv, { input, env });
  const unregister = cleanup.add(`stop ${variant.name} (PID ${client.pid})`, () => client.stop('SIGINT', CLIENT_STOP_GRACE_MS));
  record.pid = client.pid;

  try {
    await waitForTunnel(context, variant, client);
    record.connectSeconds = (Date.now() - startedMs) / 1000;
    if (variant.transport === 'dtls') await waitForOutput(client, variant.dtlsPattern, DTLS_TIMEOUT_MS);
    record.mtu = await readMtu(context, variant.interfaceName);

    checkInterrupted();
    const cpuBeforeUpload = await readCpuSeconds(client.pid);
    record.upload = await runIperf(context, seconds, { reverse: false });
    const cpuBeforeDownload = await readCpuSeconds(client.pid);
    checkInterrupted();
    record.download = await runIperf(context, seconds, { reverse: true });
    // Both readings come before SIGINT, so the logoff's own work is not counted.
    const cpuAfterDownload = await readCpuSeconds(client.pid);
    record.peakRssBytes = await readPeakRssBytes(client.pid);
    record.cpuSeconds = {
      connect: cpuBeforeUpload,
      upload: cpuBeforeDownload - cpuBeforeUpload,
      download: cpuAfterDownload - cpuBeforeDownload,
      total: cpuAfterDownload,
    };

    if (!client.running) throw new Error(`${variant.name} exited during the test`);
    if (record.upload.bytes <= 0 || record.download.bytes <= 0) {
      throw new Error(`${variant.name} moved no data (upload ${record.upload.bytes} B, download ${record.download.bytes} B)`);
    }
    record.ok = true;
  } catch (err) {
    record.error = err.message;
  } finally {
    record.dtlsSeen = variant.dtlsPattern.test(client.output());
    record.exit = await client.stop('SIGINT', CLIENT_STOP_GRACE_MS);
    unregister();
    record.interfaceRemoved = await waitForInterfaceGone(context, variant.interfaceName);
    if (!record.ok) record.clientOutputTail = client.output().trim().split('\n').slice(-30).join('\n');
  }
  return record;
}

/**
 * Waits until the route to the target goes through the variant's TUN device and one ping
 * crosses the tunnel. The route alone is not enough: a client may add it before its data path runs.
 */
async function waitForTunnel(context, variant, client) {
  const deadline = Date.now() + CONNECT_TIMEOUT_MS;
  for (;;) {
    if (!client.running) {
      throw new Error(`${variant.name} exited before the tunnel came up (${JSON.stringify(client.exitStatus)})`);
    }
    const route = await nsRun(context.clientNs, ['ip', '-json', 'route', 'get', context.targetHost]);
    const viaTunnel = route.exitCode === 0 && JSON.parse(route.stdout)[0]?.dev === variant.interfaceName;
    if (viaTunnel) {
      const ping = await nsRun(context.clientNs, ['ping', '-c', '1', '-W', '1', context.targetHost]);
      if (ping.exitCode === 0) return;
    }
    if (Date.now() > deadline) {
      throw new Error(`${variant.name}: no working route to ${context.targetHost} via ${variant.interfaceName} after ${CONNECT_TIMEOUT_MS} ms`);
    }
    await sleep(100);
  }
}

/** Waits until the client's output matches PATTERN; returns false on timeout or exit. */
async function waitForOutput(client, pattern, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && client.running) {
    if (pattern.test(client.output())) return true;
    await sleep(100);
  }
  return pattern.test(client.output());
}

async function readMtu(context, interfaceName) {
  const link = await nsRun(context.clientNs, ['ip', '-json', 'link', 'show', 'dev', interfaceName]);
  return link.exitCode === 0 ? JSON.parse(link.stdout)[0]?.mtu ?? null : null;
}

/**
 * Runs one iperf3 test after the settle pause, and again (up to IPERF_ATTEMPTS in all) when the
 * control connection failed or was reset before the test began. Other failures throw at once.
 * The result records how many attempts it took.
 */
async function runIperf(context, seconds, { reverse }) {
  for (let attempt = 1; ; attempt++) {
    checkInterrupted();
    await sleep(SETTLE_MS);
    try {
      return { ...(await runIperfOnce(context, seconds, { reverse })), attempts: attempt };
    } catch (err) {
      // Each of these errors comes before any data moved, so a retry does not change the result.
      const notStarted = /unable to receive control message|unable to connect to server|server is busy/.test(err.message);
      if (!notStarted || attempt >= IPERF_ATTEMPTS) throw err;
      console.error(`iperf3 ${reverse ? 'download' : 'upload'} attempt ${attempt} failed before the test began (${err.message}); trying again`);
    }
  }
}

async function runIperfOnce(context, seconds, { reverse }) {
  const argv = [
    'iperf3', '--client', context.targetHost, '--port', String(IPERF_PORT),
    '--time', String(seconds), '--json', '--connect-timeout', '5000',
  ];
  // iperf3 3.12 accepts --rcv-timeout on the client only when the client receives.
  if (reverse) argv.push('--reverse', '--rcv-timeout', '10000');
  const result = await nsRun(context.clientNs, argv, { timeoutMs: seconds * 1000 + IPERF_SLACK_MS });
  const direction = reverse ? 'download' : 'upload';

  let report;
  try {
    report = JSON.parse(result.stdout);
  } catch {
    throw new Error(`iperf3 ${direction} printed no JSON report: ${describeResult(result)}`);
  }
  if (report.error !== undefined || result.exitCode !== 0) {
    throw new Error(`iperf3 ${direction} failed: ${report.error ?? describeResult(result)}`);
  }
  // sum_received counts what reached the receiving side, so data lost in the tunnel is not counted.
  const received = report.end?.sum_received;
  const sent = report.end?.sum_sent;
  if (received === undefined || sent === undefined) throw new Error(`iperf3 ${direction} report has no end.sum_received`);
  return {
    bytes: received.bytes,
    seconds: received.seconds,
    bitsPerSecond: received.bits_per_second,
    retransmits: sent.retransmits ?? null,
  };
}

/** Waits for the client's TUN device to disappear; returns whether it did. */
async function waitForInterfaceGone(context, interfaceName) {
  const deadline = Date.now() + INTERFACE_GONE_TIMEOUT_MS;
  for (;;) {
    const link = await nsRun(context.clientNs, ['ip', 'link', 'show', 'dev', interfaceName]);
    if (link.exitCode !== 0) return true;
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
}

// ---------------------------------------------------------------------------------------------
// Machine and versions, recorded with the results

async function describeMachine() {
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8');
  const meminfo = await readFile('/proc/meminfo', 'utf8');
  const firstLine = async (argv) => {
    const result = await runCommand(argv).catch(() => null);
    return result?.exitCode === 0 ? (result.stdout || result.stderr).trim().split('\n')[0] : null;
  };
  const gitStatus = await runCommand(['git', '-C', REPO_DIR, 'status', '--porcelain', '--untracked-files=no']).catch(() => null);
  return {
    nproc: availableParallelism(),
    cpuModel: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? null,
    memTotalKiB: Number(/^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1] ?? NaN),
    kernel: await firstLine(['uname', '-r']),
    node: process.version,
    openconnect: await firstLine(['openconnect', '--version']),
    ocserv: await firstLine(['ocserv', '--version']),
    iperf3: await firstLine(['iperf3', '--version']),
    acvpnCommit: await firstLine(['git', '-C', REPO_DIR, 'rev-parse', 'HEAD']),
    acvpnTreeModified: gitStatus?.exitCode === 0 ? gitStatus.stdout.trim() !== '' : null,
  };
}

// ---------------------------------------------------------------------------------------------
// Main

/** Upper bound for the whole benchmark, after which it cleans up and exits with status 1. */
function overallTimeoutMs(options) {
  const perRun = CONNECT_TIMEOUT_MS + DTLS_TIMEOUT_MS + 2 * (options.seconds * 1000 + IPERF_SLACK_MS) + CLIENT_STOP_GRACE_MS + 15_000;
  return 3 * HEADEND_SCRIPT_TIMEOUT_MS + options.runs * options.variants.length * perRun;
}

async function main() {
  let options;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (err) {
    console.error(`${err.message}\n\n${USAGE}`);
    return 2;
  }
  if (options.reportFile !== undefined) return printSavedReport(options.reportFile);

  installSignalHandlers();
  const watchdog = setTimeout(() => {
    console.error(`benchmark still running after ${overallTimeoutMs(options) / 1000} s; cleaning up and giving up`);
    interrupted = true;
    void cleanup.run().finally(() => process.exit(1));
  }, overallTimeoutMs(options));

  const runs = [];
  const startedAt = new Date();
  try {
    await checkPreconditions();
    const machine = await describeMachine();
    console.error(`starting headend ${PREFIX} (${machine.nproc} CPUs, ${machine.cpuModel})`);
    const context = await startHeadend();
    await startIperfServer(context);

    const order = options.variants.map((variant) => variant.name).join(' ');
    console.error(`${options.runs} round(s) of [${order}], ${options.seconds} s per direction`);
    for (let round = 1; round <= options.runs; round++) {
      for (const variant of options.variants) {
        checkInterrupted();
        const record = await measureRun(context, variant, round, options.seconds);
        runs.push(record);
        console.error(describeRun(record));
      }
    }

    const summaries = summarise(options.variants, runs);
    const comparisons = compare(summaries);
    const finishedAt = new Date();
    const resultsFile = await writeResults({ options, machine, startedAt, finishedAt, runs, summaries, comparisons });

    printReport(summaries, comparisons);
    console.log(`raw runs: ${resultsFile}`);

    const failed = runs.filter((run) => !run.ok);
    if (failed.length > 0) {
      console.error(`${failed.length} of ${runs.length} runs failed: ${failed.map((run) => `${run.variant} round ${run.round}`).join(', ')}`);
      return 1;
    }
    return 0;
  } catch (err) {
    console.error(`benchmark failed: ${err.message}`);
    return 1;
  } finally {
    clearTimeout(watchdog);
    await cleanup.run();
  }
}

function printReport(summaries, comparisons) {
  console.log(renderTable(summaries, comparisons));
  for (const sentence of describeComparisons(comparisons)) console.log(`  ${sentence}`);
  warnAboutTransport(summaries);
}

/** Summarises the raw runs of a results file again, so new metrics apply to old measurements. */
async function printSavedReport(file) {
  let document;
  try {
    document = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    console.error(`cannot read results file ${file}: ${err.message}`);
    return 2;
  }
  const variants = selectVariants(document.options.variants.join(','));
  const summaries = summarise(variants, document.runs);
  console.log(`${document.command} (${document.startedAt}, ${document.machine.nproc} × ${document.machine.cpuModel})`);
  printReport(summaries, compare(summaries));
  return 0;
}

function describeRun(record) {
  const head = `${record.variant} round ${record.round}:`;
  if (!record.ok) return `${head} FAILED: ${record.error}\n${record.clientOutputTail ?? ''}`;
  const mbps = (direction) => (record[direction].bitsPerSecond / 1e6).toFixed(0);
  const cpu = (record.cpuSeconds.upload + record.cpuSeconds.download).toFixed(2);
  const dtls = record.dtlsSeen ? ', DTLS' : '';
  const retries = record.upload.attempts + record.download.attempts - 2;
  const retried = retries > 0 ? `, ${retries} iperf3 retr${retries === 1 ? 'y' : 'ies'}` : '';
  return `${head} up ${mbps('upload')} Mbit/s, down ${mbps('download')} Mbit/s, CPU ${cpu} s, MTU ${record.mtu}${dtls}${retried}`;
}

/** Flags a DTLS variant that never saw DTLS, or a CSTP variant that did: its numbers are mislabelled. */
function warnAboutTransport(summaries) {
  for (const summary of summaries) {
    const expected = summary.transport === 'dtls' ? summary.okRuns : 0;
    if (summary.dtlsSeenRuns !== expected) {
      console.error(`warning: ${summary.variant} saw DTLS in ${summary.dtlsSeenRuns} of ${summary.okRuns} runs; its rows may measure the other transport`);
    }
  }
}

async function writeResults(results) {
  await mkdir(RESULTS_DIR, { recursive: true });
  const stamp = results.startedAt.toISOString().replace(/[:.]/g, '-');
  const file = join(RESULTS_DIR, `throughput-${stamp}.json`);
  const document = {
    benchmark: 'throughput',
    command: ['node', 'bench/throughput.mjs', ...process.argv.slice(2)].join(' '),
    startedAt: results.startedAt.toISOString(),
    finishedAt: results.finishedAt.toISOString(),
    options: { runs: results.options.runs, seconds: results.options.seconds, variants: results.options.variants.map((variant) => variant.name) },
    machine: results.machine,
    summaries: results.summaries,
    comparisons: results.comparisons,
    runs: results.runs,
  };
  await writeFile(file, `${JSON.stringify(document, null, 2)}\n`);
  return file;
}

process.exitCode = await main();
