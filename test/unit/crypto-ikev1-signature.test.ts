/**
 * Signing HASH_I / HASH_R: RSA PKCS#1 v1.5 without DigestInfo and ECDSA
 * (RFC 4754) r | s, with keys generated here.
 */
import { constants, createHash, generateKeyPairSync, publicDecrypt, verify } from 'node:crypto';
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
])('IKEv1 ECDSA $curve signature of the phase-1 hash', ({ curve, hash, size }) => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve });

  it('produces r | s over the hash with the curve hash and verifies it', () => {
    const sig = signPhase1Hash(privateKey, hashI);
    expect(sig).toHaveLength(2 * size);
    expect(verify(hash, hashI, { key: publicKey, dsaEncoding: 'ieee-p1363' }, sig)).toBe(true);
    expect(verifyPhase1Hash(publicKey, hashI, sig)).toBe(true);
  });

  it('rejects a tampered hash, a tampered signature and a DER-encoded one', () => {
    const sig = signPhase1Hash(privateKey, hashI);
    expect(verifyPhase1Hash(publicKey, tampered, sig)).toBe(false);
    const badSig = Buffer.from(sig);
    badSig[3] = (badSig[3] ?? 0) ^ 0x01;
    expect(verifyPhase1Hash(publicKey, hashI, badSig)).toBe(false);
    expect(verifyPhase1Hash(publicKey, hashI, Buffer.alloc(2 * size))).toBe(false);
    expect(verifyPhase1Hash(publicKey, hashI, Buffer.concat([sig, Buffer.from([0])]))).toBe(false);
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
