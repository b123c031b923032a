// `acvpn certs`: manages the two certificate stores in the state directory. Server certificates
// (<state-dir>/certificates) are headend certificates trusted byte for byte; client certificates
// (<state-dir>/client-certificates) are identities for certificate authentication.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { AcvpnError, ExitCode, toAcvpnError } from '../core/errors.js';
import { redactText, registerSecret } from '../core/redact.js';
import type { CertificateDetails } from '../trust/chain.js';
import { checkClientCertificate, ClientCertificateStore, type StoredClientCertificate } from '../trust/client-cert.js';
import { CertificateStore, type StoredCertificate } from '../trust/store.js';
import { promptOnTerminal } from './prompt.js';
import { readStdinLines } from './stdin.js';

export const certsUsageText = `Usage: acvpn certs import-server FILE [--state-dir DIR]
       acvpn certs import-client FILE.p12 --alias NAME [--password-on-stdin] [--state-dir DIR]
       acvpn certs list [--json] [--state-dir DIR]
       acvpn certs show ID|ALIAS [--state-dir DIR]
       acvpn certs delete ID|ALIAS [--state-dir DIR]

import-server   trust a headend certificate (PEM or DER) byte for byte
import-client   store the certificate and private key of a PKCS#12 file under NAME, for
                acvpn connect --certificate NAME. The password comes from the first line of
                standard input with --password-on-stdin, else from ACVPN_CERT_PASSWORD, else
                from a prompt on a terminal, else it is empty.
                The private key is stored unencrypted (PKCS#8 PEM, mode 0600).
list            list both stores; --json prints one JSON object
show, delete    a client certificate by alias, or a certificate of either store by its SHA-256
                fingerprint (at least 8 leading hex digits)

      --state-dir DIR        state directory; default $ACVPN_STATE_DIR, else $XDG_STATE_HOME/acvpn,
                             else /var/lib/acvpn

Exit codes: 0 done, 1 internal error, 2 bad arguments, wrong password or unreadable file.
`;

/** Streams and environment of the command; tests pass their own. */
export interface CertsCommandIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  stdin: Readable & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
}

const EXTENDED_KEY_USAGE_NAMES: Record<string, string> = {
  '1.3.6.1.5.5.7.3.1': 'serverAuth',
  '1.3.6.1.5.5.7.3.2': 'clientAuth',
  '1.3.6.1.5.5.7.3.3': 'codeSigning',
  '1.3.6.1.5.5.7.3.4': 'emailProtection',
  '1.3.6.1.5.5.7.3.8': 'timeStamping',
  '1.3.6.1.5.5.7.3.9': 'OCSPSigning',
  '2.5.29.37.0': 'anyExtendedKeyUsage',
};

interface Stores {
  server: CertificateStore;
  client: ClientCertificateStore;
}

/** Runs `acvpn certs ARGV...` and returns the exit code; errors are printed to stderr. */
export async function runCertsCommand(argv: string[], io: CertsCommandIo = processIo()): Promise<number> {
  try {
    return await dispatch(argv, io);
  } catch (error) {
    const failure = toAcvpnError(error);
    io.stderr.write(`acvpn certs: ${redactText(failure.message)}\n`);
    return failure.exitCode;
  }
}

async function dispatch(argv: string[], io: CertsCommandIo): Promise<number> {
  const [subcommand, ...rest] = argv;
  if (subcommand === undefined || subcommand === 'help' || argv.includes('--help') || argv.includes('-h')) {
    if (subcommand === undefined) {
      io.stderr.write(certsUsageText);
      return ExitCode.usage;
    }
    io.stdout.write(certsUsageText);
    return ExitCode.ok;
  }

  const { values, positionals } = parseCertsArgs(rest);
  const stateDir = values['state-dir'] ?? defaultStateDir(io.env);
  const stores: Stores = {
    server: new CertificateStore(join(stateDir, 'certificates')),
    client: ClientCertificateStore.inStateDirectory(stateDir),
  };

  switch (subcommand) {
    case 'import-server':
      return importServer(requireOne(positionals, 'FILE', subcommand), stores, io);
    case 'import-client': {
      if (values.alias === undefined) throw new AcvpnError('USAGE', 'import-client needs --alias NAME, the name to use with --certificate');
      return importClient(requireOne(positionals, 'FILE.p12', subcommand), values.alias, values['password-on-stdin'] ?? false, stores, io);
    }
    case 'list':
      requireNone(positionals, subcommand);
      return list(stores, values.json ?? false, io);
    case 'show':
      return show(requireOne(positionals, 'ID|ALIAS', subcommand), stores, io);
    case 'delete':
      return remove(requireOne(positionals, 'ID|ALIAS', subcommand), stores, io);
    default:
      throw new AcvpnError('USAGE', `unknown certs command ${JSON.stringify(subcommand)}; use import-server, import-client, list, show or delete`);
  }
}

// ---------------------------------------------------------------------------------------------
// Subcommands

async function importServer(file: string, stores: Stores, io: CertsCommandIo): Promise<number> {
  const stored = await stores.server.importCertificate(await readInputFile(file), file);
  io.stdout.write(`imported server certificate ${stored.id}\n  subject ${stored.details.subject}\n`);
  return ExitCode.ok;
}

async function importClient(file: string, alias: string, passwordOnStdin: boolean, stores: Stores, io: CertsCommandIo): Promise<number> {
  const data = await readInputFile(file);
  const password = await readPkcs12Password(file, passwordOnStdin, io);
  const stored = await stores.client.importPkcs12(data, password, alias, file);

  io.stdout.write(`imported client certificate ${stored.alias} (${stored.id})\n${formatClientDetails(stored)}`);
  const problems = checkClientCertificate(stored, new Date());
  if (problems.length > 0) {
    io.stderr.write(`acvpn certs: warning: ${stored.alias} cannot be used for client authentication now: ${problems.map(describeProblem).join(', ')}\n`);
  }
  return ExitCode.ok;
}

async function list(stores: Stores, json: boolean, io: CertsCommandIo): Promise<number> {
  const server = await stores.server.list();
  const client = await stores.client.list();
  const now = new Date();

  if (json) {
    io.stdout.write(
      `${JSON.stringify({
        server: server.map((stored) => serverJson(stored)),
        client: client.map((stored) => clientJson(stored, now)),
      })}\n`,
    );
    return ExitCode.ok;
  }

  io.stdout.write(`Server certificates (${stores.server.directory}):\n`);
  if (server.length === 0) io.stdout.write('  none\n');
  for (const stored of server) {
    io.stdout.write(`  ${stored.id.slice(0, 16)}  ${stored.details.subject}  (valid until ${isoDate(stored.details.validTo)})\n`);
  }
  io.stdout.write(`Client certificates (${stores.client.directory}):\n`);
  if (client.length === 0) io.stdout.write('  none\n');
  for (const stored of client) {
    const problems = checkClientCertificate(stored, now);
    const status = problems.length === 0 ? 'usable' : problems.map(describeProblem).join(', ');
    io.stdout.write(`  ${stored.alias}  ${stored.id.slice(0, 16)}  ${stored.details.subject}  [${status}]\n`);
  }
  return ExitCode.ok;
}

async function show(reference: string, stores: Stores, io: CertsCommandIo): Promise<number> {
  const found = await findInStores(reference, stores);
  if (found.kind === 'client') {
    io.stdout.write(`client certificate ${found.stored.alias}\n  id ${found.stored.id}\n${formatClientDetails(found.stored)}`);
    const problems = checkClientCertificate(found.stored, new Date());
    io.stdout.write(`  status ${problems.length === 0 ? 'usable' : problems.map(describeProblem).join(', ')}\n`);
  } else {
    io.stdout.write(`server certificate ${found.stored.id}\n${formatCommonDetails(found.stored.details)}  file ${found.stored.path}\n`);
  }
  return ExitCode.ok;
}

async function remove(reference: string, stores: Stores, io: CertsCommandIo): Promise<number> {
  const found = await findInStores(reference, stores);
  if (found.kind === 'client') {
    await stores.client.delete(found.stored.alias);
    io.stdout.write(`deleted client certificate ${found.stored.alias} (${found.stored.id})\n`);
  } else {
    await stores.server.delete(found.stored.id);
    io.stdout.write(`deleted server certificate ${found.stored.id}\n`);
  }
  return ExitCode.ok;
}

// ---------------------------------------------------------------------------------------------
// Helpers

type Found = { kind: 'client'; stored: StoredClientCertificate } | { kind: 'server'; stored: StoredCertificate };

/** A client alias wins; an id must match in exactly one of the two stores. */
async function findInStores(reference: string, stores: Stores): Promise<Found> {
  const client = await stores.client.find(reference);
  const wanted = reference.trim().replace(/:/g, '').toLowerCase();
  const isIdPrefix = /^[0-9a-f]{8,64}$/.test(wanted);
  if (client !== undefined && client.alias === reference) return { kind: 'client', stored: client };

  const server = isIdPrefix ? (await stores.server.list()).filter((stored) => stored.id.startsWith(wanted)) : [];
  if (server.length > 1 || (server.length === 1 && client !== undefined)) {
    throw new AcvpnError('USAGE', `the id ${reference} matches more than one certificate; give more digits or the alias`, { reference });
  }
  if (client !== undefined) return { kind: 'client', stored: client };
  if (server[0] !== undefined) return { kind: 'server', stored: server[0] };
  throw new AcvpnError(
    'USAGE',
    `no certificate with alias or id ${reference} in ${stores.server.directory} or ${stores.client.directory}; run acvpn certs list to see them`,
    { reference },
  );
}

async function readPkcs12Password(file: string, passwordOnStdin: boolean, io: CertsCommandIo): Promise<string> {
  let password: string;
  if (passwordOnStdin) {
    const lines = await readStdinLines(io.stdin);
    if (lines.length === 0) throw new AcvpnError('USAGE', '--password-on-stdin was given but standard input is empty; write the PKCS#12 password as its first line');
    password = lines[0] as string;
  } else if (io.env.ACVPN_CERT_PASSWORD !== undefined) {
    password = io.env.ACVPN_CERT_PASSWORD;
  } else if (io.stdin.isTTY === true) {
    password = await promptOnTerminal({ name: 'password', label: `Password for ${file}:`, secret: true });
  } else {
    password = '';
  }
  registerSecret(password);
  return password;
}

async function readInputFile(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new AcvpnError('USAGE', `cannot read ${file} (${code}); check the path and its permissions`, { file });
  }
}

function parseCertsArgs(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        alias: { type: 'string' },
        'password-on-stdin': { type: 'boolean' },
        json: { type: 'boolean' },
        'state-dir': { type: 'string' },
      },
    });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new AcvpnError('USAGE', `${message}; run acvpn certs help for the options`);
  }
}

function requireOne(positionals: string[], name: string, subcommand: string): string {
  if (positionals.length !== 1 || positionals[0] === undefined) {
    throw new AcvpnError('USAGE', `certs ${subcommand} expects one ${name}, received ${positionals.length} arguments`);
  }
  return positionals[0];
}

function requireNone(positionals: string[], subcommand: string): void {
  if (positionals.length > 0) {
    throw new AcvpnError('USAGE', `certs ${subcommand} takes no arguments, received ${positionals.join(' ')}`);
  }
}

/** Returns the state directory without --state-dir, in the order acvpn connect uses. */
function defaultStateDir(env: NodeJS.ProcessEnv): string {
  return env.ACVPN_STATE_DIR ?? (env.XDG_STATE_HOME ? `${env.XDG_STATE_HOME}/acvpn` : '/var/lib/acvpn');
}

function formatCommonDetails(details: CertificateDetails): string {
  return (
    `  subject ${details.subject}\n` +
    `  issuer ${details.issuer}\n` +
    `  valid from ${details.validFrom.toISOString()} to ${details.validTo.toISOString()}\n` +
    `  serial ${details.serialNumber}\n` +
    `  SHA-256 ${details.fingerprintSha256}\n`
  );
}

function formatClientDetails(stored: StoredClientCertificate): string {
  return (
    formatCommonDetails(stored.details) +
    `  extended key usage ${formatExtendedKeyUsage(stored.extendedKeyUsage)}\n` +
    `  chain ${stored.chain.length === 0 ? 'none' : stored.chain.map((certificate) => certificate.subject).join(' | ')}\n` +
    `  files ${stored.certificatePath} ${stored.keyPath}\n`
  );
}

function formatExtendedKeyUsage(usages: string[] | undefined): string {
  if (usages === undefined) return 'none (any purpose)';
  return usages.map((oid) => EXTENDED_KEY_USAGE_NAMES[oid] ?? oid).join(', ');
}

function describeProblem(problem: ReturnType<typeof checkClientCertificate>[number]): string {
  switch (problem) {
    case 'no-client-auth-eku':
      return 'no clientAuth extended key usage';
    case 'expired':
      return 'expired';
    case 'not-yet-valid':
      return 'not yet valid';
  }
}

function serverJson(stored: StoredCertificate): Record<string, unknown> {
  return {
    id: stored.id,
    subject: stored.details.subject,
    issuer: stored.details.issuer,
    validFrom: stored.details.validFrom.toISOString(),
    validTo: stored.details.validTo.toISOString(),
    path: stored.path,
  };
}

function clientJson(stored: StoredClientCertificate, now: Date): Record<string, unknown> {
  return {
    alias: stored.alias,
    id: stored.id,
    subject: stored.details.subject,
    issuer: stored.details.issuer,
    validFrom: stored.details.validFrom.toISOString(),
    validTo: stored.details.validTo.toISOString(),
    extendedKeyUsage: stored.extendedKeyUsage?.map((oid) => EXTENDED_KEY_USAGE_NAMES[oid] ?? oid) ?? null,
    chain: stored.chain.map((certificate) => certificate.subject),
    problems: checkClientCertificate(stored, now),
    certificatePath: stored.certificatePath,
    keyPath: stored.keyPath,
  };
}

function isoDate(date: Date): string {
  return date.toISOString().slice(0, 10);
}

function processIo(): CertsCommandIo {
  return { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env };
}
