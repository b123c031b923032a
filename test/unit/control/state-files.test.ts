import { mkdtemp, readFile, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AcvpnError } from '../../../src/core/errors.js';
import { ENTRIES_FILE, EntriesStore, SETTINGS_FILE, SettingsStore, defaultSettings } from '../../../src/control/state-files.js';

let root: string;
let stateDir: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'acvpn-state-'));
  stateDir = join(root, 'state');
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function modeOf(path: string): Promise<number> {
  return (await stat(path)).mode & 0o777;
}

describe('SettingsStore', () => {
  it('returns the defaults without a file', async () => {
    expect(await new SettingsStore(stateDir).load()).toEqual(defaultSettings());
    expect(defaultSettings().trust.blockUntrustedServers).toBe(true);
  });

  it('persists a patch with private modes', async () => {
    const store = new SettingsStore(stateDir);
    const updated = await store.update({ trust: { blockUntrustedServers: false }, dtls: false });
    expect(updated.trust.blockUntrustedServers).toBe(false);
    expect(updated.trust.ocsp).toBe(true);
    expect(updated.dtls).toBe(false);
    expect(updated.netroam).toBe(true);

    expect(await new SettingsStore(stateDir).load()).toEqual(updated);
    expect(await modeOf(stateDir)).toBe(0o700);
    expect(await modeOf(join(stateDir, SETTINGS_FILE))).toBe(0o600);
  });

  it('merges a second patch with the first', async () => {
    const store = new SettingsStore(stateDir);
    await store.update({ dns: false });
    const settings = await store.update({ trust: { fips: true } });
    expect(settings.dns).toBe(false);
    expect(settings.trust.fips).toBe(true);
  });

  it('rejects a corrupt file with CONFIG_INVALID', async () => {
    await mkdir(stateDir, { recursive: true });
    await writeFile(join(stateDir, SETTINGS_FILE), '{not json');
    const error = await new SettingsStore(stateDir).load().catch((caught: unknown) => caught);
    expect(AcvpnError.is(error)).toBe(true);
    expect((error as AcvpnError).code).toBe('CONFIG_INVALID');
  });

  it('rejects an unknown setting in the file', async () => {
    await mkdir(stateDir, { recursive: true });
    await writeFile(join(stateDir, SETTINGS_FILE), '{"colour":"blue"}');
    await expect(new SettingsStore(stateDir).load()).rejects.toThrow(/invalid.*colour/);
  });
});

describe('EntriesStore', () => {
  it('creates, lists, replaces and deletes entries', async () => {
    const store = new EntriesStore(stateDir);
    expect(await store.list()).toEqual([]);
    await store.create({ name: 'work', url: 'https://vpn.example.test/', user: 'alice' });
    await store.create({ name: 'lab', url: 'https://lab.example.test/', group: 'staff' });
    await store.create({ name: 'work', url: 'https://vpn2.example.test/', user: 'bob' });

    const entries = await new EntriesStore(stateDir).list();
    expect(entries).toEqual([
      { name: 'lab', url: 'https://lab.example.test/', group: 'staff' },
      { name: 'work', url: 'https://vpn2.example.test/', user: 'bob' },
    ]);
    expect(await modeOf(join(stateDir, ENTRIES_FILE))).toBe(0o600);

    expect(await store.delete('lab')).toEqual([{ name: 'work', url: 'https://vpn2.example.test/', user: 'bob' }]);
    await expect(store.delete('lab')).rejects.toThrow(/no saved entry is named "lab"/);
  });

  it('stores no password', async () => {
    const store = new EntriesStore(stateDir);
    await store.create({ name: 'work', url: 'https://vpn.example.test/', user: 'alice' });
    const text = await readFile(join(stateDir, ENTRIES_FILE), 'utf8');
    expect(text).not.toMatch(/password/i);
  });

  it('finds an entry by name', async () => {
    const store = new EntriesStore(stateDir);
    await store.create({ name: 'work', url: 'https://vpn.example.test/' });
    expect(await store.find('work')).toEqual({ name: 'work', url: 'https://vpn.example.test/' });
    expect(await store.find('home')).toBeUndefined();
  });
});
