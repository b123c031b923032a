// Throwaway test PKIs made with the openssl command line, plus a real `openssl ocsp` responder.
//
//   const pki = await createTestPki();
//   try { ... pki.leaf.der ... pki.root.der ... } finally { await pki.cleanup(); }
//
// Every certificate is signed with `openssl ca`, so each CA directory keeps an index.txt that
// `openssl ocsp -index` serves (one leaf is revoked in it). Keys are EC P-256, except one RSA
// leaf, because EC key generation takes milliseconds. Needs `openssl` (checked: 3.0.x) on the PATH.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const OPENSSL_TIMEOUT_MS = 20_000;
const RESPONDER_START_TIMEOUT_MS = 10_000;
const DAY_MS = 24 * 60 * 60 * 1000;

/** The DNS name and IP address that the good leaf certificates are issued for. */
export const TEST_HOST = 'vpn.acvpn.test';
export const TEST_IP = '127.0.0.1';
/** AIA OCSP URLs written into the certificates; tests route them to local responders. */
export const LEAF_OCSP_URL = 'http://ocsp.intermediate.acvpn.test/';
export const INTERMEDIATE_OCSP_URL = 'http://ocsp.root.acvpn.test/';

export interface TestCertificate {
  certPath: string;
  keyPath: string;
  der: Buffer;
  pem: string;
}

export interface TestCa extends TestCertificate {
  /** The `openssl ca` directory: index.txt lists every certificate this CA signed. */
  caDir: string;
  indexPath: string;
  configPath: string;
}

export interface TestPki {
  dir: string;
  root: TestCa;
  intermediate: TestCa;
  /** vpn.acvpn.test and 127.0.0.1, serverAuth, digitalSignature, OCSP URL. */
  leaf: TestCertificate;
  /** Same names with an RSA key and keyEncipherment only. */
  rsaLeaf: TestCertificate;
  /** *.acvpn.test. */
  wildcardLeaf: TestCertificate;
  /** Like leaf, revoked (keyCompromise) in the intermediate's index. */
  revokedLeaf: TestCertificate;
  /** Signed by the intermediate but left out of its index, so a responder returns unknown. */
  unlistedLeaf: TestCertificate;
  selfSigned: TestCertificate;
  expired: TestCertificate;
  notYetValid: TestCertificate;
  /** Issued for other.example.test only. */
  wrongName: TestCertificate;
  /** EKU clientAuth only. */
  noServerAuth: TestCertificate;
  /** keyUsage cRLSign only. */
  badKeyUsage: TestCertificate;
  /** Delegated OCSP responder of the intermediate: issued by it, with the OCSPSigning EKU. */
  ocspResponder: TestCertificate;
  /** Issued by the intermediate with serverAuth only, so it may not sign OCSP responses. */
  unauthorizedResponder: TestCertificate;
  /** A CA issued by the intermediate although the intermediate has pathlen:0, and its leaf. */
  subCa: TestCa;
  subCaLeaf: TestCertificate;
  /** A leaf for TEST_HOST signed with the key of `unauthorizedResponder`, which is no CA. */
  nonCaIssuedLeaf: TestCertificate;
  /** A second, unrelated root and a leaf for TEST_HOST that it signed directly. */
  otherRoot: TestCa;
  otherRootLeaf: TestCertificate;
  cleanup(): Promise<void>;
}

export interface OcspResponder {
  port: number;
  pid: number;
  /** Sends SIGTERM to the responder process (by PID) and waits for it to exit. */
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// openssl runner

function runOpenssl(args: string[], cwd?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { cwd, timeout: OPENSSL_TIMEOUT_MS }, (error, stdout, stderr) => {
      if (error) {
        reject(new Error(`openssl ${args.join(' ')} failed: ${error.message}\n${stderr}`));
        return;
      }
      resolve(stdout);
    });
  });
}

/** Returns the `openssl version` line, or throws when openssl is not installed. */
export async function opensslVersion(): Promise<string> {
  return (await runOpenssl(['version'])).trim();
}

// ---------------------------------------------------------------------------------------------
// Certificate creation

/** `openssl ca` date format: YYYYMMDDHHMMSSZ (GeneralizedTime form, valid for every year). */
function opensslDate(date: Date): string {
  return date.toISOString().replace(/[-:T]/g, '').replace(/\.\d{3}Z$/, 'Z');
}

interface CertificateSpec {
  name: string;
  subject: string;
  /** Lines of an openssl extension section (name = value). */
  extensions: string[];
  keyType?: 'ec' | 'rsa';
  notBefore?: Date;
  notAfter?: Date;
}

async function createKey(dir: string, name: string, keyType: 'ec' | 'rsa'): Promise<string> {
  const keyPath = join(dir, `${name}.key`);
  const algorithmArgs =
    keyType === 'ec'
      ? ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']
      : ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'];
  await runOpenssl(['genpkey', ...algorithmArgs, '-out', keyPath]);
  return keyPath;
}

async function loadCertificate(certPath: string, keyPath: string): Promise<TestCertificate> {
  const pem = await readFile(certPath, 'utf8');
  const der = Buffer.from(new X509Certificate(pem).raw);
  return { certPath, keyPath, der, pem };
}

/** Creates a self-signed CA with its own `openssl ca` directory. */
async function createRootCa(dir: string, name: string, subject: string): Promise<TestCa> {
  const caDir = join(dir, name);
  await mkdir(join(caDir, 'newcerts'), { recursive: true });
  const keyPath = await createKey(caDir, 'ca', 'ec');
  const certPath = join(caDir, 'ca.pem');
  const configPath = await writeCaConfig(caDir);

  await runOpenssl([
    'req', '-x509', '-new', '-config', configPath, '-key', keyPath, '-subj', subject,
    '-days', '3650', '-sha256', '-set_serial', '1',
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-addext', 'subjectKeyIdentifier=hash',
    '-out', certPath,
  ]);
  return { ...(await loadCertificate(certPath, keyPath)), caDir, indexPath: join(caDir, 'index.txt'), configPath };
}

async function writeCaConfig(caDir: string): Promise<string> {
  const configPath = join(caDir, 'openssl.cnf');
  await writeFile(join(caDir, 'index.txt'), '');
  await writeFile(join(caDir, 'index.txt.attr'), 'unique_subject = no\n');
  await writeFile(join(caDir, 'serial'), '1000\n');
  await writeFile(
    configPath,
    [
      '[ ca ]',
      'default_ca = test_ca',
      '[ test_ca ]',
      `dir = ${caDir}`,
      'database = $dir/index.txt',
      'new_certs_dir = $dir/newcerts',
      'serial = $dir/serial',
      'certificate = $dir/ca.pem',
      'private_key = $dir/ca.key',
      'default_md = sha256',
      'policy = policy_any',
      'unique_subject = no',
      'copy_extensions = none',
      'email_in_dn = no',
      '[ policy_any ]',
      'commonName = supplied',
      'organizationName = optional',
      '[ req ]',
      'distinguished_name = req_dn',
      'prompt = no',
      '[ req_dn ]',
      'CN = unused',
      '',
    ].join('\n'),
  );
  return configPath;
}

/** Signs a new key pair with `ca` through `openssl ca`, which records it in the CA's index. */
async function issueCertificate(ca: TestCa, dir: string, spec: CertificateSpec): Promise<TestCertificate> {
  const keyPath = await createKey(dir, spec.name, spec.keyType ?? 'ec');
  const csrPath = join(dir, `${spec.name}.csr`);
  const certPath = join(dir, `${spec.name}.pem`);
  const extensionsPath = join(dir, `${spec.name}.ext`);
  const notBefore = spec.notBefore ?? new Date(Date.now() - DAY_MS);
  const notAfter = spec.notAfter ?? new Date(Date.now() + 30 * DAY_MS);

  await writeFile(extensionsPath, ['[ cert_ext ]', ...spec.extensions, ''].join('\n'));
  await runOpenssl(['req', '-new', '-config', ca.configPath, '-key', keyPath, '-subj', spec.subject, '-out', csrPath]);
  await runOpenssl([
    'ca', '-batch', '-notext', '-preserveDN', '-config', ca.configPath, '-in', csrPath, '-out', certPath,
    '-startdate', opensslDate(notBefore), '-enddate', opensslDate(notAfter),
    '-extfile', extensionsPath, '-extensions', 'cert_ext',
  ]);
  return loadCertificate(certPath, keyPath);
}

async function createSelfSignedLeaf(dir: string, configPath: string): Promise<TestCertificate> {
  const keyPath = await createKey(dir, 'self-signed', 'ec');
  const certPath = join(dir, 'self-signed.pem');
  await runOpenssl([
    'req', '-x509', '-new', '-config', configPath, '-key', keyPath, '-subj', `/CN=${TEST_HOST}`,
    '-days', '30', '-sha256',
    '-addext', `subjectAltName=DNS:${TEST_HOST},IP:${TEST_IP}`,
    '-addext', 'basicConstraints=critical,CA:FALSE',
    '-addext', 'keyUsage=critical,digitalSignature',
    '-addext', 'extendedKeyUsage=serverAuth',
    '-out', certPath,
  ]);
  return loadCertificate(certPath, keyPath);
}

function leafExtensions(options: {
  san?: string;
  keyUsage?: string;
  extendedKeyUsage?: string;
  ocspUrl?: string;
}): string[] {
  return [
    'basicConstraints = critical,CA:FALSE',
    `keyUsage = critical,${options.keyUsage ?? 'digitalSignature'}`,
    `extendedKeyUsage = ${options.extendedKeyUsage ?? 'serverAuth'}`,
    `subjectAltName = ${options.san ?? `DNS:${TEST_HOST},IP:${TEST_IP}`}`,
    'subjectKeyIdentifier = hash',
    'authorityKeyIdentifier = keyid',
    `authorityInfoAccess = OCSP;URI:${options.ocspUrl ?? LEAF_OCSP_URL}`,
  ];
}

/** Builds the whole test PKI in a new temporary directory (about 1–2 s). */
export async function createTestPki(): Promise<TestPki> {
  const dir = await mkdtemp(join(tmpdir(), 'acvpn-pki-'));
  try {
    return await populatePki(dir);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

async function populatePki(dir: string): Promise<TestPki> {
  const root = await createRootCa(dir, 'root', '/O=acvpn tests/CN=acvpn Test Root CA');
  const intermediate = await issueIntermediate(root, dir);
  const leavesDir = join(dir, 'leaves');
  await mkdir(leavesDir);

  const issue = (spec: CertificateSpec) => issueCertificate(intermediate, leavesDir, spec);
  const leaf = await issue({ name: 'leaf', subject: `/CN=${TEST_HOST}`, extensions: leafExtensions({}) });
  const rsaLeaf = await issue({
    name: 'rsa-leaf',
    subject: `/CN=${TEST_HOST}`,
    keyType: 'rsa',
    extensions: leafExtensions({ keyUsage: 'keyEncipherment' }),
  });
  const wildcardLeaf = await issue({
    name: 'wildcard-leaf',
    subject: '/CN=*.acvpn.test',
    extensions: leafExtensions({ san: 'DNS:*.acvpn.test' }),
  });
  const revokedLeaf = await issue({ name: 'revoked-leaf', subject: `/CN=${TEST_HOST}`, extensions: leafExtensions({}) });
  const expired = await issue({
    name: 'expired',
    subject: `/CN=${TEST_HOST}`,
    extensions: leafExtensions({}),
    notBefore: new Date('2020-01-01T00:00:00Z'),
    notAfter: new Date('2021-01-01T00:00:00Z'),
  });
  const notYetValid = await issue({
    name: 'not-yet-valid',
    subject: `/CN=${TEST_HOST}`,
    extensions: leafExtensions({}),
    notBefore: new Date('2090-01-01T00:00:00Z'),
    notAfter: new Date('2091-01-01T00:00:00Z'),
  });
  const wrongName = await issue({
    name: 'wrong-name',
    subject: '/CN=other.example.test',
    extensions: leafExtensions({ san: 'DNS:other.example.test' }),
  });
  const noServerAuth = await issue({
    name: 'no-server-auth',
    subject: `/CN=${TEST_HOST}`,
    extensions: leafExtensions({ extendedKeyUsage: 'clientAuth' }),
  });
  const badKeyUsage = await issue({
    name: 'bad-key-usage',
    subject: `/CN=${TEST_HOST}`,
    extensions: leafExtensions({ keyUsage: 'cRLSign' }),
  });
  const ocspResponder = await issue({
    name: 'ocsp-responder',
    subject: '/CN=acvpn Test OCSP Responder',
    extensions: ['basicConstraints = critical,CA:FALSE', 'keyUsage = critical,digitalSignature', 'extendedKeyUsage = OCSPSigning'],
  });
  const unauthorizedResponder = await issue({
    name: 'unauthorized-responder',
    subject: '/CN=acvpn Test Unauthorized Responder',
    extensions: ['basicConstraints = critical,CA:FALSE', 'keyUsage = critical,digitalSignature', 'extendedKeyUsage = serverAuth'],
  });

  // A leaf missing from the index must be signed outside `openssl ca`'s database, so sign one
  // normally and then drop its line from index.txt.
  const unlistedLeaf = await issue({ name: 'unlisted-leaf', subject: `/CN=${TEST_HOST}`, extensions: leafExtensions({}) });
  await removeFromIndex(intermediate, unlistedLeaf);

  await runOpenssl(['ca', '-config', intermediate.configPath, '-revoke', revokedLeaf.certPath, '-crl_reason', 'keyCompromise']);

  const selfSigned = await createSelfSignedLeaf(leavesDir, intermediate.configPath);

  const subCa = await issueCa(intermediate, dir, 'sub-ca', '/O=acvpn tests/CN=acvpn Test Sub CA');
  const subCaLeaf = await issueCertificate(subCa, leavesDir, { name: 'sub-ca-leaf', subject: `/CN=${TEST_HOST}`, extensions: leafExtensions({}) });
  // `openssl ca` does not check that its own certificate is a CA, which makes this forgery easy.
  const nonCa = await adoptAsCa(unauthorizedResponder, join(dir, 'non-ca'));
  const nonCaIssuedLeaf = await issueCertificate(nonCa, leavesDir, {
    name: 'non-ca-issued-leaf',
    subject: `/CN=${TEST_HOST}`,
    extensions: leafExtensions({}),
  });
  const otherRoot = await createRootCa(dir, 'other-root', '/O=acvpn tests/CN=acvpn Other Root CA');
  const otherRootLeaf = await issueCertificate(otherRoot, leavesDir, {
    name: 'other-root-leaf',
    subject: `/CN=${TEST_HOST}`,
    extensions: leafExtensions({}),
  });

  return {
    dir,
    root,
    intermediate,
    leaf,
    rsaLeaf,
    wildcardLeaf,
    revokedLeaf,
    unlistedLeaf,
    selfSigned,
    expired,
    notYetValid,
    wrongName,
    noServerAuth,
    badKeyUsage,
    ocspResponder,
    unauthorizedResponder,
    subCa,
    subCaLeaf,
    nonCaIssuedLeaf,
    otherRoot,
    otherRootLeaf,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

function issueIntermediate(root: TestCa, dir: string): Promise<TestCa> {
  return issueCa(root, dir, 'intermediate', '/O=acvpn tests/CN=acvpn Test Intermediate CA');
}

async function issueCa(parent: TestCa, dir: string, name: string, subject: string): Promise<TestCa> {
  const caDir = join(dir, name);
  await mkdir(join(caDir, 'newcerts'), { recursive: true });
  const configPath = await writeCaConfig(caDir);
  const issued = await issueCertificate(parent, caDir, {
    name: 'ca',
    subject,
    extensions: [
      'basicConstraints = critical,CA:TRUE,pathlen:0',
      'keyUsage = critical,keyCertSign,cRLSign',
      'subjectKeyIdentifier = hash',
      'authorityKeyIdentifier = keyid',
      `authorityInfoAccess = OCSP;URI:${INTERMEDIATE_OCSP_URL}`,
    ],
  });
  return { ...issued, caDir, indexPath: join(caDir, 'index.txt'), configPath };
}

/** Sets up an `openssl ca` directory that signs with an existing certificate and key. */
async function adoptAsCa(certificate: TestCertificate, caDir: string): Promise<TestCa> {
  await mkdir(join(caDir, 'newcerts'), { recursive: true });
  const configPath = await writeCaConfig(caDir);
  const certPath = join(caDir, 'ca.pem');
  const keyPath = join(caDir, 'ca.key');
  await copyFile(certificate.certPath, certPath);
  await copyFile(certificate.keyPath, keyPath);
  return { ...certificate, certPath, keyPath, caDir, indexPath: join(caDir, 'index.txt'), configPath };
}

async function removeFromIndex(ca: TestCa, certificate: TestCertificate): Promise<void> {
  const serial = new X509Certificate(certificate.der).serialNumber.toUpperCase();
  const lines = (await readFile(ca.indexPath, 'utf8')).split('\n');
  const kept = lines.filter((line) => line.split('\t')[3]?.toUpperCase() !== serial);
  if (kept.length !== lines.length - 1) throw new Error(`serial ${serial} is not exactly once in ${ca.indexPath}`);
  await writeFile(ca.indexPath, kept.join('\n'));
}

// ---------------------------------------------------------------------------------------------
// OCSP responder

/**
 * Starts `openssl ocsp` as an HTTP responder for `ca`'s index on a free port, signing with
 * `signer` (the CA itself, a delegated responder or any other certificate).
 *
 * NOTE: openssl 3.0's responder has no bind-address option, so it listens on every address
 * ([::]:port) while it runs; tests connect to it on 127.0.0.1 only.
 */
export async function startOcspResponder(ca: TestCa, signer: TestCertificate): Promise<OcspResponder> {
  const child = spawn(
    'openssl',
    [
      'ocsp', '-index', ca.indexPath, '-CA', ca.certPath, '-rsigner', signer.certPath, '-rkey', signer.keyPath,
      '-port', '0', '-nmin', '10', '-ignore_err',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const port = await readAcceptedPort(child);
  const pid = child.pid;
  if (pid === undefined) throw new Error('openssl ocsp started without a PID');

  let exited: Promise<void> | undefined;
  return {
    port,
    pid,
    stop() {
      exited ??= new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) {
          resolve();
          return;
        }
        child.once('exit', () => resolve());
        process.kill(pid, 'SIGTERM');
      });
      return exited;
    },
  };
}

/** openssl 3.0 prints "ACCEPT [::]:PORT PID=N" on stdout once it listens. */
function readAcceptedPort(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`openssl ocsp did not report its port within ${RESPONDER_START_TIMEOUT_MS} ms: ${output}`));
    }, RESPONDER_START_TIMEOUT_MS);
    const onData = (chunk: Buffer) => {
      output += chunk.toString('utf8');
      const match = /ACCEPT .*:(\d+)/.exec(output);
      if (match?.[1] !== undefined) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`openssl ocsp exited (code ${code}, signal ${signal}) before listening: ${output}`));
    });
  });
}
