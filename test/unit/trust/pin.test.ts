import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { parsePin, publicKeyPin } from '../../../src/trust/pin.js';

let leafDer: Buffer;

beforeAll(() => {
  const dir = mkdtempSync(join(tmpdir(), 'acvpn-trust-'));
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', '/CN=vpn.rig.test', '-addext', 'subjectAltName=DNS:vpn.rig.test,IP:198.18.0.1',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
  ], { stdio: 'ignore' });
  leafDer = new X509Certificate(readFileSync(join(dir, 'cert.pem'))).raw;
  rmSync(dir, { recursive: true, force: true });
});

describe('public-key pins', () => {
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
