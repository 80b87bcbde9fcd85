/**
 * Signature-based IKEv2 authentication: RFC 7427 Digital Signature (auth
 * method 14) and the classic methods RSA Digital Signature (1, PKCS#1 v1.5
 * with SHA-1, RFC 7296) and ECDSA 9/10/11 (RFC 4754: raw r || s with the
 * hash matching the curve). Keys are node:crypto KeyObjects.
 *
 * The functions produce and consume the AUTH payload's Authentication Data
 * (everything after Auth Method and RESERVED).
 */
import { type KeyObject, sign, verify } from 'node:crypto';
import { CoatiError } from '../errors.js';
import { type AlgorithmIdentifier, encodeAlgorithmIdentifier, parseAlgorithmIdentifier } from './asn1.js';

export const AuthMethod = {
  RSA_SIGNATURE: 1,
  SHARED_KEY: 2,
  ECDSA_SHA256_P256: 9,
  ECDSA_SHA384_P384: 10,
  ECDSA_SHA512_P521: 11,
  DIGITAL_SIGNATURE: 14,
} as const;

/** RFC 7427 SIGNATURE_HASH_ALGORITHMS values (IKEv2 Hash Algorithms registry). */
export const HashAlgorithm = { SHA1: 1, SHA2_256: 2, SHA2_384: 3, SHA2_512: 4, IDENTITY: 5 } as const;

/** Signature schemes usable with auth method 14. */
export type SignatureScheme =
  | 'rsa-pkcs1-sha256'
  | 'rsa-pkcs1-sha384'
  | 'rsa-pkcs1-sha512'
  | 'rsa-pss-sha256'
  | 'ecdsa-sha256'
  | 'ecdsa-sha384'
  | 'ecdsa-sha512'
  | 'ed25519';

interface SchemeInfo {
  keyType: 'rsa' | 'ec' | 'ed25519';
  hash: 'sha256' | 'sha384' | 'sha512' | null;
  /** SIGNATURE_HASH_ALGORITHMS value the peer must have announced. */
  hashAlgorithm: number;
  oid: string;
}

const OID = {
  sha256: '2.16.840.1.101.3.4.2.1',
  mgf1: '1.2.840.113549.1.1.8',
  rsaPss: '1.2.840.113549.1.1.10',
};

const SCHEMES: Record<SignatureScheme, SchemeInfo> = {
  'rsa-pkcs1-sha256': { keyType: 'rsa', hash: 'sha256', hashAlgorithm: 2, oid: '1.2.840.113549.1.1.11' },
  'rsa-pkcs1-sha384': { keyType: 'rsa', hash: 'sha384', hashAlgorithm: 3, oid: '1.2.840.113549.1.1.12' },
  'rsa-pkcs1-sha512': { keyType: 'rsa', hash: 'sha512', hashAlgorithm: 4, oid: '1.2.840.113549.1.1.13' },
  'rsa-pss-sha256': { keyType: 'rsa', hash: 'sha256', hashAlgorithm: 2, oid: OID.rsaPss },
  'ecdsa-sha256': { keyType: 'ec', hash: 'sha256', hashAlgorithm: 2, oid: '1.2.840.10045.4.3.2' },
  'ecdsa-sha384': { keyType: 'ec', hash: 'sha384', hashAlgorithm: 3, oid: '1.2.840.10045.4.3.3' },
  'ecdsa-sha512': { keyType: 'ec', hash: 'sha512', hashAlgorithm: 4, oid: '1.2.840.10045.4.3.4' },
  ed25519: { keyType: 'ed25519', hash: null, hashAlgorithm: 5, oid: '1.3.101.112' },
};

/** RSASSA-PSS parameters: SHA-256, MGF1 with SHA-256, salt 32 (RFC 8017 / RFC 7427 A.4.3). */
const PSS_SHA256_PARAMS = { hashOid: OID.sha256, mgfHashOid: OID.sha256, saltLength: 32 };

export function schemeHashAlgorithm(scheme: SignatureScheme): number {
  return SCHEMES[scheme].hashAlgorithm;
}

/** The AlgorithmIdentifier DER for a scheme, as carried in method-14 AUTH data. */
export function schemeAlgorithmIdentifier(scheme: SignatureScheme): Buffer {
  const info = SCHEMES[scheme];
  if (scheme === 'rsa-pss-sha256') return encodeAlgorithmIdentifier({ oid: info.oid, pss: PSS_SHA256_PARAMS });
  // PKCS#1 v1.5 identifiers carry explicit NULL parameters; ECDSA and Ed25519 none.
  return encodeAlgorithmIdentifier({ oid: info.oid, nullParams: info.keyType === 'rsa' });
}

function schemeFromAlgorithmIdentifier(id: AlgorithmIdentifier): SignatureScheme | undefined {
  for (const [name, info] of Object.entries(SCHEMES) as [SignatureScheme, SchemeInfo][]) {
    if (info.oid !== id.oid) continue;
    if (name === 'rsa-pss-sha256') {
      const p = id.pss;
      if (!p || p.hashOid !== OID.sha256 || p.mgfHashOid !== OID.sha256) return undefined;
      return name;
    }
    return name;
  }
  return undefined;
}

function keyKind(key: KeyObject): string {
  const t = key.asymmetricKeyType;
  return t === 'rsa-pss' ? 'rsa' : (t ?? 'unknown');
}

function keyMatches(key: KeyObject, scheme: SchemeInfo): boolean {
  return keyKind(key) === scheme.keyType;
}

function rawSign(scheme: SignatureScheme, key: KeyObject, data: Buffer): Buffer {
  const info = SCHEMES[scheme];
  if (scheme === 'rsa-pss-sha256') {
    return sign('sha256', data, { key, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: 32 });
  }
  return sign(info.hash, data, { key, dsaEncoding: 'der' });
}

function rawVerify(
  scheme: SignatureScheme,
  key: KeyObject,
  data: Buffer,
  sig: Buffer,
  pssSalt = PSS_SHA256_PARAMS.saltLength,
): boolean {
  const info = SCHEMES[scheme];
  try {
    if (scheme === 'rsa-pss-sha256') {
      return verify('sha256', data, { key, padding: 6, saltLength: pssSalt }, sig);
    }
    return verify(info.hash, data, { key, dsaEncoding: 'der' }, sig);
  } catch {
    return false;
  }
}

const CLASSIC_ECDSA: Record<number, { hash: string; curve: string }> = {
  9: { hash: 'sha256', curve: 'prime256v1' },
  10: { hash: 'sha384', curve: 'secp384r1' },
  11: { hash: 'sha512', curve: 'secp521r1' },
};

/**
 * Produce AUTH data for `method`. Method 14 needs `scheme`; for methods 1
 * and 9-11 the key type (and curve) must match the method.
 */
export function signAuth(args: {
  method: number;
  scheme?: SignatureScheme;
  privateKey: KeyObject;
  octets: Buffer;
}): Buffer {
  const { method, privateKey, octets } = args;
  if (method === AuthMethod.DIGITAL_SIGNATURE) {
    const scheme = args.scheme;
    if (!scheme) throw new CoatiError('AUTH_CONFIG', 'Digital Signature auth needs a signature scheme');
    if (!keyMatches(privateKey, SCHEMES[scheme])) {
      throw new CoatiError('AUTH_CONFIG', `key type ${keyKind(privateKey)} cannot sign with ${scheme}`);
    }
    const algId = schemeAlgorithmIdentifier(scheme);
    return Buffer.concat([Buffer.from([algId.length]), algId, rawSign(scheme, privateKey, octets)]);
  }
  if (method === AuthMethod.RSA_SIGNATURE) {
    if (keyKind(privateKey) !== 'rsa') throw new CoatiError('AUTH_CONFIG', 'RSA signature auth needs an RSA key');
    return sign('sha1', octets, privateKey);
  }
  const ec = CLASSIC_ECDSA[method];
  if (ec) {
    if (privateKey.asymmetricKeyDetails?.namedCurve !== ec.curve) {
      throw new CoatiError('AUTH_CONFIG', `auth method ${method} needs a ${ec.curve} key`);
    }
    return sign(ec.hash, octets, { key: privateKey, dsaEncoding: 'ieee-p1363' });
  }
  throw new CoatiError('AUTH_CONFIG', `auth method ${method} is not a signature method`);
}

export interface VerifyResult {
  ok: boolean;
  /** The scheme found in method-14 AUTH data (for logs and hash-policy checks). */
  scheme?: SignatureScheme;
  reason?: string;
}

/**
 * Verify AUTH data. Never throws on peer input: malformed data, unknown
 * algorithms and key/method mismatches are reported as { ok: false, reason }.
 */
export function verifyAuth(args: {
  method: number;
  publicKey: KeyObject;
  octets: Buffer;
  authData: Buffer;
}): VerifyResult {
  const { method, publicKey, octets, authData } = args;
  if (method === AuthMethod.DIGITAL_SIGNATURE) {
    const len = authData[0];
    if (len === undefined || authData.length < 1 + len) return { ok: false, reason: 'truncated AlgorithmIdentifier' };
    const algId = parseAlgorithmIdentifier(authData.subarray(1, 1 + len));
    if (!algId) return { ok: false, reason: 'malformed AlgorithmIdentifier' };
    const scheme = schemeFromAlgorithmIdentifier(algId);
    if (!scheme) return { ok: false, reason: `unsupported signature algorithm ${algId.oid}` };
    if (!keyMatches(publicKey, SCHEMES[scheme])) {
      return { ok: false, scheme, reason: `key type ${keyKind(publicKey)} does not match ${scheme}` };
    }
    const sig = authData.subarray(1 + len);
    const ok = rawVerify(scheme, publicKey, octets, sig, algId.pss?.saltLength);
    return ok ? { ok, scheme } : { ok, scheme, reason: 'signature mismatch' };
  }
  try {
    if (method === AuthMethod.RSA_SIGNATURE) {
      if (keyKind(publicKey) !== 'rsa') return { ok: false, reason: 'RSA signature auth needs an RSA key' };
      const ok = verify('sha1', octets, publicKey, authData);
      return ok ? { ok } : { ok, reason: 'signature mismatch' };
    }
    const ec = CLASSIC_ECDSA[method];
    if (ec) {
      if (publicKey.asymmetricKeyDetails?.namedCurve !== ec.curve) {
        return { ok: false, reason: `auth method ${method} needs a ${ec.curve} key` };
      }
      const ok = verify(ec.hash, octets, { key: publicKey, dsaEncoding: 'ieee-p1363' }, authData);
      return ok ? { ok } : { ok, reason: 'signature mismatch' };
    }
  } catch (err) {
    return { ok: false, reason: `verification error: ${err instanceof Error ? err.message : String(err)}` };
  }
  return { ok: false, reason: `auth method ${method} is not a signature method` };
}

/**
 * Pick the method-14 scheme for our key given the peer's
 * SIGNATURE_HASH_ALGORITHMS (strongest first); undefined if none fits.
 */
export function chooseScheme(key: KeyObject, peerHashes: readonly number[]): SignatureScheme | undefined {
  const kind = keyKind(key);
  const order: SignatureScheme[] =
    kind === 'ed25519'
      ? ['ed25519']
      : kind === 'ec'
        ? ['ecdsa-sha512', 'ecdsa-sha384', 'ecdsa-sha256']
        : kind === 'rsa'
          ? ['rsa-pkcs1-sha512', 'rsa-pkcs1-sha384', 'rsa-pkcs1-sha256']
          : [];
  return order.find((s) => peerHashes.includes(SCHEMES[s].hashAlgorithm));
}
