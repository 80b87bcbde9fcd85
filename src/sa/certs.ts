/**
 * X.509 certificates for IKE authentication: loading, the facts an
 * authenticator needs (CertificateInfo), identity matching (RFC 4945),
 * CERTREQ hashes (RFC 7296 3.7) and, re-exported from cert-chain.ts, path
 * validation. node:crypto's X509Certificate does the signature and key work;
 * the strict DER reader in cert-der.ts/cert-x509.ts supplies the raw DER that
 * X509Certificate does not expose.
 */
import { createHash, createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { CoatiError } from '../errors.js';
import { ipToBytes } from '../util/ip.js';
import { CERT_MALFORMED, children, malformed, TAG } from './cert-der.js';
import { nameToText } from './cert-name.js';
import { type KeyUsage, parseCertificateDer, type SubjectAltNames } from './cert-x509.js';
import { dnIdentity, type Identity } from './identity.js';

export { type ChainResult, type ValidateChainOptions, validateChain } from './cert-chain.js';
export type { KeyUsage, SubjectAltNames } from './cert-x509.js';

export type CertKeyType = 'rsa' | 'rsa-pss' | 'ec' | 'ed25519' | 'ed448';

export interface CertificateInfo {
  der: Buffer;
  /** node:crypto's view, for signature verification of certificates it issued. */
  x509: X509Certificate;
  subjectDer: Buffer;
  issuerDer: Buffer;
  /** RFC 4514-style, for logs only. */
  subjectText: string;
  issuerText: string;
  serialHex: string;
  version: 1 | 2 | 3;
  spkiDer: Buffer;
  /** SHA-1 of the SubjectPublicKeyInfo DER: the CERTREQ / Hash-and-URL key hash. */
  spkiSha1: Buffer;
  publicKey: KeyObject;
  keyType: CertKeyType;
  /** Named curve for 'ec' keys, e.g. 'prime256v1'. */
  curve?: string;
  /** Milliseconds since the epoch. */
  notBefore: number;
  notAfter: number;
  /** basicConstraints cA. */
  isCa: boolean;
  pathLen?: number;
  keyUsage?: KeyUsage;
  /** extKeyUsage purpose OIDs when present; not enforced (RFC 4945 5.1.3.12). */
  extKeyUsage?: string[];
  san: SubjectAltNames;
  selfIssued: boolean;
  /** Critical extensions we do not process; validateChain refuses such certificates. */
  unknownCritical: string[];
}

const KEY_TYPES: ReadonlySet<string> = new Set(['rsa', 'rsa-pss', 'ec', 'ed25519', 'ed448']);

/** Parses one DER certificate. Throws CoatiError CERT_MALFORMED for anything unusable. */
export function parseCertificate(der: Buffer): CertificateInfo {
  const p = parseCertificateDer(der);
  let x509: X509Certificate;
  let publicKey: KeyObject;
  try {
    x509 = new X509Certificate(der);
    publicKey = x509.publicKey;
  } catch (cause) {
    throw new CoatiError(CERT_MALFORMED, `malformed certificate: rejected by OpenSSL (${String(cause)})`, { cause });
  }
  const keyType = publicKey.asymmetricKeyType;
  if (!keyType || !KEY_TYPES.has(keyType)) {
    throw new CoatiError(CERT_MALFORMED, `certificate has an unsupported key type ${String(keyType)}`);
  }
  // OpenSSL's own reading of the extensions must agree with ours on what matters most: whether this
  // certificate may issue others (X509_check_ca, which also says no when OpenSSL finds an extension invalid)
  const mayIssue = (p.basicConstraints?.ca ?? false) && (!p.keyUsage || p.keyUsage.keyCertSign);
  if (p.version === 3 && x509.ca !== mayIssue) {
    throw new CoatiError(
      CERT_MALFORMED,
      `malformed certificate: OpenSSL ${x509.ca ? 'accepts' : 'refuses'} it as a CA, the DER reader does not agree`,
    );
  }
  const curve = keyType === 'ec' ? publicKey.asymmetricKeyDetails?.namedCurve : undefined;
  const info: CertificateInfo = {
    der: Buffer.from(der),
    x509,
    subjectDer: Buffer.from(p.subjectDer),
    issuerDer: Buffer.from(p.issuerDer),
    subjectText: nameToText(p.subjectDer, 'subject'),
    issuerText: nameToText(p.issuerDer, 'issuer'),
    serialHex: p.serialHex,
    version: p.version,
    spkiDer: Buffer.from(p.spkiDer),
    spkiSha1: createHash('sha1').update(p.spkiDer).digest(),
    publicKey,
    keyType: keyType as CertKeyType,
    notBefore: p.notBefore,
    notAfter: p.notAfter,
    isCa: p.basicConstraints?.ca ?? false,
    san: p.san,
    selfIssued: p.subjectDer.equals(p.issuerDer),
    unknownCritical: p.unknownCritical,
  };
  if (curve) info.curve = curve;
  if (p.basicConstraints?.pathLen !== undefined) info.pathLen = p.basicConstraints.pathLen;
  if (p.keyUsage) info.keyUsage = p.keyUsage;
  if (p.extKeyUsage) info.extKeyUsage = p.extKeyUsage;
  return info;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g;

function strictBase64(text: string, what: string): Buffer {
  const clean = text.replace(/\s+/g, '');
  if (clean.length === 0 || clean.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(clean)) {
    throw new CoatiError(CERT_MALFORMED, `${what}: invalid base64`);
  }
  return Buffer.from(clean, 'base64');
}

/**
 * The DER certificates in a PEM bundle (every CERTIFICATE block; other blocks
 * are ignored) or in DER (one certificate, or several concatenated). Only the
 * outer framing is checked here; parseCertificate checks the rest.
 */
export function loadCertificates(pemOrDer: Buffer | string): Buffer[] {
  const asText = typeof pemOrDer === 'string' ? pemOrDer : pemOrDer.toString('latin1');
  if (asText.includes('-----BEGIN')) {
    const out: Buffer[] = [];
    for (const m of asText.matchAll(PEM_CERT)) {
      const der = strictBase64(m[1] ?? '', `PEM certificate ${out.length + 1}`);
      out.push(...splitDer(der));
    }
    if (out.length === 0) throw new CoatiError(CERT_MALFORMED, 'PEM input holds no CERTIFICATE block');
    return out;
  }
  if (typeof pemOrDer === 'string') throw new CoatiError(CERT_MALFORMED, 'text input is not PEM');
  return splitDer(pemOrDer);
}

function splitDer(buf: Buffer): Buffer[] {
  if (buf.length === 0) throw malformed('empty input');
  return children(buf, 'certificate file').map((t) => {
    if (t.tag !== TAG.SEQUENCE) throw malformed('input is not a DER SEQUENCE');
    return Buffer.from(t.raw);
  });
}

/** Loads a private key (PEM: PKCS#8, encrypted PKCS#8, PKCS#1, SEC1; or DER PKCS#8). */
export function loadPrivateKey(pem: Buffer | string, passphrase?: string): KeyObject {
  const text = typeof pem === 'string' ? pem : pem.toString('latin1');
  const isPem = text.includes('-----BEGIN');
  if (isPem && passphrase === undefined && /BEGIN ENCRYPTED PRIVATE KEY|Proc-Type: 4,ENCRYPTED/.test(text)) {
    throw new CoatiError('KEY_PASSPHRASE', 'cannot load private key: it is encrypted and no passphrase was given');
  }
  try {
    return isPem
      ? createPrivateKey({ key: pem, format: 'pem', ...(passphrase !== undefined ? { passphrase } : {}) })
      : createPrivateKey({
          key: typeof pem === 'string' ? Buffer.from(pem, 'latin1') : pem,
          format: 'der',
          type: 'pkcs8',
          ...(passphrase !== undefined ? { passphrase } : {}),
        });
  } catch (cause) {
    const msg = String((cause as Error)?.message ?? cause);
    if (/passphrase|decrypt|bad decrypt/i.test(msg)) {
      throw new CoatiError('KEY_PASSPHRASE', `cannot load private key: ${msg}`, { cause });
    }
    // About 1 wrong passphrase in 256 decrypts to garbage whose CBC padding looks valid: OpenSSL
    // then fails decoding it ('unsupported'), not with 'bad decrypt'.
    if (isPem && passphrase !== undefined && /BEGIN ENCRYPTED PRIVATE KEY|Proc-Type: 4,ENCRYPTED/.test(text)) {
      throw new CoatiError(
        'KEY_PASSPHRASE',
        `cannot load private key: wrong passphrase, or the encrypted key is corrupt (${msg})`,
        { cause },
      );
    }
    throw new CoatiError('KEY_MALFORMED', `cannot load private key: ${msg}`, { cause });
  }
}

/** The DN identity of a certificate's subject (the default local_id for certificate auth). */
export function certIdentity(cert: CertificateInfo): Identity {
  return dnIdentity(cert.subjectDer);
}

/**
 * Whether an IKE identity is bound to a certificate (RFC 4945 3.1): DN by
 * byte-equal subject (or a directoryName subjectAltName); FQDN, email and IP
 * only through subjectAltName entries, names compared case-insensitively, no
 * wildcards and no fallback to the subject CN. KEY_ID never matches.
 */
export function identityMatchesCert(id: Identity, cert: CertificateInfo): boolean {
  switch (id.kind) {
    case 'dn':
      return cert.subjectDer.equals(id.data) || cert.san.dirNames.some((d) => d.equals(id.data));
    case 'fqdn': {
      const want = stripDot(id.data.toString('latin1')).toLowerCase();
      return want.length > 0 && cert.san.dns.some((d) => stripDot(d).toLowerCase() === want);
    }
    case 'email': {
      const want = id.data.toString('latin1').toLowerCase();
      return want.length > 0 && cert.san.email.some((e) => e.toLowerCase() === want);
    }
    case 'ipv4':
    case 'ipv6':
      return cert.san.ip.some((ip) => ipToBytes(ip).equals(id.data));
    case 'keyid':
      return false;
  }
}

const stripDot = (s: string) => (s.endsWith('.') ? s.slice(0, -1) : s);

/** CERTREQ Certification Authority data: the concatenated SHA-1 SPKI hashes of trusted CAs. */
export function certreqHashes(cas: readonly CertificateInfo[]): Buffer {
  return Buffer.concat(cas.map((c) => c.spkiSha1));
}

/**
 * The CAs named by a peer's CERTREQ data, in the peer's order. Data that is
 * not a multiple of 20 bytes is malformed (CERT_MALFORMED); unknown hashes
 * are skipped (RFC 7296 3.7 says to ignore them).
 */
export function selectCaByCertreq(hashes: Buffer, cas: readonly CertificateInfo[]): CertificateInfo[] {
  if (hashes.length % 20 !== 0) {
    throw new CoatiError(CERT_MALFORMED, `CERTREQ data of ${hashes.length} bytes is not a list of SHA-1 hashes`);
  }
  const out: CertificateInfo[] = [];
  for (let off = 0; off < hashes.length; off += 20) {
    const h = hashes.subarray(off, off + 20);
    const ca = cas.find((c) => c.spkiSha1.equals(h));
    if (ca && !out.includes(ca)) out.push(ca);
  }
  return out;
}
