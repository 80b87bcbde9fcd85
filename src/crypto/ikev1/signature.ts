/**
 * Phase-1 signature authentication: HASH_I / HASH_R signed as a whole.
 *
 * - RSA: PKCS#1 v1.5 type-1 padding around the raw hash, with no DigestInfo
 *   (what IKEv1 peers send), i.e. a private-key "encrypt"; verification
 *   recovers the hash with the public key and compares it.
 * - ECDSA (RFC 4754 auth methods 9/10/11): HASH_I / HASH_R is itself the
 *   digest the ECDSA primitive signs (it is not hashed again, just as RSA signs
 *   it without a DigestInfo), and the signature is the fixed-length r | s
 *   concatenation. This is what strongSwan does (its "ECDSA with NULL" scheme):
 *   a signature over the curve hash of HASH_I failed against charon in
 *   test/interop/coati-v1-certs.test.ts. node:crypto always hashes the input
 *   for ECDSA, so the raw-digest primitive comes from @noble/curves.
 *
 * Verification answers false for any bad signature, including one that does
 * not even decode; it throws only for an unsupported key.
 */
import { constants, type KeyObject, privateEncrypt, publicDecrypt } from 'node:crypto';
import { p256, p384, p521 } from '@noble/curves/nist.js';
import { CoatiError } from '../../errors.js';
import { hashesEqual } from './hashes.js';

interface EcdsaCurve {
  size: number;
  ecdsa: typeof p256;
}

const ECDSA_CURVES: Readonly<Record<string, EcdsaCurve>> = {
  prime256v1: { size: 32, ecdsa: p256 },
  secp384r1: { size: 48, ecdsa: p384 },
  secp521r1: { size: 66, ecdsa: p521 },
};

/** Signatures over a precomputed digest; high-S signatures are valid ECDSA and accepted. */
const RAW = { prehash: false, lowS: false, format: 'compact' } as const;

function ecdsaParams(key: KeyObject): EcdsaCurve {
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
  const { size, ecdsa } = ecdsaParams(privateKey);
  const d = Buffer.from(privateKey.export({ format: 'jwk' }).d ?? '', 'base64url');
  try {
    return Buffer.from(ecdsa.sign(hash, leftPad(d, size), RAW));
  } finally {
    d.fill(0);
  }
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
  const { size, ecdsa } = ecdsaParams(publicKey);
  if (signature.length !== 2 * size) return false;
  const jwk = publicKey.export({ format: 'jwk' });
  const point = Buffer.concat([
    Buffer.from([4]),
    leftPad(Buffer.from(jwk.x ?? '', 'base64url'), size),
    leftPad(Buffer.from(jwk.y ?? '', 'base64url'), size),
  ]);
  try {
    return ecdsa.verify(signature, hash, point, RAW);
  } catch {
    return false;
  }
}

function leftPad(b: Buffer, size: number): Buffer {
  return b.length >= size ? b : Buffer.concat([Buffer.alloc(size - b.length), b]);
}
