// The client certificate store, the choice of certificate, and `acvpn certs`, with PKCS#12 files
// written by `openssl pkcs12` (OpenSSL 3.0).

import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmod, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createSecureContext } from 'node:tls';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AcvpnError } from '../../../src/core/errors.js';
import { runCertsCommand, type CertsCommandIo } from '../../../src/cli/certs-command.js';
import {
  checkClientCertificate,
  ClientCertificateStore,
  OID_ANY_EXTENDED_KEY_USAGE,
  OID_CLIENT_AUTH,
  resolveClientIdentity,
  selectClientCertificate,
  tlsClientOptions,
  type SelectableClientCertificate,
} from '../../../src/trust/client-cert.js';

const PASSWORD = 'client-store-password-9Kd';
const OID_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';

let pkiDir: string;
let scratch: string;
/** PKCS#12 files: alice (clientAuth, AES-256), alice-legacy (same identity, -legacy), bob (serverAuth only). */
const p12 = { alice: '', aliceLegacy: '', bob: '' };

function openssl(args: string[]): Buffer {
  return execFileSync('openssl', args, { cwd: pkiDir, timeout: 20_000, stdio: ['ignore', 'pipe', 'pipe'] });
}

beforeAll(async () => {
  pkiDir = mkdtempSync(join(tmpdir(), 'acvpn-client-pki-'));
  scratch = await mkdtemp(join(tmpdir(), 'acvpn-client-store-'));
  writeFileSync(join(pkiDir, 'client.ext'), 'extendedKeyUsage = clientAuth\n');
  writeFileSync(join(pkiDir, 'server.ext'), 'extendedKeyUsage = serverAuth\n');

  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-subj', '/O=acvpn test/CN=Client Store CA', '-days', '30']);
  for (const [name, ext] of [
    ['alice', 'client.ext'],
    ['bob', 'server.ext'],
  ] as const) {
    openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`]);
    openssl(['req', '-new', '-key', `${name}.key`, '-subj', `/CN=${name}`, '-out', `${name}.csr`]);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '10', '-extfile', ext, '-out', `${name}.pem`]);
  }
  const exportFile = (name: string, cert: string, options: string[]): string => {
    openssl(['pkcs12', '-export', '-inkey', `${cert}.key`, '-in', `${cert}.pem`, '-certfile', 'ca.pem', '-passout', `pass:${PASSWORD}`, '-out', `${name}.p12`, ...options]);
    return join(pkiDir, `${name}.p12`);
  };
  p12.alice = exportFile('alice', 'alice', ['-keypbe', 'AES-256-CBC', '-certpbe', 'AES-256-CBC']);
  p12.aliceLegacy = exportFile('alice-legacy', 'alice', ['-legacy']);
  p12.bob = exportFile('bob', 'bob', []);
}, 60_000);

afterAll(async () => {
  if (pkiDir !== undefined) rmSync(pkiDir, { recursive: true, force: true });
  if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
});

let stateCount = 0;
let stateDir: string;
let store: ClientCertificateStore;
beforeEach(() => {
  stateCount += 1;
  stateDir = join(scratch, `state-${stateCount}`);
  store = ClientCertificateStore.inStateDirectory(stateDir);
});

async function rejection(promise: Promise<unknown>): Promise<AcvpnError> {
  try {
    await promise;
  } catch (error) {
    if (AcvpnError.is(error)) return error;
    throw error;
  }
  throw new Error('expected an AcvpnError, but the promise resolved');
}

const aliceDer = (): Buffer => new X509Certificate(readFileSync(join(pkiDir, 'alice.pem'))).raw;
const caDer = (): Buffer => new X509Certificate(readFileSync(join(pkiDir, 'ca.pem'))).raw;

// ---------------------------------------------------------------------------------------------

describe('ClientCertificateStore', () => {
  it('imports and lists an identity', async () => {
    const stored = await store.importPkcs12(readFileSync(p12.alice), PASSWORD, 'work', 'alice.p12');

    expect(stored.alias).toBe('work');
    expect(stored.details.der.equals(aliceDer())).toBe(true);
    expect(stored.id).toBe(stored.details.fingerprintSha256.replace(/:/g, '').toLowerCase());

    const listed = await store.list();
    expect(listed).toHaveLength(1);
    const [entry] = listed;
    expect(entry?.alias).toBe('work');
    expect(entry?.details.subject).toBe('CN=alice');
    expect(entry?.details.issuer).toBe('O=acvpn test, CN=Client Store CA');
    expect(entry?.details.validTo.getTime()).toBeGreaterThan(Date.now());
    expect(entry?.extendedKeyUsage).toEqual([OID_CLIENT_AUTH]);
    expect(entry?.chain.map((certificate) => certificate.subject)).toEqual(['O=acvpn test, CN=Client Store CA']);
  });

  it('keeps the directory 0700 and the files 0600', async () => {
    await store.importPkcs12(readFileSync(p12.alice), PASSWORD, 'work');

    expect((await stat(store.directory)).mode & 0o777).toBe(0o700);
    expect((await readdir(store.directory)).sort()).toEqual(['work.crt.pem', 'work.key.pem']);
    expect((await stat(join(store.directory, 'work.crt.pem'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(store.directory, 'work.key.pem'))).mode & 0o777).toBe(0o600);
    expect(store.directory).toBe(join(stateDir, 'client-certificates'));
  });

  it('stores the key as PKCS#8 and the chain after the certificate', async () => {
    await store.importPkcs12(readFileSync(p12.aliceLegacy), PASSWORD, 'legacy');

    const key = await readFile(join(store.directory, 'legacy.key.pem'), 'utf8');
    expect(key).toMatch(/^-----BEGIN PRIVATE KEY-----\n[\s\S]+-----END PRIVATE KEY-----\n$/);
    const certificates = (await readFile(join(store.directory, 'legacy.crt.pem'), 'utf8')).match(/-----BEGIN CERTIFICATE-----/g);
    expect(certificates).toHaveLength(2);
    expect((await store.show('legacy')).details.der.equals(aliceDer())).toBe(true);
  });

  it('treats a repeated import as no change', async () => {
    const first = await store.importPkcs12(readFileSync(p12.alice), PASSWORD, 'work');
    const second = await store.importPkcs12(readFileSync(p12.aliceLegacy), PASSWORD, 'work');
    expect(second.id).toBe(first.id);
    expect(await store.list()).toHaveLength(1);
  });

  it('rejects an alias holding another certificate', async () => {
    await store.importPkcs12(readFileSync(p12.alice), PASSWORD, 'work');
    const error = await rejection(store.importPkcs12(readFileSync(p12.bob), PASSWORD, 'work'));
    expect(error.code).toBe('USAGE');
    expect(error.message).toContain('the alias work already names certificate');
  });

  it.each(['', '../escape', '.hidden', 'a b', 'x'.repeat(65)])('rejects the alias %j', async (alias) => {
    const error = await rejection(store.importPkcs12(readFileSync(p12.alice), PASSWORD, alias));
    expect(error.code).toBe('USAGE');
    expect(error.message).toContain('invalid alias');
  });

  it('rejects a wrong password without writing', async () => {
    const error = await rejection(store.importPkcs12(readFileSync(p12.alice), 'wrong-password', 'work', 'alice.p12'));
    expect(error.code).toBe('USAGE');
    expect(error.message).toContain('the PKCS#12 password is wrong for alice.p12');
    expect(await store.list()).toEqual([]);
  });

  it('finds entries by alias and by id prefix', async () => {
    const stored = await store.importPkcs12(readFileSync(p12.alice), PASSWORD, 'work');

    expect((await store.show('work')).id).toBe(stored.id);
    expect((await store.show(stored.id.slice(0, 8))).alias).toBe('work');
    expect((await store.show(stored.id.toUpperCase())).alias).toBe('work');
    expect(await store.find(stored.id.slice(0, 7))).toBeUndefined();
    const error = await rejection(store.show('nothing-here'));
    expect(error.code).toBe('USAGE');
    expect(error.message).toContain('no client certificate with alias or id nothing-here');
  });

  it('loads an identity usable for TLS', async () => {
    await store.importPkcs12(readFileSync(p12.alice), PASSWORD, 'work');

    const identity = await store.load('work');
    const options = tlsClientOptions(identity);

    expect(options.key).toBe(await readFile(join(store.directory, 'work.key.pem'), 'utf8'));
    const certificates = options.cert.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/g) ?? [];
    expect(certificates).toHaveLength(2);
    expect(new X509Certificate(certificates[0] ?? '').raw.equals(aliceDer())).toBe(true);
    expect(new X509Certificate(certificates[1] ?? '').raw.equals(caDer())).toBe(true);
    // OpenSSL checks that the key belongs to the first certificate.
    expect(() => createSecureContext(options)).not.toThrow();
  });

  it('refuses a key file readable by others', async () => {
    const stored = await store.importPkcs12(readFileSync(p12.alice), PASSWORD, 'work');
    await chmod(stored.keyPath, 0o644);

    const error = await rejection(store.load('work'));
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.message).toContain('has mode 0644');
  });

  it('deletes both files', async () => {
    const stored = await store.importPkcs12(readFileSync(p12.alice), PASSWORD, 'work');
    await store.importPkcs12(readFileSync(p12.bob), PASSWORD, 'server-only');

    const deleted = await store.delete(stored.id.slice(0, 12));

    expect(deleted.alias).toBe('work');
    expect((await readdir(store.directory)).sort()).toEqual(['server-only.crt.pem', 'server-only.key.pem']);
    expect((await store.list()).map((entry) => entry.alias)).toEqual(['server-only']);
  });

  it('lists an empty store when the directory is missing', async () => {
    expect(await store.list()).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------

describe('selectClientCertificate', () => {
  const now = new Date('2030-06-01T00:00:00Z');
  const day = 24 * 60 * 60 * 1000;

  function candidate(alias: string, overrides: Partial<{ eku: string[] | undefined; from: number; to: number; issuer: string; chain: string[] }> = {}): SelectableClientCertificate {
    return {
      alias,
      details: {
        issuer: overrides.issuer ?? 'CN=Some CA',
        validFrom: new Date(now.getTime() + (overrides.from ?? -30) * day),
        validTo: new Date(now.getTime() + (overrides.to ?? 30) * day),
      },
      extendedKeyUsage: 'eku' in overrides ? overrides.eku : [OID_CLIENT_AUTH],
      chain: (overrides.chain ?? []).map((subject) => ({ subject, issuer: subject })),
    };
  }

  it('keeps clientAuth, anyExtendedKeyUsage and no EKU', () => {
    expect(checkClientCertificate(candidate('client'), now)).toEqual([]);
    expect(checkClientCertificate(candidate('any', { eku: [OID_SERVER_AUTH, OID_ANY_EXTENDED_KEY_USAGE] }), now)).toEqual([]);
    expect(checkClientCertificate(candidate('none', { eku: undefined }), now)).toEqual([]);
  });

  it('drops a serverAuth-only certificate', () => {
    expect(checkClientCertificate(candidate('server', { eku: [OID_SERVER_AUTH] }), now)).toEqual(['no-client-auth-eku']);
    expect(selectClientCertificate([candidate('server', { eku: [OID_SERVER_AUTH] })], undefined, now)).toBeUndefined();
  });

  it('drops expired and not yet valid certificates', () => {
    const expired = candidate('expired', { from: -60, to: -1 });
    const future = candidate('future', { from: 1, to: 60 });
    expect(checkClientCertificate(expired, now)).toEqual(['expired']);
    expect(checkClientCertificate(future, now)).toEqual(['not-yet-valid']);
    expect(selectClientCertificate([expired, future], undefined, now)).toBeUndefined();
    expect(selectClientCertificate([expired, future, candidate('good')], undefined, now)?.alias).toBe('good');
  });

  it('prefers an acceptable issuer', () => {
    const longer = candidate('longer', { to: 300, issuer: 'CN=Other CA' });
    const matching = candidate('matching', { to: 10, issuer: 'O=Corp, CN=Corp Users CA' });

    expect(selectClientCertificate([longer, matching], ['o=corp,  cn=Corp Users CA'], now)?.alias).toBe('matching');
    expect(selectClientCertificate([longer, matching], ['CN=Unrelated'], now)?.alias).toBe('longer');
    expect(selectClientCertificate([longer, matching], undefined, now)?.alias).toBe('longer');
  });

  it('prefers an acceptable CA further up the chain', () => {
    const plain = candidate('plain', { to: 300 });
    const underRoot = candidate('under-root', { to: 10, issuer: 'CN=Issuing CA', chain: ['CN=Issuing CA', 'CN=Corp Root'] });
    expect(selectClientCertificate([plain, underRoot], ['CN=Corp Root'], now)?.alias).toBe('under-root');
  });

  it('breaks ties by validity then alias', () => {
    expect(selectClientCertificate([candidate('b'), candidate('a')], undefined, now)?.alias).toBe('a');
    expect(selectClientCertificate([candidate('a'), candidate('b', { to: 31 })], undefined, now)?.alias).toBe('b');
  });

  it('picks usable stored certificates', async () => {
    await store.importPkcs12(readFileSync(p12.bob), PASSWORD, 'server-only');
    await store.importPkcs12(readFileSync(p12.alice), PASSWORD, 'work');
    const selected = selectClientCertificate(await store.list(), ['O=acvpn test, CN=Client Store CA']);
    expect(selected?.alias).toBe('work');
  });
});

// ---------------------------------------------------------------------------------------------

describe('resolveClientIdentity', () => {
  it('reads a PKCS#12 file with the password', async () => {
    const identity = await resolveClientIdentity(p12.aliceLegacy, { store, password: PASSWORD });
    expect(identity.details.der.equals(aliceDer())).toBe(true);
    expect(identity.alias).toBe(p12.aliceLegacy);
    expect(() => createSecureContext(tlsClientOptions(identity))).not.toThrow();
  });

  it('reports a wrong password for a file', async () => {
    const error = await rejection(resolveClientIdentity(p12.alice, { store }));
    expect(error.code).toBe('USAGE');
    expect(error.message).toContain(`the PKCS#12 password is wrong for ${p12.alice}`);
  });

  it('loads a stored alias', async () => {
    await store.importPkcs12(readFileSync(p12.alice), PASSWORD, 'work');
    expect((await resolveClientIdentity('work', { store })).alias).toBe('work');
  });

  it('rejects an unknown reference', async () => {
    const error = await rejection(resolveClientIdentity('missing', { store }));
    expect(error.code).toBe('USAGE');
    expect(error.message).toContain('is neither a PKCS#12 file nor an alias or id');
  });
});

// ---------------------------------------------------------------------------------------------

describe('acvpn certs', () => {
  interface Run {
    code: number;
    stdout: string;
    stderr: string;
  }

  async function certs(args: string[], options: { stdin?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
    let stdout = '';
    let stderr = '';
    const io: CertsCommandIo = {
      stdout: { write: (text: string) => (stdout += text) },
      stderr: { write: (text: string) => (stderr += text) },
      stdin: Readable.from([Buffer.from(options.stdin ?? '')]),
      env: options.env ?? {},
    };
    const code = await runCertsCommand([...args, '--state-dir', stateDir], io);
    return { code, stdout, stderr };
  }

  it('imports, lists, shows and deletes a client certificate', async () => {
    const imported = await certs(['import-client', p12.alice, '--alias', 'work', '--password-on-stdin'], { stdin: `${PASSWORD}\n` });
    expect(imported.stderr).toBe('');
    expect(imported.code).toBe(0);
    expect(imported.stdout).toContain('imported client certificate work');

    const listed = await certs(['list', '--json']);
    expect(listed.code).toBe(0);
    const json = JSON.parse(listed.stdout) as { server: unknown[]; client: Array<Record<string, unknown>> };
    expect(json.server).toEqual([]);
    expect(json.client).toHaveLength(1);
    expect(json.client[0]).toMatchObject({ alias: 'work', subject: 'CN=alice', extendedKeyUsage: ['clientAuth'], problems: [] });

    const shown = await certs(['show', 'work']);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain('extended key usage clientAuth');
    expect(shown.stdout).toContain('status usable');

    const deleted = await certs(['delete', 'work']);
    expect(deleted.code).toBe(0);
    expect(await store.list()).toEqual([]);
  });

  it('reads the password from ACVPN_CERT_PASSWORD', async () => {
    const run = await certs(['import-client', p12.aliceLegacy, '--alias', 'legacy'], { env: { ACVPN_CERT_PASSWORD: PASSWORD } });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect((await store.show('legacy')).details.der.equals(aliceDer())).toBe(true);
  });

  it('warns about a certificate without clientAuth', async () => {
    const run = await certs(['import-client', p12.bob, '--alias', 'server-only', '--password-on-stdin'], { stdin: PASSWORD });
    expect(run.code).toBe(0);
    expect(run.stderr).toContain('server-only cannot be used for client authentication now: no clientAuth extended key usage');
  });

  it('exits 2 on a wrong password without echoing it', async () => {
    const run = await certs(['import-client', p12.alice, '--alias', 'work', '--password-on-stdin'], { stdin: 'guessed-wrong-1234\n' });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('the PKCS#12 password is wrong');
    expect(run.stderr).not.toContain('guessed-wrong-1234');
  });

  it('imports, shows and deletes a server certificate', async () => {
    const imported = await certs(['import-server', join(pkiDir, 'bob.pem')]);
    expect(imported.code).toBe(0);
    const id = /imported server certificate ([0-9a-f]{64})/.exec(imported.stdout)?.[1] ?? '';
    expect(id).not.toBe('');

    const listed = JSON.parse((await certs(['list', '--json'])).stdout) as { server: Array<{ id: string }> };
    expect(listed.server.map((entry) => entry.id)).toEqual([id]);

    expect((await certs(['show', id.slice(0, 10)])).stdout).toContain(`server certificate ${id}`);
    expect((await certs(['delete', id.slice(0, 10)])).code).toBe(0);
    expect(JSON.parse((await certs(['list', '--json'])).stdout)).toEqual({ server: [], client: [] });
  });

  it('prints a text list', async () => {
    await certs(['import-client', p12.alice, '--alias', 'work', '--password-on-stdin'], { stdin: PASSWORD });
    const run = await certs(['list']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('Server certificates');
    expect(run.stdout).toMatch(/\n {2}work {2}[0-9a-f]{16} {2}CN=alice {2}\[usable\]\n/);
  });

  it.each([
    [['frobnicate'], 'unknown certs command'],
    [['import-client', 'x.p12'], 'import-client needs --alias NAME'],
    [['import-server'], 'certs import-server expects one FILE'],
    [['import-server', '/nonexistent/cert.pem'], 'cannot read /nonexistent/cert.pem (ENOENT)'],
    [['show', 'nothing'], 'no certificate with alias or id nothing'],
    [['list', '--bogus'], "Unknown option '--bogus'"],
  ])('exits 2 for %j', async (args, message) => {
    const run = await certs(args);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(message);
  });
});
