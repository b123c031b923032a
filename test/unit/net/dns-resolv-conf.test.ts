import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AcvpnError } from '../../../src/core/errors.js';
import {
  MANAGED_HEADER,
  applyResolvConf,
  buildResolvConf,
  parseResolvConf,
  readResolvConf,
  restoreResolvConf,
} from '../../../src/net/dns/resolv-conf.js';

// Comments, odd spacing, a CRLF line, no final newline and non-ASCII bytes, so that a restore
// that re-serializes instead of copying bytes would show.
const original = Buffer.concat([
  Buffer.from('# written by the DHCP client\n; another comment\nnameserver 192.0.2.53\n'),
  Buffer.from('nameserver   2001:db8::53\r\nnameserver fe80::1%eth0\nnameserver not-an-address\n'),
  Buffer.from('domain home.example\nsearch lan.example  office.example\noptions ndots:2 edns0\noptions timeout:1\n'),
  Buffer.from([0x23, 0x20, 0xc3, 0xa9, 0xff]),
]);

describe('parseResolvConf', () => {
  it('reads nameservers, search and options', () => {
    const parsed = parseResolvConf(original.toString('utf8'));

    expect(parsed.nameservers).toEqual(['192.0.2.53', '2001:db8::53', 'fe80::1%eth0']);
    expect(parsed.search).toEqual(['lan.example', 'office.example']);
    expect(parsed.options).toEqual(['ndots:2', 'edns0', 'timeout:1']);
  });

  it('lets the last of search and domain win', () => {
    expect(parseResolvConf('search a.example b.example\ndomain c.example\n').search).toEqual(['c.example']);
    expect(parseResolvConf('domain c.example\nsearch a.example b.example\n').search).toEqual(['a.example', 'b.example']);
  });

  it('reads an empty file as no resolvers', () => {
    expect(parseResolvConf('')).toEqual({ nameservers: [], search: [], options: [] });
  });

  it('skips comment lines that look like keywords', () => {
    expect(parseResolvConf('#nameserver 192.0.2.1\n;nameserver 192.0.2.2\n').nameservers).toEqual([]);
  });
});

describe('buildResolvConf', () => {
  it('points at the forwarder and merges search lists', () => {
    const text = buildResolvConf(
      { nameservers: ['192.0.2.53'], search: ['lan.example', 'corp.example'], options: ['edns0'] },
      '127.0.0.1',
      ['corp.example', 'lab.internal'],
    );

    expect(text).toBe(`${MANAGED_HEADER}\nnameserver 127.0.0.1\nsearch corp.example lab.internal lan.example\noptions edns0\n`);
  });

  it('leaves out empty search and options lines', () => {
    expect(buildResolvConf({ nameservers: [], search: [], options: [] }, '::1', [])).toBe(`${MANAGED_HEADER}\nnameserver ::1\n`);
  });
});

describe('applyResolvConf and restoreResolvConf', () => {
  let directory: string;
  let path: string;
  let backupPath: string;

  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'acvpn-resolv-'));
    path = join(directory, 'resolv.conf');
    backupPath = join(directory, 'resolv.conf.acvpn-backup');
    await writeFile(path, original);
  });

  afterEach(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it('rewrites in place and restores byte for byte', async () => {
    const inodeBefore = (await stat(path)).ino;

    const parsed = await applyResolvConf(path, '127.0.0.1', ['corp.example'], backupPath);

    expect(parsed.nameservers).toEqual(['192.0.2.53', '2001:db8::53', 'fe80::1%eth0']);
    const rewritten = await readFile(path, 'utf8');
    expect(rewritten.startsWith(`${MANAGED_HEADER}\n`)).toBe(true);
    expect(rewritten).toContain('\nnameserver 127.0.0.1\n');
    expect(rewritten).toContain('\nsearch corp.example lan.example office.example\n');
    expect(rewritten).not.toContain('192.0.2.53');
    expect((await stat(path)).ino).toBe(inodeBefore);
    expect((await stat(backupPath)).mode & 0o777).toBe(0o600);
    expect(await readFile(backupPath)).toEqual(original);

    expect(await restoreResolvConf(path, backupPath)).toBe('restored');

    expect(await readFile(path)).toEqual(original);
    expect((await stat(path)).ino).toBe(inodeBefore);
    await expect(stat(backupPath)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('restores a stale backup before applying again', async () => {
    await applyResolvConf(path, '127.0.0.1', ['corp.example'], backupPath);
    // A second run after a killed first run: the live file is ours and the backup is still there.

    const parsed = await applyResolvConf(path, '127.0.0.2', [], backupPath);

    expect(parsed.nameservers).toEqual(['192.0.2.53', '2001:db8::53', 'fe80::1%eth0']);
    expect(await readFile(backupPath)).toEqual(original);
    expect(await readFile(path, 'utf8')).toContain('nameserver 127.0.0.2\n');
    expect(await restoreResolvConf(path, backupPath)).toBe('restored');
    expect(await readFile(path)).toEqual(original);
  });

  it('keeps a file another program wrote meanwhile', async () => {
    await applyResolvConf(path, '127.0.0.1', [], backupPath);
    await writeFile(path, 'nameserver 198.51.100.1\n');

    expect(await restoreResolvConf(path, backupPath)).toBe('replaced-by-other');

    expect(await readFile(path, 'utf8')).toBe('nameserver 198.51.100.1\n');
    await expect(stat(backupPath)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('reports a missing backup', async () => {
    expect(await restoreResolvConf(path, backupPath)).toBe('no-backup');
    expect(await readFile(path)).toEqual(original);
  });

  it('rejects a search domain that would add a line', async () => {
    const attempt = applyResolvConf(path, '127.0.0.1', ['corp.example\nnameserver 203.0.113.1'], backupPath);

    await expect(attempt).rejects.toBeInstanceOf(AcvpnError);
    await expect(attempt).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    expect(await readFile(path)).toEqual(original);
  });

  it('rejects a forwarder address that is not an IP address', async () => {
    await expect(applyResolvConf(path, 'localhost', [], backupPath)).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  });

  it('raises ENV_COMMAND_FAILED when the file cannot be written', async () => {
    const attempt = applyResolvConf(join(directory, 'missing-dir', 'resolv.conf'), '127.0.0.1', [], backupPath);

    await expect(attempt).rejects.toMatchObject({ code: 'ENV_COMMAND_FAILED' });
  });

  it('reads a missing file as empty', async () => {
    expect(await readResolvConf(join(directory, 'absent'))).toEqual({ nameservers: [], search: [], options: [] });
  });
});
