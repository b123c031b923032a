// resolv.conf: parsing the host's resolvers, pointing the file at the forwarder, and putting the
// original back byte for byte.
//
// The file is always rewritten in place (open with O_TRUNC, then write), never replaced by a
// rename. Inside `ip netns exec NAME`, /etc/resolv.conf is a bind mount of
// /etc/netns/NAME/resolv.conf, and renaming another file over a mount point fails with EBUSY.
// In-place writes also keep the file's owner, mode and SELinux label.
//
// The backup is the undo record: while it exists, the live file is ours. A backup left behind
// by a killed process is restored before a new one is written, and `acvpn cleanup` restores it
// by calling restoreResolvConf.

import { isIP } from 'node:net';
import { open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { AcvpnError } from '../../core/errors.js';

export interface ResolvConf {
  /** Resolver addresses in file order; an IPv6 link-local address may carry a `%zone`. */
  nameservers: string[];
  /** The search list (from the last `search` or `domain` line, as the resolver reads it). */
  search: string[];
  /** Words of all `options` lines, in order (e.g. `ndots:2`, `edns0`). */
  options: string[];
}

/** First line of a file written by applyResolvConf; restoreResolvConf only overwrites files that start with it. */
export const MANAGED_HEADER = '# Managed by acvpn while the VPN is up. If acvpn was killed, run `acvpn cleanup` to restore the original.';

/**
 * Parses resolv.conf text the way glibc's resolver reads it: lines starting with '#' or ';' are
 * comments, a keyword is followed by whitespace-separated values, and of `search` and `domain`
 * the last one wins. Nameserver lines with an invalid address are skipped.
 */
export function parseResolvConf(text: string): ResolvConf {
  const result: ResolvConf = { nameservers: [], search: [], options: [] };
  for (const line of text.split('\n')) {
    const words = line.trim().split(/[ \t]+/);
    const keyword = words[0] ?? '';
    const values = words.slice(1);
    switch (keyword) {
      case 'nameserver': {
        const address = values[0];
        if (address !== undefined && isNameserverAddress(address)) result.nameservers.push(address);
        break;
      }
      case 'search':
        result.search = values;
        break;
      case 'domain':
        result.search = values.slice(0, 1);
        break;
      case 'options':
        result.options.push(...values);
        break;
      default:
        // Comments, blank lines and keywords such as `sortlist` carry nothing the forwarder uses.
        break;
    }
  }
  return result;
}

/**
 * Builds the text that sends every lookup to the forwarder. The search list is the tunnel's
 * search domains followed by the host's own; the host's `options` are kept.
 */
export function buildResolvConf(original: ResolvConf, forwarderAddress: string, searchDomains: string[]): string {
  const lines = [MANAGED_HEADER, `nameserver ${forwarderAddress}`];
  const search: string[] = [];
  for (const domain of [...searchDomains, ...original.search]) {
    if (!search.includes(domain)) search.push(domain);
  }
  if (search.length > 0) lines.push(`search ${search.join(' ')}`);
  if (original.options.length > 0) lines.push(`options ${original.options.join(' ')}`);
  return `${lines.join('\n')}\n`;
}

/** Reads and parses a resolv.conf; a missing file reads as empty, as it does for the resolver. */
export async function readResolvConf(path: string): Promise<ResolvConf> {
  try {
    return parseResolvConf(await readFile(path, 'utf8'));
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return parseResolvConf('');
    throw fileError('read', path, error);
  }
}

/**
 * Points `path` at the forwarder: restores a stale backup first, saves the current bytes to
 * `backupPath` (mode 0600), then rewrites `path` in place. Returns the parsed original, whose
 * nameservers are the host resolvers the forwarder should use for names outside the tunnel.
 * Raises AcvpnError 'ENV_COMMAND_FAILED' when a file cannot be read or written.
 */
export async function applyResolvConf(
  path: string,
  forwarderAddress: string,
  searchDomains: string[],
  backupPath: string,
): Promise<ResolvConf> {
  if (isIP(forwarderAddress) === 0) {
    throw new AcvpnError('CONFIG_INVALID', `invalid forwarder address ${JSON.stringify(forwarderAddress)}: expected an IPv4 or IPv6 address`);
  }
  for (const domain of searchDomains) {
    // A space or newline here would add words or lines to the file.
    if (!/^[A-Za-z0-9._-]+$/.test(domain)) {
      throw new AcvpnError('CONFIG_INVALID', `invalid search domain ${JSON.stringify(domain)}: expected a plain domain name`);
    }
  }

  await restoreResolvConf(path, backupPath);

  const originalBytes = await readBytes(path);
  const original = parseResolvConf(originalBytes.toString('utf8'));
  await writeBackup(backupPath, originalBytes);
  await rewriteInPlace(path, Buffer.from(buildResolvConf(original, forwarderAddress, searchDomains), 'utf8'));
  return original;
}

export type RestoreResult = 'restored' | 'no-backup' | 'replaced-by-other';

/**
 * Puts the bytes saved in `backupPath` back into `path` (in place) and deletes the backup.
 * Returns 'no-backup' when there is nothing to restore, and 'replaced-by-other' when `path` no
 * longer starts with MANAGED_HEADER: another program (a DHCP client, NetworkManager) wrote a
 * newer file, which is kept, and only the backup is deleted.
 */
export async function restoreResolvConf(path: string, backupPath: string): Promise<RestoreResult> {
  let backup: Buffer;
  try {
    backup = await readFile(backupPath);
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return 'no-backup';
    throw fileError('read', backupPath, error);
  }

  const current = await readBytes(path);
  const managed = current.toString('utf8').startsWith(MANAGED_HEADER);
  if (managed) await rewriteInPlace(path, backup);

  try {
    await rm(backupPath, { force: true });
  } catch (error) {
    throw fileError('delete', backupPath, error);
  }
  return managed ? 'restored' : 'replaced-by-other';
}

async function readBytes(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    // NOTE: a missing file is treated as empty, so restoring leaves an empty file where there
    // was none. The resolver reads both the same way.
    if (isErrno(error, 'ENOENT')) return Buffer.alloc(0);
    throw fileError('read', path, error);
  }
}

// The backup itself is written to a temporary name and renamed, so a crash never leaves a
// half-written backup that a later start would "restore".
async function writeBackup(backupPath: string, bytes: Buffer): Promise<void> {
  const temporary = `${backupPath}.tmp`;
  try {
    // A leftover temporary file would keep its old mode, because `mode` applies only on create.
    await rm(temporary, { force: true });
    await writeFile(temporary, bytes, { mode: 0o600, flush: true });
    await rename(temporary, backupPath);
  } catch (error) {
    await rm(temporary, { force: true }).catch(() => undefined);
    throw fileError('write', backupPath, error);
  }
}

async function rewriteInPlace(path: string, bytes: Buffer): Promise<void> {
  try {
    // 'w' is O_WRONLY | O_CREAT | O_TRUNC on the existing inode, which works through a bind mount.
    const handle = await open(path, 'w', 0o644);
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (error) {
    throw fileError('write', path, error);
  }
}

function isNameserverAddress(text: string): boolean {
  const zone = text.indexOf('%');
  return isIP(zone === -1 ? text : text.slice(0, zone)) !== 0;
}

function isErrno(error: unknown, code: string): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === code;
}

function fileError(operation: string, path: string, error: unknown): AcvpnError {
  const reason = error instanceof Error ? error.message : String(error);
  return new AcvpnError(
    'ENV_COMMAND_FAILED',
    `could not ${operation} ${path}: ${reason}; check that acvpn runs as root and the file system is writable`,
    { path },
    { cause: error },
  );
}
