// Reads a client identity (certificate, chain and private key) from a PKCS#12 file.
//
// Node can use a PKCS#12 file in a TLS context (`pfx`) but has no API that returns its contents,
// and its OpenSSL 3 build without the legacy provider rejects files encrypted with RC2-40 (what
// `openssl pkcs12 -legacy` and older Windows exports write). So the work is split:
//   1. Node (OpenSSL) opens the file in a throwaway secure context. It verifies the MAC, so it
//      decides "wrong password" for every file that has a MAC, and it distinguishes modern
//      files from legacy ones.
//   2. node-forge decrypts and decodes the bags of both kinds.
//   3. node:crypto converts the key to PKCS#8 PEM. forge returns null for EC keys and for
//      ECDSA-signed certificates, so those come from its raw ASN.1 instead.
// The leaf is the certificate whose public key matches the private key; the others form the chain.

import { createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import forge from 'node-forge';
import { AcvpnError } from '../core/errors.js';
import { registerSecret } from '../core/redact.js';

export interface Pkcs12Contents {
  /** The leaf certificate, DER, byte for byte as stored in the file. */
  certificateDer: Buffer;
  /** The other certificates of the file (intermediates, root), DER, in file order. */
  chainDer: Buffer[];
  /** Unencrypted PKCS#8 PEM. */
  privateKeyPem: string;
  /**
   * True when Node's OpenSSL reads the file as it is (modern PBES2/AES encryption). False for
   * legacy RC2 files and for files without a MAC, which only node-forge reads.
   */
  openSslReadable: boolean;
}

type NodeProbe = { result: 'readable' } | { result: 'wrong-password' } | { result: 'rejected'; reason: string; unsupported: boolean };

/**
 * Decodes a PKCS#12 file. `source` names the file in messages. Throws AcvpnError USAGE when the
 * password is wrong and CONFIG_INVALID when the file is damaged or contains no usable identity.
 */
export function loadPkcs12(data: Buffer, password: string, source = 'the PKCS#12 file'): Pkcs12Contents {
  registerSecret(password);

  const probe = probeWithNode(data, password);
  if (probe.result === 'wrong-password') throw wrongPassword(source);

  const bags = decodeWithForge(data, password, source, probe);
  const contents = assembleIdentity(bags, source);
  return { ...contents, openSslReadable: probe.result === 'readable' };
}

// ---------------------------------------------------------------------------------------------
// Step 1: Node's OpenSSL

function probeWithNode(data: Buffer, password: string): NodeProbe {
  try {
    createSecureContext({ pfx: data, passphrase: password });
    return { result: 'readable' };
  } catch (error) {
    const nodeError = error as NodeJS.ErrnoException;
    const reason = nodeError.message ?? String(error);
    // OpenSSL 3.0 (Node 20) reports a failed MAC check as "mac verify failure" with no code.
    if (/mac verify failure/i.test(reason)) return { result: 'wrong-password' };
    return { result: 'rejected', reason, unsupported: nodeError.code === 'ERR_CRYPTO_UNSUPPORTED_OPERATION' };
  }
}

// ---------------------------------------------------------------------------------------------
// Step 2: node-forge

interface DecodedBags {
  certificatesDer: Buffer[];
  privateKeys: KeyObject[];
}

function decodeWithForge(data: Buffer, password: string, source: string, probe: NodeProbe): DecodedBags {
  let pfx: forge.pkcs12.Pkcs12Pfx;
  try {
    const asn1 = forge.asn1.fromDer(forge.util.createBuffer(data.toString('binary')));
    let forgePassword = password;
    // forge derives PBES2 keys from the password's char codes as bytes, where OpenSSL uses UTF-8,
    // but derives MAC and RC2/3DES keys from UCS-2, as OpenSSL does. Both agree for ASCII. For a
    // non-ASCII password on a file Node read (so the MAC is already verified), drop the MAC and
    // give forge the UTF-8 bytes.
    // NOTE: a modern file that mixes PBES2 with RC2/3DES bags and has a non-ASCII password still
    // fails to decrypt here.
    if (probe.result === 'readable' && /[^\x00-\x7f]/.test(password)) {
      (asn1.value as forge.asn1.Asn1[]).splice(2);
      forgePassword = forge.util.encodeUtf8(password);
    }
    // Non-strict: some exporters write BER (indefinite lengths) inside the SafeContents.
    pfx = forge.pkcs12.pkcs12FromAsn1(asn1, false, forgePassword);
  } catch (error) {
    throw classifyForgeError(error, source, probe);
  }

  const certificatesDer: Buffer[] = [];
  const privateKeys: KeyObject[] = [];
  try {
    for (const safeContents of pfx.safeContents) {
      for (const bag of safeContents.safeBags) {
        if (bag.type === forge.pki.oids.certBag) certificatesDer.push(certificateDerFromBag(bag));
        if (bag.type === forge.pki.oids.keyBag || bag.type === forge.pki.oids.pkcs8ShroudedKeyBag) privateKeys.push(privateKeyFromBag(bag));
      }
    }
  } catch (error) {
    throw damaged(source, error instanceof Error ? error.message : String(error), error);
  }
  return { certificatesDer, privateKeys };
}

function classifyForgeError(error: unknown, source: string, probe: NodeProbe): AcvpnError {
  const reason = error instanceof Error ? error.message : String(error);
  // forge's wording for a failed MAC check or a failed decryption (files without a MAC).
  if (/MAC could not be verified|wrong password|Failed to decrypt/i.test(reason)) {
    if (probe.result === 'readable') {
      // Node verified the MAC with this password, so the password is right.
      return damaged(source, `OpenSSL accepted the password but node-forge could not decrypt the contents: ${reason}`, error);
    }
    return wrongPassword(source);
  }
  const nodeReason = probe.result === 'rejected' && !probe.unsupported ? `OpenSSL: ${probe.reason}; ` : '';
  return damaged(source, `${nodeReason}node-forge: ${reason}`, error);
}

/** DER of a certificate bag, rebuilt from the original bytes forge keeps. */
function certificateDerFromBag(bag: forge.pkcs12.Bag): Buffer {
  const raw = (bag as { asn1?: forge.asn1.Asn1 }).asn1;
  if (bag.cert === undefined || bag.cert === null) {
    if (raw === undefined) throw new Error('a certificate bag contains no certificate');
    return derOf(raw);
  }

  // forge parsed the certificate and dropped its bytes, but keeps the TBSCertificate as decoded.
  // RFC 5280 requires the outer signatureAlgorithm to equal the TBSCertificate's `signature`
  // field, so copying that field rebuilds the original encoding instead of forge's re-encoding
  // of the algorithm parameters.
  const tbs = (bag.cert as unknown as { tbsCertificate: forge.asn1.Asn1 }).tbsCertificate;
  const fields = tbs.value as forge.asn1.Asn1[];
  const hasVersion = fields[0]?.tagClass === forge.asn1.Class.CONTEXT_SPECIFIC;
  const signatureAlgorithm = fields[hasVersion ? 2 : 1];
  if (signatureAlgorithm === undefined) throw new Error('a certificate has a truncated TBSCertificate');
  const certificate = forge.asn1.create(forge.asn1.Class.UNIVERSAL, forge.asn1.Type.SEQUENCE, true, [
    tbs,
    signatureAlgorithm,
    forge.asn1.create(forge.asn1.Class.UNIVERSAL, forge.asn1.Type.BITSTRING, false, `\u0000${bag.cert.signature as string}`),
  ]);
  return derOf(certificate);
}

function privateKeyFromBag(bag: forge.pkcs12.Bag): KeyObject {
  const raw = (bag as { asn1?: forge.asn1.Asn1 }).asn1;
  if (bag.key !== undefined && bag.key !== null) {
    // Only RSA keys come back parsed; forge returns null (and the raw PrivateKeyInfo) for others.
    const pkcs8 = forge.pki.wrapRsaPrivateKey(forge.pki.privateKeyToAsn1(bag.key));
    return createPrivateKey({ key: derOf(pkcs8), format: 'der', type: 'pkcs8' });
  }
  if (raw === undefined) throw new Error('a key bag contains no key');
  return createPrivateKey({ key: derOf(raw), format: 'der', type: 'pkcs8' });
}

function derOf(asn1: forge.asn1.Asn1): Buffer {
  return Buffer.from(forge.asn1.toDer(asn1).getBytes(), 'binary');
}

// ---------------------------------------------------------------------------------------------
// Step 3: pick the leaf

function assembleIdentity(bags: DecodedBags, source: string): Omit<Pkcs12Contents, 'openSslReadable'> {
  if (bags.privateKeys.length === 0) {
    throw new AcvpnError('CONFIG_INVALID', `${source} contains no private key; export the certificate together with its key`, { source });
  }
  if (bags.privateKeys.length > 1) {
    throw new AcvpnError(
      'CONFIG_INVALID',
      `${source} contains ${bags.privateKeys.length} private keys; export one certificate with its key per file`,
      { source },
    );
  }
  const privateKey = bags.privateKeys[0] as KeyObject;

  const certificates = bags.certificatesDer.map((der) => {
    try {
      return { der, x509: new X509Certificate(der) };
    } catch (error) {
      throw damaged(source, `a certificate in it does not parse (${error instanceof Error ? error.message : String(error)})`, error);
    }
  });
  const publicKeyDer = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  const leafIndex = certificates.findIndex((certificate) =>
    certificate.x509.publicKey.export({ type: 'spki', format: 'der' }).equals(publicKeyDer),
  );
  if (leafIndex < 0) {
    throw new AcvpnError(
      'CONFIG_INVALID',
      `${source} contains a private key but no certificate for it (${certificates.length} other certificates); export the certificate together with its key`,
      { source },
    );
  }

  return {
    certificateDer: (certificates[leafIndex] as { der: Buffer }).der,
    chainDer: certificates.filter((_, index) => index !== leafIndex).map((certificate) => certificate.der),
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
  };
}

// ---------------------------------------------------------------------------------------------
// Errors

function wrongPassword(source: string): AcvpnError {
  return new AcvpnError('USAGE', `the PKCS#12 password is wrong for ${source}; give the password the file was exported with`, { source });
}

function damaged(source: string, reason: string, cause: unknown): AcvpnError {
  return new AcvpnError('CONFIG_INVALID', `${source} is not a readable PKCS#12 file (${reason}); export it again`, { source }, { cause });
}
