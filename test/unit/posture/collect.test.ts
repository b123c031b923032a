import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildPosture, deviceUniqueIdFor, persistentRandomId } from '../../../src/posture/collect.js';

const linuxHost = { android: false, platformId: '0123456789abcdef0123456789abcdef', kernelRelease: '6.1.0-13-amd64', deviceModel: 'Standard PC' };

describe('posture', () => {
  it('hashes the platform id upper-case', () => {
    const expected = createHash('sha256').update('0123456789abcdef0123456789abcdef').digest('hex').toUpperCase();
    expect(deviceUniqueIdFor('0123456789abcdef0123456789abcdef')).toBe(expected);
    expect(expected).toMatch(/^[0-9A-F]{64}$/);
  });

  it('uses host defaults on Linux', () => {
    const posture = buildPosture('0.1.0', linuxHost, {}, () => 'unused');
    expect(posture).toEqual({
      clientVersion: 'v0.1.0',
      platform: 'linux-64',
      platformVersion: '6.1.0-13-amd64',
      deviceType: 'Standard PC',
      deviceUniqueId: deviceUniqueIdFor(linuxHost.platformId),
    });
  });

  it('reports android with the Android ID', () => {
    const posture = buildPosture('0.1.0', { ...linuxHost, android: true, platformId: undefined }, { androidId: '9774d56d682e549c' }, () => 'unused');
    expect(posture.platform).toBe('android');
    expect(posture.deviceUniqueId).toBe(deviceUniqueIdFor('9774d56d682e549c'));
  });

  it('lets flags override every value', () => {
    const overrides = { clientVersion: 'v9', platform: 'android', platformVersion: '14', deviceType: 'Pixel 8', deviceUniqueId: 'ABC' };
    expect(buildPosture('0.1.0', linuxHost, overrides, () => 'unused')).toEqual({ ...overrides, deviceUniqueId: 'ABC' });
  });

  const scratch = mkdtempSync(join(tmpdir(), 'acvpn-posture-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('keeps a random id stable', () => {
    const dir = join(scratch, 'state');
    const first = persistentRandomId(dir);
    expect(persistentRandomId(dir)).toBe(first);
    expect(readFileSync(join(dir, 'device-id'), 'utf8').trim()).toBe(first);
    expect(statSync(join(dir, 'device-id')).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
  });

  it('falls back when no platform id exists', () => {
    const posture = buildPosture('0.1.0', { ...linuxHost, platformId: undefined }, {}, () => 'random-id');
    expect(posture.deviceUniqueId).toBe(deviceUniqueIdFor('random-id'));
  });
});
