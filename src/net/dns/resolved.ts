// Split DNS through systemd-resolved, for hosts where it owns /etc/resolv.conf. Instead of the
// forwarder, the tunnel's DNS servers and domains are set on the TUN link with resolvectl, and
// resolved routes each query itself.
//
// NOTE: this module is only unit-tested, against a fake command runner. systemd-resolved does
// not run on the test machines, so the resolvectl argument lists below have never been executed
// by a test against a real resolved.

import { execFile } from 'node:child_process';
import { realpath, stat } from 'node:fs/promises';
import { AcvpnError } from '../../core/errors.js';
import type { DnsRouting } from './routing.js';

/** Runs a program with an argv array (never through a shell) and returns its stdout. */
export type CommandRunner = (file: string, args: string[]) => Promise<{ stdout: string }>;

/**
 * Returns the resolvectl argument lists that configure `link` for `routing`:
 *   - 'all-tunnel': the link's servers, the routing domain `~.` (every name) plus the search
 *     domains, and default-route true.
 *   - 'split': the link's servers, `~domain` for each tunnel domain plus the search domains,
 *     and default-route false, so other names keep using the host's own links.
 *   - 'none': nothing, because no name goes to the tunnel.
 */
export function planResolvedCommands(link: string, routing: DnsRouting, servers: string[]): string[][] {
  if (routing.mode === 'none' || servers.length === 0) return [];

  // NOTE: resolved also routes a search domain to the link it is set on. In 'split' mode a
  // default domain outside the split-DNS list therefore goes to the tunnel as well, while the
  // forwarder sends it to the host resolvers.
  const domains: string[] = [];
  if (routing.mode === 'all-tunnel') domains.push('~.');
  for (const domain of routing.tunnelDomains) {
    if (!routing.searchDomains.includes(domain)) domains.push(`~${domain}`);
  }
  domains.push(...routing.searchDomains);

  return [
    ['dns', link, ...servers],
    ['domain', link, ...domains],
    ['default-route', link, routing.mode === 'all-tunnel' ? 'true' : 'false'],
  ];
}

/** Applies planResolvedCommands with `run`. Raises AcvpnError 'ENV_COMMAND_FAILED' when one fails. */
export async function applyResolved(run: CommandRunner, link: string, routing: DnsRouting, servers: string[]): Promise<void> {
  for (const args of planResolvedCommands(link, routing, servers)) {
    await runResolvectl(run, args);
  }
}

/** Drops every DNS setting acvpn made on `link`; call it while the link still exists. */
export async function revertResolved(run: CommandRunner, link: string): Promise<void> {
  await runResolvectl(run, ['revert', link]);
}

export interface ResolvedPaths {
  /** Default /etc/resolv.conf. */
  resolvConf?: string;
  /** Default /run/systemd/resolve, where resolved writes stub-resolv.conf while it runs. */
  resolvedRunDir?: string;
}

/**
 * True when systemd-resolved is running and the host's resolv.conf is one of its files (a
 * symlink into its run directory). A host that runs resolved but keeps its own resolv.conf
 * reads that file, so it gets the forwarder instead.
 */
export async function detectResolved(paths: ResolvedPaths = {}): Promise<boolean> {
  const resolvConf = paths.resolvConf ?? '/etc/resolv.conf';
  const runDir = paths.resolvedRunDir ?? '/run/systemd/resolve';
  try {
    await stat(`${runDir}/stub-resolv.conf`);
    const target = await realpath(resolvConf);
    const runDirReal = await realpath(runDir);
    return target.startsWith(`${runDirReal}/`);
  } catch {
    return false;
  }
}

/** Runs a program with execFile, 10 s timeout. Raises the error execFile reports. */
export const runCommand: CommandRunner = (file, args) =>
  new Promise((resolve, reject) => {
    execFile(file, args, { timeout: 10_000, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } }, (error, stdout, stderr) => {
      if (error === null) resolve({ stdout });
      else reject(Object.assign(error, { stderr }));
    });
  });

async function runResolvectl(run: CommandRunner, args: string[]): Promise<void> {
  try {
    await run('resolvectl', args);
  } catch (error) {
    const stderr = String((error as { stderr?: unknown }).stderr ?? '').trim();
    let reason = stderr;
    if (reason === '') reason = error instanceof Error ? error.message : String(error);
    throw new AcvpnError(
      'ENV_COMMAND_FAILED',
      `resolvectl ${args.join(' ')} failed: ${reason}; check that systemd-resolved is running`,
      { argv: ['resolvectl', ...args] },
      { cause: error },
    );
  }
}
