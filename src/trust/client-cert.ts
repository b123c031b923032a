// Client certificates for certificate authentication: a store the user imports PKCS#12 files
// into, the choice of which certificate to present to a headend, and the TLS options for it.
//
// The store sits next to the server-certificate store, in <state-dir>/client-certificates (mode
// 0700). Each entry is two files at mode 0600, named by the alias the user chose:
//   ALIAS.crt.pem  the certificate, then the chain from the PKCS#12 file, PEM
//   ALIAS.key.pem  the private key, PKCS#8 PEM
// NOTE: the private key is stored unencrypted; only the file mode (and the directory's 0700)
// protects it at rest. Anyone who can read the state directory as root or as its owner can use
// the certificate.

import { X509Certificate } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AcvpnError } from '../core/errors.js';
import { parseCertificate, type CertificateDetails } from './chain.js';
import { loadPkcs12 } from './pkcs12.js';

// ---------------------------------------------------------------------------------------------
// Types and constants

export const OID_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
/** anyExtendedKeyUsage (RFC 5280 §4.2.1.12) allows every purpose, client authentication included. */
export const OID_ANY_EXTENDED_KEY_USAGE = '2.5.29.37.0';

/** The fields of a candidate that selection reads; StoredClientCertificate has all of them. */
export interface SelectableClientCertificate {
  alias: string;
  details: Pick<CertificateDetails, 'issuer' | 'validFrom' | 'validTo'>;
  /** EKU OIDs, or undefined when the certificate has no extendedKeyUsage extension. */
  extendedKeyUsage: string[] | undefined;
  /** The other certificates of the entry (intermediates, root). */
  chain: Array<Pick<CertificateDetails, 'subject' | 'issuer'>>;
}

export interface StoredClientCertificate extends SelectableClientCertificate {
  /** Lower-case hex SHA-256 fingerprint of the certificate's DER. */
  id: string;
  details: CertificateDetails;
  chain: CertificateDetails[];
  certificatePath: string;
  keyPath: string;
}

/** A certificate with its private key, ready for tlsClientOptions. */
export interface ClientIdentity {
  /** The store alias, or the file name for a PKCS#12 file used directly. */
  alias: string;
  details: CertificateDetails;
  chain: CertificateDetails[];
  extendedKeyUsage: string[] | undefined;
  privateKeyPem: string;
}

export type ClientCertificateProblem = 'no-client-auth-eku' | 'expired' | 'not-yet-valid';

const ALIAS_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const CERTIFICATE_SUFFIX = '.crt.pem';
const KEY_SUFFIX = '.key.pem';
/** Shortest id prefix accepted by show, load and delete, as in the server store. */
const MIN_ID_PREFIX = 8;
const DIRECTORY_MODE = 0o700;
const FILE_MODE = 0o600;
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g;

// ---------------------------------------------------------------------------------------------
// Selection (pure)

/** Lists why a certificate cannot authenticate a client at `now`; empty when it can. */
export function checkClientCertificate(candidate: SelectableClientCertificate, now: Date): ClientCertificateProblem[] {
  const problems: ClientCertificateProblem[] = [];
  const usages = candidate.extendedKeyUsage;
  if (usages !== undefined && !usages.includes(OID_CLIENT_AUTH) && !usages.includes(OID_ANY_EXTENDED_KEY_USAGE)) {
    problems.push('no-client-auth-eku');
  }
  if (now.getTime() > candidate.details.validTo.getTime()) problems.push('expired');
  if (now.getTime() < candidate.details.validFrom.getTime()) problems.push('not-yet-valid');
  return problems;
}

/**
 * Chooses the certificate to present. Only certificates without problems (checkClientCertificate)
 * qualify. A certificate issued under a CA in `acceptableIssuers` comes first. That list is the
 * headend's acceptable CAs, as distinguished names in the form CertificateDetails uses. Ties go
 * to the certificate valid longest, then to the first alias in alphabetical order. Returns
 * undefined when none qualifies.
 */
export function selectClientCertificate<T extends SelectableClientCertificate>(
  candidates: readonly T[],
  acceptableIssuers?: readonly string[],
  now: Date = new Date(),
): T | undefined {
  const acceptable = new Set((acceptableIssuers ?? []).map(normalizeName));
  const issuedUnderAcceptableCa = (candidate: T): boolean =>
    [candidate.details.issuer, ...candidate.chain.flatMap((certificate) => [certificate.subject, certificate.issuer])].some((name) =>
      acceptable.has(normalizeName(name)),
    );

  const ranked = candidates
    .filter((candidate) => checkClientCertificate(candidate, now).length === 0)
    .map((candidate) => ({ candidate, preferred: issuedUnderAcceptableCa(candidate) }))
    .sort(
      (a, b) =>
        Number(b.preferred) - Number(a.preferred) ||
        b.candidate.details.validTo.getTime() - a.candidate.details.validTo.getTime() ||
        a.candidate.alias.localeCompare(b.candidate.alias),
    );
  return ranked[0]?.candidate;
}

/** Returns the `cert` (certificate then chain, PEM) and `key` options for `tls.connect`. */
export function tlsClientOptions(selected: ClientIdentity): { cert: string; key: string } {
  return {
    cert: [selected.details, ...selected.chain].map((certificate) => toPem(certificate.der)).join(''),
    key: selected.privateKeyPem,
  };
}

/** Compares distinguished names case-insensitively and ignoring spacing around separators. */
function normalizeName(name: string): string {
  return name
    .split(/\s*[,\n]\s*/)
    .map((part) => part.trim().toLowerCase())
    .filter((part) => part !== '')
    .join(',');
}

// ---------------------------------------------------------------------------------------------
// PEM helpers

function toPem(der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`;
}

function certificatesFromPem(text: string): Buffer[] {
  return [...text.matchAll(PEM_CERTIFICATE)].map((block) => Buffer.from((block[1] ?? '').replace(/\s+/g, ''), 'base64'));
}

function describeClientCertificate(certificateDer: Buffer, chainDer: Buffer[]): Omit<StoredClientCertificate, 'alias' | 'certificatePath' | 'keyPath'> {
  const parsed = parseCertificate(certificateDer);
  return {
    id: parsed.details.fingerprintSha256.replace(/:/g, '').toLowerCase(),
    details: parsed.details,
    extendedKeyUsage: parsed.extendedKeyUsage,
    chain: chainDer.map((der) => parseCertificate(der).details),
  };
}

// ---------------------------------------------------------------------------------------------
// The store (file-system driver)

export class ClientCertificateStore {
  constructor(readonly directory: string) {}

  /** The store directory inside a state directory, next to the server store's "certificates". */
  static inStateDirectory(stateDir: string): ClientCertificateStore {
    return new ClientCertificateStore(join(stateDir, 'client-certificates'));
  }

  /**
   * Imports the identity in a PKCS#12 file under `alias`. Importing the same certificate under the
   * same alias again changes nothing, and an alias that names another certificate is rejected.
   */
  async importPkcs12(data: Buffer, password: string, alias: string, source = 'the PKCS#12 file'): Promise<StoredClientCertificate> {
    checkAlias(alias);
    const contents = loadPkcs12(data, password, source);
    const described = describeClientCertificate(contents.certificateDer, contents.chainDer);

    const existing = await this.readEntry(alias);
    if (existing !== undefined) {
      if (existing.id === described.id) return existing;
      throw new AcvpnError(
        'USAGE',
        `the alias ${alias} already names certificate ${existing.id.slice(0, 16)} (${existing.details.subject}); delete it first (acvpn certs delete ${alias}) or choose another alias`,
        { alias },
      );
    }

    await this.ensureDirectory();
    const certificatePath = join(this.directory, `${alias}${CERTIFICATE_SUFFIX}`);
    const keyPath = join(this.directory, `${alias}${KEY_SUFFIX}`);
    // The key goes first: list() only shows entries whose certificate file exists, so an import
    // that dies half way leaves no entry that cannot be loaded.
    await writeFileAtomically(keyPath, contents.privateKeyPem);
    await writeFileAtomically(certificatePath, [contents.certificateDer, ...contents.chainDer].map(toPem).join(''));
    return { alias, certificatePath, keyPath, ...described };
  }

  /** Lists the stored client certificates, sorted by alias. */
  async list(): Promise<StoredClientCertificate[]> {
    let names: string[];
    try {
      names = await readdir(this.directory);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }

    const stored: StoredClientCertificate[] = [];
    for (const name of names.filter((candidate) => candidate.endsWith(CERTIFICATE_SUFFIX)).sort()) {
      const alias = name.slice(0, -CERTIFICATE_SUFFIX.length);
      if (!ALIAS_PATTERN.test(alias)) continue;
      const entry = await this.readEntry(alias);
      if (entry !== undefined) stored.push(entry);
    }
    return stored;
  }

  /** Finds an entry by alias, or by fingerprint or a prefix of at least 8 hex digits. */
  async show(reference: string): Promise<StoredClientCertificate> {
    const found = await this.find(reference);
    if (found === undefined) {
      throw new AcvpnError(
        'USAGE',
        `no client certificate with alias or id ${reference} in ${this.directory}; list the store (acvpn certs list) to see them`,
        { reference },
      );
    }
    return found;
  }

  /** Like show, and returns undefined instead of throwing when nothing matches. */
  async find(reference: string): Promise<StoredClientCertificate | undefined> {
    const byAlias = ALIAS_PATTERN.test(reference) ? await this.readEntry(reference) : undefined;
    if (byAlias !== undefined) return byAlias;

    const wanted = reference.trim().replace(/:/g, '').toLowerCase();
    if (!/^[0-9a-f]+$/.test(wanted) || wanted.length < MIN_ID_PREFIX) return undefined;
    const matches = (await this.list()).filter((entry) => entry.id.startsWith(wanted));
    if (matches.length > 1) {
      throw new AcvpnError('USAGE', `the id ${reference} matches ${matches.length} client certificates; give more digits or the alias`, { reference });
    }
    return matches[0];
  }

  /** Reads an entry with its private key, for tlsClientOptions. */
  async load(reference: string): Promise<ClientIdentity> {
    const entry = await this.show(reference);
    const keyMode = (await stat(entry.keyPath)).mode & 0o777;
    if ((keyMode & 0o077) !== 0) {
      throw new AcvpnError(
        'CONFIG_INVALID',
        `the private key file ${entry.keyPath} has mode ${keyMode.toString(8).padStart(4, '0')}, readable by other users; restrict it with chmod 600 ${entry.keyPath}`,
        { path: entry.keyPath },
      );
    }
    const privateKeyPem = await readFile(entry.keyPath, 'utf8');
    return { alias: entry.alias, details: entry.details, chain: entry.chain, extendedKeyUsage: entry.extendedKeyUsage, privateKeyPem };
  }

  /** Removes the entry that show(reference) finds and returns what it removed. */
  async delete(reference: string): Promise<StoredClientCertificate> {
    const entry = await this.show(reference);
    // Certificate first, so a half-done delete leaves no listed entry without its key.
    await rm(entry.certificatePath, { force: true });
    await rm(entry.keyPath, { force: true });
    return entry;
  }

  private async readEntry(alias: string): Promise<StoredClientCertificate | undefined> {
    const certificatePath = join(this.directory, `${alias}${CERTIFICATE_SUFFIX}`);
    const keyPath = join(this.directory, `${alias}${KEY_SUFFIX}`);
    let text: string;
    try {
      text = await readFile(certificatePath, 'latin1');
      await stat(keyPath);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }

    // NOTE: an entry whose certificate no longer parses (edited by hand, disk damage) is skipped,
    // as in the server store, so list() does not report it. Removing its two files deletes it.
    const [certificateDer, ...chainDer] = certificatesFromPem(text);
    if (certificateDer === undefined) return undefined;
    try {
      new X509Certificate(certificateDer);
      return { alias, certificatePath, keyPath, ...describeClientCertificate(certificateDer, chainDer) };
    } catch {
      return undefined;
    }
  }

  private async ensureDirectory(): Promise<void> {
    await mkdir(this.directory, { recursive: true, mode: DIRECTORY_MODE });
    // mkdir leaves an existing directory's mode alone, and its mode is subject to the umask.
    await chmod(this.directory, DIRECTORY_MODE);
  }
}

function checkAlias(alias: string): void {
  if (!ALIAS_PATTERN.test(alias)) {
    throw new AcvpnError(
      'USAGE',
      `invalid alias ${JSON.stringify(alias)}; use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit`,
    );
  }
}

/** Writes then renames, so a reader never sees half a file; the file is 0600 from the start. */
async function writeFileAtomically(path: string, text: string): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, text, { mode: FILE_MODE });
  await chmod(temporary, FILE_MODE);
  await rename(temporary, path);
}

// ---------------------------------------------------------------------------------------------
// Resolving --certificate

/**
 * Resolves a `--certificate` value: a path to a PKCS#12 file (read with `password`, empty when
 * undefined), else an alias or id in `store`.
 */
export async function resolveClientIdentity(
  reference: string,
  options: { store: ClientCertificateStore; password?: string },
): Promise<ClientIdentity> {
  const isFile = await stat(reference).then(
    (info) => info.isFile(),
    () => false,
  );
  if (!isFile) {
    const entry = await options.store.find(reference);
    if (entry === undefined) {
      throw new AcvpnError(
        'USAGE',
        `--certificate ${reference} is neither a PKCS#12 file nor an alias or id in the client certificate store ${options.store.directory}; give a file path or import it with acvpn certs import-client`,
        { reference },
      );
    }
    return options.store.load(entry.alias);
  }

  let data: Buffer;
  try {
    data = await readFile(reference);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new AcvpnError('USAGE', `cannot read the PKCS#12 file ${reference} (${code}); check the path and its permissions`, { reference });
  }
  const contents = loadPkcs12(data, options.password ?? '', reference);
  const described = describeClientCertificate(contents.certificateDer, contents.chainDer);
  return {
    alias: reference,
    details: described.details,
    chain: described.chain,
    extendedKeyUsage: described.extendedKeyUsage,
    privateKeyPem: contents.privateKeyPem,
  };
}
