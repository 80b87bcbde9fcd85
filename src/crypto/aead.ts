/**
 * SK payload protection with combined-mode ciphers: AES-GCM (RFC 5282) and
 * ChaCha20-Poly1305 (RFC 7634).
 *   body = IV(8) || E(inner payloads | padding | pad length) || ICV
 *   nonce = salt(4, from the end of SK_e) || IV(8)
 *   AAD = IKE header .. SK generic payload header (RFC 5282 5.1)
 * IVs are 8 random bytes from the injected RandomSource. A counter would
 * also satisfy the "never repeat" rule, but a restored SA would restart it;
 * random IVs stay safe across restarts, and IKE message counts stay far
 * below the 2^32 birthday bound. Both ciphers need no alignment, so no
 * padding bytes are added (pad length 0).
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { CoatiError } from '../errors.js';
import type { RandomSource } from './random.js';
import type { SkCipher } from './sk.js';
import type { EncrDescriptor } from './transforms.js';

/** AEAD encrypt with an explicit nonce (shared by the SK payload and tests). */
export function aeadEncrypt(
  cipherName: string,
  key: Buffer,
  nonce: Buffer,
  aad: Buffer,
  plaintext: Buffer,
  tagLength: number,
): { ciphertext: Buffer; tag: Buffer } {
  const c = createCipheriv(cipherName as 'aes-128-gcm', key, nonce, { authTagLength: tagLength });
  c.setAAD(aad);
  const ciphertext = Buffer.concat([c.update(plaintext), c.final()]);
  return { ciphertext, tag: c.getAuthTag() };
}

/** AEAD decrypt; null when the tag does not verify. */
export function aeadDecrypt(
  cipherName: string,
  key: Buffer,
  nonce: Buffer,
  aad: Buffer,
  ciphertext: Buffer,
  tag: Buffer,
): Buffer | null {
  try {
    const d = createDecipheriv(cipherName as 'aes-128-gcm', key, nonce, { authTagLength: tag.length });
    d.setAAD(aad);
    d.setAuthTag(tag);
    return Buffer.concat([d.update(ciphertext), d.final()]);
  } catch {
    return null;
  }
}

export function createAeadSkCipher(args: {
  encr: EncrDescriptor;
  keyBits: number;
  key: Buffer;
  salt: Buffer;
  random: RandomSource;
}): SkCipher {
  const { encr, keyBits, key, salt, random } = args;
  if (key.length !== keyBits / 8) {
    throw new CoatiError('INVALID_KEY_LENGTH', `${encr.name}: key must be ${keyBits / 8} bytes, got ${key.length}`);
  }
  if (salt.length !== encr.saltSize) {
    throw new CoatiError('INVALID_KEY_LENGTH', `${encr.name}: salt must be ${encr.saltSize} bytes`);
  }
  const cipherName = encr.nodeCipher(keyBits);
  const { ivSize, icvSize, blockSize } = encr;
  const paddedLength = (plainLen: number): number => Math.ceil((plainLen + 1) / blockSize) * blockSize;
  const nonceOf = (iv: Buffer): Buffer => Buffer.concat([salt, iv]);

  return {
    overhead: ivSize + icvSize,
    sealedLength: (plainLen) => ivSize + paddedLength(plainLen) + icvSize,
    seal(aad, plaintext, iv) {
      const ivBuf = iv ?? random(ivSize);
      if (ivBuf.length !== ivSize) throw new CoatiError('INVALID_IV', `${encr.name}: IV must be ${ivSize} bytes`);
      const padded = Buffer.alloc(paddedLength(plaintext.length));
      plaintext.copy(padded);
      padded[padded.length - 1] = padded.length - plaintext.length - 1;
      const { ciphertext, tag } = aeadEncrypt(cipherName, key, nonceOf(ivBuf), aad, padded, icvSize);
      padded.fill(0);
      return Buffer.concat([ivBuf, ciphertext, tag]);
    },
    open(aad, body) {
      const ctLen = body.length - ivSize - icvSize;
      if (ctLen < 1) return null;
      const ivBuf = body.subarray(0, ivSize);
      const pt = aeadDecrypt(
        cipherName,
        key,
        nonceOf(ivBuf),
        aad,
        body.subarray(ivSize, ivSize + ctLen),
        body.subarray(ivSize + ctLen),
      );
      if (pt === null) return null;
      const padLen = pt[pt.length - 1] ?? 0;
      if (padLen + 1 > pt.length) return null;
      return pt.subarray(0, pt.length - padLen - 1);
    },
  };
}
