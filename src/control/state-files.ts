// The daemon's persistent state in the state directory: its default settings and the saved
// connection entries. JSON files with mode 0600 in a directory with mode 0700, each written to a
// temporary file and renamed, so a crash never leaves half a file. Entries hold no passwords.

import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AcvpnError } from '../core/errors.js';
import { DEFAULT_TRUST_SETTINGS, type TrustSettings } from '../trust/policy.js';
import { RpcError, invalidParams } from './jsonrpc.js';
import { parseEntryParams, parseSettingsPatch, type EntryParams, type SettingsPatch } from './params.js';

export const SETTINGS_FILE = 'daemon-settings.json';
export const ENTRIES_FILE = 'entries.json';
const MAX_ENTRIES = 256;

export interface DaemonSettings {
  trust: TrustSettings;
  /** Keep reconnecting without a time limit after a network loss. */
  netroam: boolean;
  dtls: boolean;
  /** Change the host's DNS for split DNS. */
  dns: boolean;
}

export type Entry = EntryParams;

export function defaultSettings(): DaemonSettings {
  return { trust: { ...DEFAULT_TRUST_SETTINGS }, netroam: true, dtls: true, dns: true };
}

export function applySettingsPatch(settings: DaemonSettings, patch: SettingsPatch): DaemonSettings {
  return {
    trust: { ...settings.trust, ...patch.trust },
    netroam: patch.netroam ?? settings.netroam,
    dtls: patch.dtls ?? settings.dtls,
    dns: patch.dns ?? settings.dns,
  };
}

export class SettingsStore {
  private readonly path: string;

  constructor(private readonly stateDir: string) {
    this.path = join(stateDir, SETTINGS_FILE);
  }

  async load(): Promise<DaemonSettings> {
    const value = await readJson(this.path);
    if (value === undefined) return defaultSettings();
    try {
      return applySettingsPatch(defaultSettings(), parseSettingsPatch(asObject(value, this.path)));
    } catch (error) {
      throw invalidFile(this.path, error);
    }
  }

  async update(patch: SettingsPatch): Promise<DaemonSettings> {
    const settings = applySettingsPatch(await this.load(), patch);
    await writeJsonPrivate(this.stateDir, this.path, settings);
    return settings;
  }
}

export class EntriesStore {
  private readonly path: string;

  constructor(private readonly stateDir: string) {
    this.path = join(stateDir, ENTRIES_FILE);
  }

  async list(): Promise<Entry[]> {
    const value = await readJson(this.path);
    if (value === undefined) return [];
    try {
      if (!Array.isArray(value)) throw new Error('expected a JSON array of entries');
      return value.map((item) => parseEntryParams(asObject(item, this.path)));
    } catch (error) {
      throw invalidFile(this.path, error);
    }
  }

  async find(name: string): Promise<Entry | undefined> {
    return (await this.list()).find((entry) => entry.name === name);
  }

  /** Adds `entry`, or replaces the entry of the same name. */
  async create(entry: Entry): Promise<Entry[]> {
    const entries = (await this.list()).filter((existing) => existing.name !== entry.name);
    if (entries.length >= MAX_ENTRIES) throw invalidParams(`at most ${MAX_ENTRIES} entries can be saved; delete one first`);
    entries.push(entry);
    await writeJsonPrivate(this.stateDir, this.path, entries);
    return entries;
  }

  /** Deletes the entry named `name`; raises invalid params when there is none. */
  async delete(name: string): Promise<Entry[]> {
    const entries = await this.list();
    const remaining = entries.filter((entry) => entry.name !== name);
    if (remaining.length === entries.length) throw invalidParams(`no saved entry is named ${JSON.stringify(name.slice(0, 64))}`);
    await writeJsonPrivate(this.stateDir, this.path, remaining);
    return remaining;
  }
}

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new AcvpnError('CONFIG_INVALID', `cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'}); check the state directory's permissions`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new AcvpnError('CONFIG_INVALID', `${path} is not valid JSON; fix or delete the file`);
  }
}

async function writeJsonPrivate(directory: string, path: string, value: unknown): Promise<void> {
  await mkdir(directory, { recursive: true, mode: 0o700 });
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600 });
  // The mode given to writeFile is filtered by the umask and ignored for an existing file.
  await chmod(temporary, 0o600);
  await rename(temporary, path);
}

function asObject(value: unknown, path: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`expected a JSON object in ${path}`);
  return value as Record<string, unknown>;
}

function invalidFile(path: string, error: unknown): AcvpnError {
  const reason = error instanceof RpcError || error instanceof Error ? error.message : String(error);
  return new AcvpnError('CONFIG_INVALID', `${path} is invalid: ${reason}; fix or delete the file`);
}
