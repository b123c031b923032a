import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { AcvpnError } from '../../../src/core/errors.js';
import { checkServerCertificate, parsePin, publicKeyPin } from '../../../src/trust/server-check.js';

let leafDer: Buffer;

function rejection(run: () => unknown): AcvpnError {
  try {
    run();
  } catch (error) {
    if (AcvpnError.is(error)) return error;
    throw error;
  }
  throw new Error('expected the check to reject');
}

beforeAll(() => {
  const dir = mkdtempSync(join(tmpdir(), 'acvpn-trust-'));
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', '/CN=vpn.rig.test', '-addext', 'subjectAltName=DNS:vpn.rig.test,IP:198.18.0.1',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
  ], { stdio: 'ignore' });
  leafDer = new X509Certificate(readFileSync(join(dir, 'cert.pem'))).raw;
});

describe('checkServerCertificate', () => {
  it('accepts a verified chain for its name', () => {
    expect(checkServerCertificate('vpn.rig.test', { leafDer, chainVerified: true }, { pins: [] }).reason).toBe('chain');
  });

  it('accepts a verified chain for its IP', () => {
    expect(checkServerCertificate('198.18.0.1', { leafDer, chainVerified: true }, { pins: [] }).reason).toBe('chain');
  });

  it('rejects an unverified chain naming the pin', () => {
    const error = rejection(() =>
      checkServerCertificate('vpn.rig.test', { leafDer, chainVerified: false, chainError: 'DEPTH_ZERO_SELF_SIGNED_CERT' }, { pins: [] }),
    );
    expect(error.code).toBe('SERVER_UNTRUSTED');
    expect(error.exitCode).toBe(5);
    expect(error.message).toContain('DEPTH_ZERO_SELF_SIGNED_CERT');
    expect(error.message).toContain(publicKeyPin(leafDer));
  });

  it('rejects a name mismatch', () => {
    const error = rejection(() => checkServerCertificate('other.rig.test', { leafDer, chainVerified: true }, { pins: [] }));
    expect(error.message).toMatch(/not valid for the name other\.rig\.test/);
  });

  it('accepts a matching pin without a chain', () => {
    const verdict = checkServerCertificate('anything', { leafDer, chainVerified: false }, { pins: [publicKeyPin(leafDer)] });
    expect(verdict.reason).toBe('pin');
  });

  it('rejects a mismatched pin even with a chain', () => {
    const otherPin = `pin-sha256:${Buffer.alloc(32, 7).toString('base64')}`;
    const error = rejection(() => checkServerCertificate('vpn.rig.test', { leafDer, chainVerified: true }, { pins: [otherPin] }));
    expect(error.message).toMatch(/matches no --servercert pin/);
  });

  it('matches the pin openssl computes', () => {
    const spki = new X509Certificate(leafDer).publicKey.export({ type: 'spki', format: 'der' });
    const viaOpenssl = execFileSync('openssl', ['dgst', '-sha256', '-binary'], { input: spki }).toString('base64');
    expect(publicKeyPin(leafDer)).toBe(`pin-sha256:${viaOpenssl}`);
  });

  it('parses pins strictly', () => {
    const pin = `pin-sha256:${Buffer.alloc(32, 1).toString('base64')}`;
    expect(parsePin(` ${pin} `)).toBe(pin);
    expect(() => parsePin('pin-sha256:short')).toThrowError(/44 characters/);
    expect(() => parsePin('sha1:00')).toThrowError(/pin-sha256/);
  });
});
