// Checks and repairs done before a session starts, shared by `acvpn connect` and the daemon.

import { accessSync, constants as fsConstants, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AcvpnError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { runIp } from '../net/ip-command.js';
import { RouteManager } from '../net/routes/apply.js';
import { restoreResolvConf, type RestoreResult } from '../net/dns/resolv-conf.js';

/** Raises ENV_NOT_ROOT or ENV_NO_TUN when the host cannot carry a tunnel. */
export function checkEnvironment(): void {
  if (process.getuid !== undefined && process.getuid() !== 0) {
    throw new AcvpnError('ENV_NOT_ROOT', 'acvpn needs root (or CAP_NET_ADMIN) to create the TUN device and routes; run it as root');
  }
  try {
    accessSync('/dev/net/tun', fsConstants.R_OK | fsConstants.W_OK);
  } catch {
    throw new AcvpnError('ENV_NO_TUN', '/dev/net/tun is missing or not accessible; load the tun kernel module (modprobe tun)');
  }
}

/** Reads a --cafile (or the daemon's cafile parameter) and checks that it holds PEM certificates. */
export async function readCaFile(path: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new AcvpnError('USAGE', `cannot read the CA file ${path} (${code}); give the path of a PEM file with CA certificates`);
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) {
    throw new AcvpnError('USAGE', `the CA file ${path} contains no PEM certificate; give a PEM file with CA certificates`);
  }
  return text;
}

export function undoFilePath(runDir: string): string {
  return join(runDir, 'routes.undo.json');
}

export function resolvConfBackupPath(runDir: string): string {
  return join(runDir, 'resolv.conf.backup');
}

/**
 * Removes the routes recorded in the undo file and puts back the resolv.conf backup of a session
 * that ended without restoring them (a killed process).
 */
export async function removeLeftovers(runDir: string, log: Logger): Promise<{ routes: number; resolvConf: RestoreResult }> {
  const routes = await RouteManager.undoFromFile(runIp, undoFilePath(runDir), log);
  const resolvConf = await restoreResolvConf('/etc/resolv.conf', resolvConfBackupPath(runDir));
  return { routes, resolvConf };
}

/** acvpn's version from package.json, for the posture and the User-Agent. */
export function readPackageVersion(): string {
  try {
    const path = new URL('../../package.json', import.meta.url);
    return (JSON.parse(readFileSync(path, 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
}
