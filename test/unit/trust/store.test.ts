import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AcvpnError } from '../../../src/core/errors.js';
import { classifyServerChain } from '../../../src/trust/chain.js';
import { CertificateStore, decodeCertificateInput } from '../../../src/trust/store.js';
import { createTestPki, TEST_HOST, type TestPki } from '../../integration/helpers/pki.js';

let pki: TestPki;
let scratch: string;
let store: CertificateStore;

beforeAll(async () => {
  pki = await createTestPki();
  scratch = await mkdtemp(join(tmpdir(), 'acvpn-store-'));
}, 60_000);

afterAll(async () => {
  await pki?.cleanup();
  if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
});

let storeCount = 0;
beforeEach(() => {
  storeCount += 1;
  store = new CertificateStore(join(scratch, `state-${storeCount}`, 'certificates'));
});

function usageError(fragment: string) {
  return (error: unknown) => AcvpnError.is(error) && error.code === 'USAGE' && error.message.includes(fragment);
}

function fingerprintId(der: Buffer): Promise<string> {
  return classifyServerChain({ chainDer: [der], host: TEST_HOST, trustedRootsDer: [], importedServerCertsDer: [], now: new Date() }).then(
    (verdict) => verdict.leaf.fingerprintSha256.replace(/:/g, '').toLowerCase(),
  );
}

describe('decodeCertificateInput', () => {
  it('decodes PEM', () => {
    expect(decodeCertificateInput(Buffer.from(pki.leaf.pem), 'leaf.pem').equals(pki.leaf.der)).toBe(true);
  });

  it('passes DER through', () => {
    expect(decodeCertificateInput(pki.leaf.der, 'leaf.der').equals(pki.leaf.der)).toBe(true);
  });

  it('rejects two certificates', () => {
    expect(() => decodeCertificateInput(Buffer.from(pki.leaf.pem + pki.intermediate.pem), 'chain.pem')).toThrow(
      expect.objectContaining({ code: 'USAGE', message: expect.stringContaining('contains 2 certificates') }),
    );
  });

  it('rejects a PEM key', () => {
    const key = '-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n';
    expect(() => decodeCertificateInput(Buffer.from(key), 'key.pem')).toThrow(expect.objectContaining({ code: 'USAGE' }));
  });

  it('rejects garbage', () => {
    expect(() => decodeCertificateInput(Buffer.from('hello'), 'notes.txt')).toThrow(
      expect.objectContaining({ message: expect.stringContaining('notes.txt is not an X.509 certificate') }),
    );
  });
});

describe('CertificateStore', () => {
  it('imports with private modes', async () => {
    const stored = await store.importCertificate(pki.selfSigned.der);
    expect(stored.id).toBe(await fingerprintId(pki.selfSigned.der));
    expect((await stat(store.directory)).mode & 0o777).toBe(0o700);
    expect((await stat(stored.path)).mode & 0o777).toBe(0o600);
    expect(await readFile(stored.path, 'utf8')).toMatch(/^-----BEGIN CERTIFICATE-----\n/);
  });

  it('tightens an existing directory', async () => {
    await mkdir(store.directory, { recursive: true, mode: 0o755 });
    await store.importCertificate(pki.selfSigned.der);
    expect((await stat(store.directory)).mode & 0o777).toBe(0o700);
  });

  it('imports PEM and DER alike', async () => {
    const fromPem = await store.importCertificate(Buffer.from(pki.selfSigned.pem));
    const fromDer = await store.importCertificate(pki.selfSigned.der);
    expect(fromPem.id).toBe(fromDer.id);
    expect(await readdir(store.directory)).toEqual([`${fromDer.id}.pem`]);
  });

  it('lists imported certificates', async () => {
    expect(await store.list()).toEqual([]);
    await store.importCertificate(pki.selfSigned.der);
    await store.importCertificate(pki.wrongName.der);
    const listed = await store.list();
    expect(listed.map((stored) => stored.details.subject)).toEqual(['CN=other.example.test', `CN=${TEST_HOST}`]);
  });

  it('skips files it cannot parse', async () => {
    await store.importCertificate(pki.selfSigned.der);
    await writeFile(join(store.directory, `${'0'.repeat(64)}.pem`), 'damaged');
    await writeFile(join(store.directory, 'README'), 'not a certificate');
    expect((await store.list()).map((stored) => stored.details.subject)).toEqual([`CN=${TEST_HOST}`]);
  });

  it('shows by prefix and colon form', async () => {
    const stored = await store.importCertificate(pki.selfSigned.der);
    expect((await store.show(stored.id.slice(0, 8))).id).toBe(stored.id);
    expect((await store.show(stored.details.fingerprintSha256)).id).toBe(stored.id);
  });

  it('rejects short, unknown and malformed ids', async () => {
    const stored = await store.importCertificate(pki.selfSigned.der);
    await expect(store.show(stored.id.slice(0, 4))).rejects.toSatisfy(usageError('at least 8 hex digits'));
    await expect(store.show('ffffffffffff')).rejects.toSatisfy(usageError('no certificate with id'));
    await expect(store.show('not-an-id!')).rejects.toSatisfy(usageError('not a SHA-256 fingerprint'));
  });

  it('deletes a certificate', async () => {
    const kept = await store.importCertificate(pki.wrongName.der);
    const removed = await store.importCertificate(pki.selfSigned.der);
    expect((await store.delete(removed.id)).id).toBe(removed.id);
    expect((await store.list()).map((stored) => stored.id)).toEqual([kept.id]);
    await expect(store.delete(removed.id)).rejects.toSatisfy(usageError('no certificate with id'));
  });

  it('feeds classification', async () => {
    const classify = async () =>
      classifyServerChain({
        chainDer: [pki.selfSigned.der],
        host: TEST_HOST,
        trustedRootsDer: [],
        importedServerCertsDer: await store.loadDer(),
        now: new Date(),
      });
    expect((await classify()).status).toBe('untrusted');
    await store.importCertificate(Buffer.from(pki.selfSigned.pem));
    const verdict = await classify();
    expect(verdict.status).toBe('trusted');
    expect(verdict.trustedBy).toBe('imported-certificate');
  });
});
