import { createHash, X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { classifyServerChain, normalizeHost, type ChainVerdict, type ClassifyInput } from '../../../src/trust/chain.js';
import { AcvpnError } from '../../../src/core/errors.js';
import { createTestPki, opensslVersion, TEST_HOST, TEST_IP, type TestPki } from '../../integration/helpers/pki.js';

let pki: TestPki;

beforeAll(async () => {
  expect(await opensslVersion()).toMatch(/^OpenSSL 3\./);
  pki = await createTestPki();
}, 60_000);

afterAll(async () => {
  await pki?.cleanup();
});

function classify(overrides: Partial<ClassifyInput>): Promise<ChainVerdict> {
  return classifyServerChain({
    chainDer: [pki.leaf.der, pki.intermediate.der],
    host: TEST_HOST,
    trustedRootsDer: [pki.root.der],
    importedServerCertsDer: [],
    now: new Date(),
    ...overrides,
  });
}

function codes(verdict: ChainVerdict): string[] {
  return verdict.reasons.map((found) => found.code);
}

describe('classifyServerChain trusted', () => {
  it('accepts leaf and intermediate to a root', async () => {
    const verdict = await classify({});
    expect(verdict.reasons).toEqual([]);
    expect(verdict.status).toBe('trusted');
    expect(verdict.trustedBy).toBe('root');
    expect(verdict.chain.map((certificate) => certificate.subject)).toEqual([
      `CN=${TEST_HOST}`,
      'O=acvpn tests, CN=acvpn Test Intermediate CA',
      'O=acvpn tests, CN=acvpn Test Root CA',
    ]);
  });

  it('accepts the IP address SAN', async () => {
    const verdict = await classify({ host: TEST_IP });
    expect(verdict.status).toBe('trusted');
  });

  it('accepts upper case and a trailing dot', async () => {
    const verdict = await classify({ host: 'VPN.acvpn.TEST.' });
    expect(verdict.status).toBe('trusted');
  });

  it('accepts an RSA leaf with keyEncipherment', async () => {
    const verdict = await classify({ chainDer: [pki.rsaLeaf.der, pki.intermediate.der] });
    expect(verdict.reasons).toEqual([]);
    expect(verdict.status).toBe('trusted');
    expect(verdict.leaf.publicKey).toEqual({ type: 'rsa', bits: 2048 });
  });

  it('accepts intermediates in odd order with duplicates', async () => {
    const verdict = await classify({
      chainDer: [pki.leaf.der, pki.root.der, pki.wrongName.der, pki.intermediate.der, pki.intermediate.der, pki.leaf.der],
    });
    expect(verdict.reasons).toEqual([]);
    expect(verdict.status).toBe('trusted');
    expect(verdict.chain).toHaveLength(3);
  });

  it('accepts an intermediate given as trusted root', async () => {
    const verdict = await classify({ chainDer: [pki.leaf.der], trustedRootsDer: [pki.intermediate.der] });
    expect(verdict.status).toBe('trusted');
    expect(verdict.chain).toHaveLength(2);
  });

  it('accepts a self-signed leaf listed as root', async () => {
    const verdict = await classify({ chainDer: [pki.selfSigned.der], trustedRootsDer: [pki.selfSigned.der] });
    expect(verdict.status).toBe('trusted');
    expect(verdict.trustedBy).toBe('root');
  });

  it('accepts an imported self-signed leaf', async () => {
    const verdict = await classify({ chainDer: [pki.selfSigned.der], importedServerCertsDer: [pki.selfSigned.der] });
    expect(verdict.reasons).toEqual([]);
    expect(verdict.status).toBe('trusted');
    expect(verdict.trustedBy).toBe('imported-certificate');
  });

  it('accepts an imported leaf with missing intermediate', async () => {
    const verdict = await classify({ chainDer: [pki.leaf.der], trustedRootsDer: [], importedServerCertsDer: [pki.leaf.der] });
    expect(verdict.status).toBe('trusted');
    expect(verdict.trustedBy).toBe('imported-certificate');
  });
});

describe('classifyServerChain untrusted', () => {
  it('reports a self-signed leaf', async () => {
    const verdict = await classify({ chainDer: [pki.selfSigned.der] });
    expect(verdict.status).toBe('untrusted');
    expect(codes(verdict)).toEqual(['self-signed']);
    expect(verdict.trustedBy).toBeNull();
  });

  it('reports an unknown root sent by the headend', async () => {
    const verdict = await classify({ chainDer: [pki.otherRootLeaf.der, pki.otherRoot.der] });
    expect(verdict.status).toBe('untrusted');
    expect(codes(verdict)).toEqual(['untrusted-root']);
    expect(verdict.chain).toHaveLength(2);
  });

  it('reports an unknown root not sent', async () => {
    const verdict = await classify({ chainDer: [pki.otherRootLeaf.der] });
    expect(verdict.status).toBe('untrusted');
    expect(codes(verdict)).toEqual(['issuer-not-found']);
  });

  it('reports a missing intermediate', async () => {
    const verdict = await classify({ chainDer: [pki.leaf.der] });
    expect(verdict.status).toBe('untrusted');
    expect(codes(verdict)).toEqual(['issuer-not-found']);
    expect(verdict.reasons[0]?.message).toContain('acvpn Test Intermediate CA');
    expect(verdict.reasons[0]?.certificateIndex).toBe(0);
  });

  it('ignores an imported certificate that differs', async () => {
    const verdict = await classify({ chainDer: [pki.selfSigned.der], importedServerCertsDer: [pki.leaf.der] });
    expect(verdict.status).toBe('untrusted');
  });
});

describe('classifyServerChain invalid', () => {
  it('reports an expired leaf', async () => {
    const verdict = await classify({ chainDer: [pki.expired.der, pki.intermediate.der] });
    expect(verdict.status).toBe('invalid');
    expect(codes(verdict)).toEqual(['expired']);
    expect(verdict.reasons[0]?.message).toContain('2021-01-01');
  });

  it('reports a not yet valid leaf', async () => {
    const verdict = await classify({ chainDer: [pki.notYetValid.der, pki.intermediate.der] });
    expect(verdict.status).toBe('invalid');
    expect(codes(verdict)).toEqual(['not-yet-valid']);
  });

  it('reports an expired intermediate by clock', async () => {
    const verdict = await classify({ now: new Date(Date.now() + 400 * 24 * 3600 * 1000) });
    expect(verdict.status).toBe('invalid');
    expect(verdict.reasons.filter((found) => found.code === 'expired').map((found) => found.certificateIndex)).toEqual([0, 1]);
  });

  it('reports a wrong name', async () => {
    const verdict = await classify({ chainDer: [pki.wrongName.der, pki.intermediate.der] });
    expect(verdict.status).toBe('invalid');
    expect(codes(verdict)).toEqual(['name-mismatch']);
    expect(verdict.reasons[0]?.message).toContain('DNS:other.example.test');
  });

  it('reports an IP not in the SANs', async () => {
    const verdict = await classify({ host: '127.0.0.2' });
    expect(codes(verdict)).toEqual(['name-mismatch']);
  });

  it('reports a self-signed leaf with wrong name as invalid', async () => {
    const verdict = await classify({ chainDer: [pki.selfSigned.der], host: 'other.acvpn.test' });
    expect(verdict.status).toBe('invalid');
    expect(codes(verdict).sort()).toEqual(['name-mismatch', 'self-signed']);
  });

  it('reports a missing serverAuth EKU', async () => {
    const verdict = await classify({ chainDer: [pki.noServerAuth.der, pki.intermediate.der] });
    expect(verdict.status).toBe('invalid');
    expect(codes(verdict)).toEqual(['extended-key-usage']);
  });

  it('reports a wrong keyUsage', async () => {
    const verdict = await classify({ chainDer: [pki.badKeyUsage.der, pki.intermediate.der] });
    expect(verdict.status).toBe('invalid');
    expect(codes(verdict)).toEqual(['key-usage']);
  });

  it('reports a leaf signed by a non-CA', async () => {
    const verdict = await classify({ chainDer: [pki.nonCaIssuedLeaf.der, pki.unauthorizedResponder.der, pki.intermediate.der] });
    expect(verdict.status).toBe('invalid');
    // The responder certificate lacks basicConstraints cA and keyCertSign, and as a second CA
    // level it also breaks the intermediate's pathlen:0.
    const byCode = Object.fromEntries(verdict.reasons.map((found) => [found.code, found.certificateIndex]));
    expect(byCode).toEqual({ 'not-a-ca': 1, 'key-usage': 1, 'path-length-exceeded': 2 });
  });

  it('reports a bad leaf signature', async () => {
    const tampered = Buffer.from(pki.leaf.der);
    // The last bytes are the ECDSA signature's s value; flipping one breaks the signature
    // without breaking the DER.
    tampered[tampered.length - 2] = (tampered[tampered.length - 2] ?? 0) ^ 0x01;
    const verdict = await classify({ chainDer: [tampered, pki.intermediate.der] });
    expect(verdict.status).toBe('invalid');
    expect(codes(verdict)).toEqual(['bad-signature']);
  });

  it('reports an imported but expired leaf', async () => {
    const verdict = await classify({ chainDer: [pki.expired.der], trustedRootsDer: [], importedServerCertsDer: [pki.expired.der] });
    expect(verdict.status).toBe('invalid');
    expect(codes(verdict)).toEqual(['expired']);
  });

  it('reports a path length overrun', async () => {
    const verdict = await classify({ chainDer: [pki.subCaLeaf.der, pki.subCa.der, pki.intermediate.der] });
    expect(verdict.status).toBe('invalid');
    expect(codes(verdict)).toEqual(['path-length-exceeded']);
    expect(verdict.reasons[0]?.certificateIndex).toBe(2);
  });
});

describe('classifyServerChain details', () => {
  it('describes the leaf', async () => {
    const verdict = await classify({});
    const x509 = new X509Certificate(pki.leaf.der);
    const spki = x509.publicKey.export({ type: 'spki', format: 'der' });
    expect(verdict.leaf.der.equals(pki.leaf.der)).toBe(true);
    expect(verdict.leaf.subject).toBe(`CN=${TEST_HOST}`);
    expect(verdict.leaf.issuer).toBe('O=acvpn tests, CN=acvpn Test Intermediate CA');
    expect(verdict.leaf.serialNumber).toBe(x509.serialNumber.toUpperCase());
    expect(verdict.leaf.subjectAltNames).toEqual([`DNS:${TEST_HOST}`, `IP:${TEST_IP}`]);
    expect(verdict.leaf.fingerprintSha256).toBe(x509.fingerprint256);
    expect(verdict.leaf.publicKeyPin).toBe(`pin-sha256:${createHash('sha256').update(spki).digest('base64')}`);
    expect(verdict.leaf.validFrom.getTime()).toBe(new Date(x509.validFrom).getTime());
    expect(verdict.leaf.validTo.getTime()).toBe(new Date(x509.validTo).getTime());
    expect(verdict.leaf.ocspUrls).toEqual(['http://ocsp.intermediate.acvpn.test/']);
    expect(verdict.leaf.publicKey).toEqual({ type: 'ec', curve: 'prime256v1' });
    expect(verdict.chain[1]?.ocspUrls).toEqual(['http://ocsp.root.acvpn.test/']);
  });

  it('rejects an empty chain', async () => {
    await expect(classify({ chainDer: [] })).rejects.toSatisfy(
      (error: unknown) => AcvpnError.is(error) && error.code === 'SERVER_UNTRUSTED',
    );
  });

  it('rejects a leaf that is not X.509', async () => {
    await expect(classify({ chainDer: [Buffer.from('not a certificate')] })).rejects.toSatisfy(
      (error: unknown) => AcvpnError.is(error) && error.code === 'SERVER_UNTRUSTED' && error.message.includes('not valid X.509'),
    );
  });

  it('warns about unparseable extra certificates', async () => {
    const verdict = await classify({ chainDer: [pki.leaf.der, Buffer.from([0x30, 0x03, 0x02, 0x01, 0x01]), pki.intermediate.der] });
    expect(verdict.status).toBe('trusted');
    expect(codes(verdict)).toEqual(['malformed-certificate']);
  });
});

describe('wildcard names', () => {
  it.each([
    ['a.acvpn.test', 'trusted'],
    ['A.ACVPN.TEST', 'trusted'],
    ['a.b.acvpn.test', 'invalid'],
    ['acvpn.test', 'invalid'],
    ['a.acvpn.test.evil', 'invalid'],
  ])('%s is %s', async (host, status) => {
    const verdict = await classify({ chainDer: [pki.wildcardLeaf.der, pki.intermediate.der], host });
    expect(verdict.status).toBe(status);
  });
});

describe('normalizeHost', () => {
  it.each([
    ['[::1]', '::1'],
    ['VPN.Example.COM.', 'vpn.example.com'],
    [' 10.0.0.1 ', '10.0.0.1'],
  ])('%s becomes %s', (input, expected) => {
    expect(normalizeHost(input)).toBe(expected);
  });
});
