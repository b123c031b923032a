// The acvpn certificate store: server certificates the user imported after checking them
// ("import and continue" on the Untrusted VPN Server prompt, or the store's import command).
// classifyServerChain trusts a leaf that matches one of them byte for byte.
//
// One PEM file per certificate, named by its SHA-256 fingerprint, in a directory kept at mode
// 0700 with files at 0600. Decoding the input is pure; the class is the thin file-system driver.

import { X509Certificate } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AcvpnError } from '../core/errors.js';
import { describeCertificate, type CertificateDetails } from './chain.js';

export interface StoredCertificate {
  /** Lower-case hex SHA-256 fingerprint of the DER; also the file name without ".pem". */
  id: string;
  path: string;
  details: CertificateDetails;
}

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g;
/** Shortest id prefix accepted by show and delete, so a typo cannot match by accident. */
const MIN_ID_PREFIX = 8;
const DIRECTORY_MODE = 0o700;
const FILE_MODE = 0o600;

/** Decodes exactly one certificate from PEM or DER input; `source` names the input in errors. */
export function decodeCertificateInput(data: Buffer, source: string): Buffer {
  const text = data.toString('latin1');
  const blocks = [...text.matchAll(PEM_BLOCK)];
  if (blocks.length > 1) {
    throw new AcvpnError('USAGE', `${source} contains ${blocks.length} certificates; import the headend's certificate alone`, { source });
  }

  let der: Buffer;
  if (blocks.length === 1) {
    der = Buffer.from((blocks[0]?.[1] ?? '').replace(/\s+/g, ''), 'base64');
  } else if (text.includes('-----BEGIN')) {
    throw new AcvpnError('USAGE', `${source} is PEM but contains no CERTIFICATE block (perhaps a key or a request); import the certificate file`, { source });
  } else {
    der = data;
  }

  try {
    new X509Certificate(der);
  } catch (error) {
    throw new AcvpnError(
      'USAGE',
      `${source} is not an X.509 certificate in PEM or DER form (${error instanceof Error ? error.message : String(error)})`,
      { source },
      { cause: error },
    );
  }
  return der;
}

function toPem(der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`;
}

function idOf(details: CertificateDetails): string {
  return details.fingerprintSha256.replace(/:/g, '').toLowerCase();
}

/** Accepts a full or partial fingerprint, with or without colons, in any case. */
function normalizeId(id: string): string {
  return id.trim().replace(/:/g, '').toLowerCase();
}

export class CertificateStore {
  constructor(readonly directory: string) {}

  /** Stores one certificate (PEM or DER); importing the same certificate again changes nothing. */
  async importCertificate(data: Buffer, source = 'the input'): Promise<StoredCertificate> {
    const der = decodeCertificateInput(data, source);
    const details = describeCertificate(der);
    const id = idOf(details);
    const path = join(this.directory, `${id}.pem`);

    await this.ensureDirectory();
    // Write then rename, so a reader never sees half a file.
    const temporary = `${path}.${process.pid}.tmp`;
    await writeFile(temporary, toPem(der), { mode: FILE_MODE });
    await chmod(temporary, FILE_MODE);
    await rename(temporary, path);
    return { id, path, details };
  }

  /** Lists the stored certificates, sorted by subject. */
  async list(): Promise<StoredCertificate[]> {
    let names: string[];
    try {
      names = await readdir(this.directory);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }

    const stored: StoredCertificate[] = [];
    for (const name of names.filter((candidate) => /^[0-9a-f]{64}\.pem$/.test(candidate)).sort()) {
      const path = join(this.directory, name);
      // NOTE: a file that no longer parses (edited by hand, disk damage) is skipped silently, so
      // a broken store cannot stop connections. The cost is that `list` does not report it.
      try {
        const der = decodeCertificateInput(await readFile(path), path);
        stored.push({ id: name.slice(0, -'.pem'.length), path, details: describeCertificate(der) });
      } catch {
        continue;
      }
    }
    return stored.sort((a, b) => a.details.subject.localeCompare(b.details.subject));
  }

  /** Returns the certificate whose fingerprint is `id` or starts with it (at least 8 hex digits). */
  async show(id: string): Promise<StoredCertificate> {
    const wanted = normalizeId(id);
    if (!/^[0-9a-f]+$/.test(wanted) || wanted.length < MIN_ID_PREFIX) {
      throw new AcvpnError(
        'USAGE',
        `certificate id ${JSON.stringify(id)} is not a SHA-256 fingerprint or a prefix of at least ${MIN_ID_PREFIX} hex digits; ` +
          'list the store to see the ids',
      );
    }

    const matches = (await this.list()).filter((stored) => stored.id.startsWith(wanted));
    if (matches.length === 0) {
      throw new AcvpnError('USAGE', `no certificate with id ${id} in the certificate store ${this.directory}; list the store to see the ids`);
    }
    if (matches.length > 1) {
      throw new AcvpnError('USAGE', `the id ${id} matches ${matches.length} certificates in the store; give more digits`);
    }
    return matches[0] as StoredCertificate;
  }

  /** Removes the certificate that `show(id)` finds and returns what it removed. */
  async delete(id: string): Promise<StoredCertificate> {
    const stored = await this.show(id);
    await rm(stored.path);
    return stored;
  }

  /** Returns the DER of every stored certificate, for classifyServerChain. */
  async loadDer(): Promise<Buffer[]> {
    return (await this.list()).map((stored) => stored.details.der);
  }

  private async ensureDirectory(): Promise<void> {
    await mkdir(this.directory, { recursive: true, mode: DIRECTORY_MODE });
    // mkdir leaves an existing directory's mode alone, and its mode is subject to the umask.
    await chmod(this.directory, DIRECTORY_MODE);
  }
}
