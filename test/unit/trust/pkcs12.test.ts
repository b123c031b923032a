// loadPkcs12 against files written by `openssl pkcs12` (OpenSSL 3.0): modern AES-256 and legacy
// RC2/3DES encryption, RSA and EC keys, and the ways a file or its password can be wrong.

import { execFileSync } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AcvpnError } from '../../../src/core/errors.js';
import { redactText, REDACTED } from '../../../src/core/redact.js';
import { loadPkcs12 } from '../../../src/trust/pkcs12.js';

const PASSWORD = 'p12-test-password-7Qx';
const NON_ASCII_PASSWORD = 'pässwörd-€-7Qx';

let dir: string;

function openssl(args: string[]): Buffer {
  return execFileSync('openssl', args, { cwd: dir, timeout: 20_000, stdio: ['ignore', 'pipe', 'pipe'] });
}

function derOfPem(file: string): Buffer {
  return openssl(['x509', '-in', file, '-outform', 'DER']);
}

function pkcs8Pem(keyFile: string): string {
  return createPrivateKey(readFileSync(join(dir, keyFile))).export({ type: 'pkcs8', format: 'pem' }) as string;
}

/** Writes NAME.p12 from KEY and CERT with the CA as chain, with extra `openssl pkcs12` options. */
function exportPkcs12(name: string, key: string, cert: string, ca: string, password: string, options: string[]): Buffer {
  openssl(['pkcs12', '-export', '-inkey', key, '-in', cert, '-certfile', ca, '-passout', `pass:${password}`, '-out', `${name}.p12`, ...options]);
  return readFileSync(join(dir, `${name}.p12`));
}

const MODERN = ['-keypbe', 'AES-256-CBC', '-certpbe', 'AES-256-CBC', '-macalg', 'sha256'];
const LEGACY = ['-legacy'];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'acvpn-pkcs12-'));
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage = clientAuth\n');

  // An RSA CA signs the RSA leaf and one EC leaf. An EC CA signs a second EC leaf, because forge
  // also fails on ECDSA signatures, not only on EC keys.
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'rsa-ca.key', '-out', 'rsa-ca.pem', '-subj', '/CN=PKCS12 Test RSA CA', '-days', '30']);
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ec-ca.key', '-out', 'ec-ca.pem', '-subj', '/CN=PKCS12 Test EC CA', '-days', '30']);
  openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'rsa.key']);
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'ec.key']);

  const issue = (key: string, subject: string, ca: string, out: string): void => {
    openssl(['req', '-new', '-key', key, '-subj', subject, '-out', `${out}.csr`]);
    openssl(['x509', '-req', '-in', `${out}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-days', '10', '-extfile', 'client.ext', '-out', `${out}.pem`]);
  };
  issue('rsa.key', '/CN=alice-rsa', 'rsa-ca', 'rsa');
  issue('ec.key', '/CN=alice-ec', 'rsa-ca', 'ec');
  issue('ec.key', '/CN=alice-ec-by-ec-ca', 'ec-ca', 'ec-by-ec');
}, 60_000);

afterAll(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe('loadPkcs12 reads', () => {
  const cases = [
    { name: 'RSA, AES-256', key: 'rsa.key', cert: 'rsa.pem', ca: 'rsa-ca.pem', options: MODERN, openSslReadable: true },
    { name: 'RSA, legacy RC2/3DES', key: 'rsa.key', cert: 'rsa.pem', ca: 'rsa-ca.pem', options: LEGACY, openSslReadable: false },
    { name: 'EC, AES-256', key: 'ec.key', cert: 'ec.pem', ca: 'rsa-ca.pem', options: MODERN, openSslReadable: true },
    { name: 'EC, legacy RC2/3DES', key: 'ec.key', cert: 'ec.pem', ca: 'rsa-ca.pem', options: LEGACY, openSslReadable: false },
    { name: 'EC under an EC CA, legacy', key: 'ec.key', cert: 'ec-by-ec.pem', ca: 'ec-ca.pem', options: LEGACY, openSslReadable: false },
    { name: 'EC, no encryption', key: 'ec.key', cert: 'ec.pem', ca: 'rsa-ca.pem', options: ['-keypbe', 'NONE', '-certpbe', 'NONE'], openSslReadable: true },
    { name: 'RSA, no MAC', key: 'rsa.key', cert: 'rsa.pem', ca: 'rsa-ca.pem', options: ['-nomac'], openSslReadable: false },
  ];

  it.each(cases)('$name', ({ name, key, cert, ca, options, openSslReadable }) => {
    const file = exportPkcs12(name.replace(/[^a-z0-9]+/gi, '-'), key, cert, ca, PASSWORD, options);

    const contents = loadPkcs12(file, PASSWORD, `${name}.p12`);

    expect(contents.certificateDer.equals(derOfPem(cert))).toBe(true);
    expect(contents.chainDer).toHaveLength(1);
    expect(contents.chainDer[0]?.equals(derOfPem(ca))).toBe(true);
    expect(contents.privateKeyPem).toBe(pkcs8Pem(key));
    expect(contents.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(contents.openSslReadable).toBe(openSslReadable);
    // OpenSSL accepts the pair for a TLS context only when the key matches the certificate.
    expect(() => createSecureContext({ cert: readFileSync(join(dir, cert)), key: contents.privateKeyPem })).not.toThrow();
  });

  it('accepts an empty password', () => {
    const file = exportPkcs12('empty-password', 'ec.key', 'ec.pem', 'rsa-ca.pem', '', MODERN);
    expect(loadPkcs12(file, '', 'empty.p12').certificateDer.equals(derOfPem('ec.pem'))).toBe(true);
  });

  it.each([
    ['AES-256', MODERN],
    ['legacy', LEGACY],
  ])('accepts a non-ASCII password (%s)', (_, options) => {
    const file = exportPkcs12(`utf8-${options.length}`, 'ec.key', 'ec.pem', 'rsa-ca.pem', NON_ASCII_PASSWORD, options);
    expect(loadPkcs12(file, NON_ASCII_PASSWORD, 'utf8.p12').privateKeyPem).toBe(pkcs8Pem('ec.key'));
  });
});

describe('loadPkcs12 rejects', () => {
  function thrown(action: () => unknown): AcvpnError {
    try {
      action();
    } catch (error) {
      if (AcvpnError.is(error)) return error;
      throw error;
    }
    throw new Error('expected an AcvpnError, but nothing was thrown');
  }

  it.each([
    ['AES-256', MODERN],
    ['legacy', LEGACY],
    ['no MAC', ['-nomac']],
  ])('a wrong password (%s)', (label, options) => {
    const file = exportPkcs12(`wrong-${label.replace(/\W+/g, '-')}`, 'rsa.key', 'rsa.pem', 'rsa-ca.pem', PASSWORD, options);
    const error = thrown(() => loadPkcs12(file, 'not-the-password', '/tmp/alice.p12'));
    expect(error.code).toBe('USAGE');
    expect(error.exitCode).toBe(2);
    expect(error.message).toContain('the PKCS#12 password is wrong for /tmp/alice.p12');
    expect(error.message).not.toContain('not-the-password');
  });

  it('registers the password as a secret', () => {
    const file = exportPkcs12('secret-check', 'ec.key', 'ec.pem', 'rsa-ca.pem', PASSWORD, MODERN);
    loadPkcs12(file, PASSWORD, 'secret.p12');
    expect(redactText(`password ${PASSWORD}`)).toBe(`password ${REDACTED}`);
  });

  it('garbage', () => {
    const error = thrown(() => loadPkcs12(Buffer.from('this is not a PKCS#12 file'), PASSWORD, 'garbage.p12'));
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.message).toContain('garbage.p12 is not a readable PKCS#12 file');
  });

  it('a truncated file', () => {
    const file = exportPkcs12('truncated', 'rsa.key', 'rsa.pem', 'rsa-ca.pem', PASSWORD, MODERN);
    const error = thrown(() => loadPkcs12(file.subarray(0, file.length >> 1), PASSWORD, 'truncated.p12'));
    expect(error.code).toBe('CONFIG_INVALID');
  });

  it('a PEM certificate given as PKCS#12', () => {
    const error = thrown(() => loadPkcs12(readFileSync(join(dir, 'rsa.pem')), PASSWORD, 'rsa.pem'));
    expect(error.code).toBe('CONFIG_INVALID');
  });

  it('a file without a private key', () => {
    openssl(['pkcs12', '-export', '-nokeys', '-in', 'rsa.pem', '-passout', `pass:${PASSWORD}`, '-out', 'nokey.p12']);
    const error = thrown(() => loadPkcs12(readFileSync(join(dir, 'nokey.p12')), PASSWORD, 'nokey.p12'));
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.message).toContain('nokey.p12 contains no private key');
  });

  it('a key without its certificate', () => {
    // -nocerts leaves the EC leaf out; -certfile adds a certificate for another key.
    openssl(['pkcs12', '-export', '-nocerts', '-inkey', 'ec.key', '-certfile', 'rsa.pem', '-passout', `pass:${PASSWORD}`, '-out', 'orphan.p12', ...MODERN]);
    const error = thrown(() => loadPkcs12(readFileSync(join(dir, 'orphan.p12')), PASSWORD, 'orphan.p12'));
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.message).toContain('no certificate for it');
  });
});
