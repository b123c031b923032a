// Default posture values read from the host. Every value can be overridden from the command line;
// see Posture for what each one means on the wire.

import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { arch, machine, release } from 'node:os';
import { join } from 'node:path';
import type { Posture } from './posture.js';

export interface HostFacts {
  /** True on Android (an Android emulator or device running acvpn under Termux or similar). */
  android: boolean;
  /** /etc/machine-id on Linux, the Android ID on Android; undefined when neither exists. */
  platformId?: string;
  kernelRelease: string;
  deviceModel: string;
}

export interface PostureOverrides {
  clientVersion?: string;
  platform?: string;
  platformVersion?: string;
  deviceType?: string;
  deviceUniqueId?: string;
  /** Android ID given on the command line (Android has no readable /etc/machine-id). */
  androidId?: string;
}

/** Upper-case hex SHA-256 of the platform id: the ACIDex device unique id. */
export function deviceUniqueIdFor(platformId: string): string {
  return createHash('sha256').update(platformId).digest('hex').toUpperCase();
}

/** Builds the posture from host facts and overrides. Pure: reading the host is readHostFacts' job. */
export function buildPosture(version: string, facts: HostFacts, overrides: PostureOverrides, fallbackId: () => string): Posture {
  const platformId = overrides.androidId ?? facts.platformId;
  return {
    clientVersion: overrides.clientVersion ?? `v${version}`,
    platform: overrides.platform ?? (facts.android ? 'android' : 'linux-64'),
    platformVersion: overrides.platformVersion ?? facts.kernelRelease,
    deviceType: overrides.deviceType ?? facts.deviceModel,
    deviceUniqueId: overrides.deviceUniqueId ?? deviceUniqueIdFor(platformId ?? fallbackId()),
  };
}

export function readHostFacts(): HostFacts {
  const android = process.platform === 'android' || existsSync('/system/build.prop');
  return {
    android,
    platformId: readTrimmed('/etc/machine-id'),
    kernelRelease: release(),
    deviceModel: readTrimmed('/sys/class/dmi/id/product_name') ?? `${machine()} (${arch()})`,
  };
}

/**
 * Returns the random platform id kept in the state directory, creating it on first use. Used only
 * where neither /etc/machine-id nor an Android ID exists, so that the device id stays stable.
 */
export function persistentRandomId(stateDir: string): string {
  const path = join(stateDir, 'device-id');
  const existing = readTrimmed(path);
  if (existing !== undefined) return existing;
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const created = randomBytes(16).toString('hex');
  writeFileSync(path, `${created}\n`, { mode: 0o600 });
  return created;
}

function readTrimmed(path: string): string | undefined {
  try {
    const text = readFileSync(path, 'utf8').trim();
    return text === '' ? undefined : text;
  } catch {
    return undefined;
  }
}
