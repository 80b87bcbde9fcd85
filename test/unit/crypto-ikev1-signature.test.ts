/**
 * Signing HASH_I / HASH_R: RSA PKCS#1 v1.5 without DigestInfo and ECDSA
 * (RFC 4754) r | s over HASH_I as the digest, with keys generated here.
 */
import { constants, createHash, generateKeyPairSync, publicDecrypt, sign, verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signPhase1Hash, verifyPhase1Hash } from '../../src/crypto/ikev1/index.js';

const hashI = createHash('sha256').update('HASH_I stand-in').digest();
const tampered = Buffer.from(hashI);
tampered[5] = (tampered[5] ?? 0) ^ 0x01;

describe('IKEv1 RSA signature of the phase-1 hash', () => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });

  it('signs the raw hash with PKCS#1 type-1 padding, no DigestInfo', () => {
    const sig = signPhase1Hash(privateKey, hashI);
    expect(sig).toHaveLength(256);
    const recovered = publicDecrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, sig);
    expect(recovered.equals(hashI)).toBe(true);
    // The bare 32-byte hash: a DigestInfo wrapping would have recovered 51 bytes.
    expect(recovered).toHaveLength(32);
  });

  it('verifies its own signature and rejects a tampered hash or signature', () => {
    const sig = signPhase1Hash(privateKey, hashI);
    expect(verifyPhase1Hash(publicKey, hashI, sig)).toBe(true);
    expect(verifyPhase1Hash(publicKey, tampered, sig)).toBe(false);
    const badSig = Buffer.from(sig);
    badSig[100] = (badSig[100] ?? 0) ^ 0x80;
    expect(verifyPhase1Hash(publicKey, hashI, badSig)).toBe(false);
    expect(verifyPhase1Hash(publicKey, hashI, sig.subarray(1))).toBe(false);
  });

  it('rejects a signature made by another key', () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
    expect(verifyPhase1Hash(publicKey, hashI, signPhase1Hash(other.privateKey, hashI))).toBe(false);
  });
});

describe.each([
  { curve: 'P-256', hash: 'sha256', size: 32 },
  { curve: 'P-384', hash: 'sha384', size: 48 },
  { curve: 'P-521', hash: 'sha512', size: 66 },
])('IKEv1 ECDSA $curve signature of the phase-1 hash', ({ curve, hash, size }) => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve });
  // HASH_I is the prf output (here: HMAC-SHA-256, 32 bytes) and is itself the ECDSA digest
  // (strongSwan's IKEv1 "ECDSA with NULL"). OpenSSL's ECDSA over SHA-256(m) signs the
  // digest SHA-256(m), so with m chosen so that HASH_I = SHA-256(m), node:crypto is an
  // independent signer and verifier of exactly that digest.
  const m = Buffer.from('HASH_I stand-in');

  it('produces r | s over HASH_I as the digest (not hashed again), which OpenSSL verifies', () => {
    const sig = signPhase1Hash(privateKey, hashI);
    expect(sig).toHaveLength(2 * size);
    expect(verify('sha256', m, { key: publicKey, dsaEncoding: 'ieee-p1363' }, sig)).toBe(true);
    expect(verifyPhase1Hash(publicKey, hashI, sig)).toBe(true);
    // The old reading (HASH_I hashed with the curve's hash before signing) is not what is signed.
    expect(verify(hash, hashI, { key: publicKey, dsaEncoding: 'ieee-p1363' }, sig)).toBe(false);
  });

  it("accepts OpenSSL's signature of the same digest, and refuses one over the curve hash of HASH_I", () => {
    const openssl = sign('sha256', m, { key: privateKey, dsaEncoding: 'ieee-p1363' });
    expect(verifyPhase1Hash(publicKey, hashI, openssl)).toBe(true);
    const rehashed = sign(hash, hashI, { key: privateKey, dsaEncoding: 'ieee-p1363' });
    expect(verifyPhase1Hash(publicKey, hashI, rehashed)).toBe(false);
  });

  it('rejects a tampered hash, a tampered signature and a DER-encoded one', () => {
    const sig = signPhase1Hash(privateKey, hashI);
    expect(verifyPhase1Hash(publicKey, tampered, sig)).toBe(false);
    const badSig = Buffer.from(sig);
    badSig[3] = (badSig[3] ?? 0) ^ 0x01;
    expect(verifyPhase1Hash(publicKey, hashI, badSig)).toBe(false);
    expect(verifyPhase1Hash(publicKey, hashI, Buffer.alloc(2 * size))).toBe(false);
    expect(verifyPhase1Hash(publicKey, hashI, Buffer.concat([sig, Buffer.from([0])]))).toBe(false);
    const der = sign('sha256', m, { key: privateKey, dsaEncoding: 'der' });
    expect(verifyPhase1Hash(publicKey, hashI, der)).toBe(false);
  });
});

describe('IKEv1 signature key checks', () => {
  it('refuses keys it cannot use', () => {
    const ed = generateKeyPairSync('ed25519');
    expect(() => signPhase1Hash(ed.privateKey, hashI)).toThrow(
      expect.objectContaining({ code: 'IKEV1_UNSUPPORTED_KEY' }),
    );
    const k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
    expect(() => verifyPhase1Hash(k1.publicKey, hashI, Buffer.alloc(64))).toThrow(
      expect.objectContaining({ code: 'IKEV1_UNSUPPORTED_KEY' }),
    );
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
    expect(() => signPhase1Hash(rsa.publicKey, hashI)).toThrow(
      expect.objectContaining({ code: 'IKEV1_UNSUPPORTED_KEY' }),
    );
  });
});
