/**
 * Phase-1 signature authentication: HASH_I / HASH_R signed as a whole.
 *
 * - RSA: PKCS#1 v1.5 type-1 padding around the raw hash, with no DigestInfo
 *   (what IKEv1 peers send), i.e. a private-key "encrypt"; verification
 *   recovers the hash with the public key and compares it.
 * - ECDSA (RFC 4754): the hash is signed with the curve's own hash
 *   (P-256/SHA-256, P-384/SHA-384, P-521/SHA-512) and the signature is the
 *   fixed-length r | s concatenation.
 *
 * Verification answers false for any bad signature, including one that does
 * not even decode; it throws only for an unsupported key.
 */
import { constants, type KeyObject, privateEncrypt, publicDecrypt, sign, verify } from 'node:crypto';
import { CoatiError } from '../../errors.js';
import { hashesEqual } from './hashes.js';

const ECDSA_CURVES: Readonly<Record<string, { hash: string; size: number }>> = {
  prime256v1: { hash: 'sha256', size: 32 },
  secp384r1: { hash: 'sha384', size: 48 },
  secp521r1: { hash: 'sha512', size: 66 },
};

function ecdsaParams(key: KeyObject): { hash: string; size: number } {
  const curve = key.asymmetricKeyDetails?.namedCurve ?? '';
  const params = ECDSA_CURVES[curve];
  if (!params) throw new CoatiError('IKEV1_UNSUPPORTED_KEY', `ECDSA curve ${curve || '(unknown)'} is not supported`);
  return params;
}

function keyKind(key: KeyObject): 'rsa' | 'ec' {
  const t = key.asymmetricKeyType;
  if (t === 'rsa' || t === 'ec') return t;
  throw new CoatiError('IKEV1_UNSUPPORTED_KEY', `${t ?? key.type} keys cannot sign IKEv1 hashes`);
}

/** Sign HASH_I or HASH_R with our private key. */
export function signPhase1Hash(privateKey: KeyObject, hash: Buffer): Buffer {
  if (privateKey.type !== 'private') throw new CoatiError('IKEV1_UNSUPPORTED_KEY', 'signing needs a private key');
  if (keyKind(privateKey) === 'rsa') {
    return privateEncrypt({ key: privateKey, padding: constants.RSA_PKCS1_PADDING }, hash);
  }
  const { hash: curveHash } = ecdsaParams(privateKey);
  return sign(curveHash, hash, { key: privateKey, dsaEncoding: 'ieee-p1363' });
}

/** Check the peer's signature over the HASH_I or HASH_R we computed. */
export function verifyPhase1Hash(publicKey: KeyObject, hash: Buffer, signature: Buffer): boolean {
  if (keyKind(publicKey) === 'rsa') {
    let recovered: Buffer;
    try {
      recovered = publicDecrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, signature);
    } catch {
      return false;
    }
    return hashesEqual(recovered, hash);
  }
  const { hash: curveHash, size } = ecdsaParams(publicKey);
  if (signature.length !== 2 * size) return false;
  try {
    return verify(curveHash, hash, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature);
  } catch {
    return false;
  }
}
