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
  const ciphertext = joinFinal(c.update(plaintext), c.final());
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
    return joinFinal(d.update(ciphertext), d.final());
  } catch {
    return null;
  }
}

/**
 * update() || final(). Stream AEADs return nothing from final(), and update()'s
 * result is a private, unpooled buffer: keep it rather than copy both into the pool.
 */
function joinFinal(out: Buffer, fin: Buffer): Buffer {
  return fin.length === 0 ? out : Buffer.concat([out, fin]);
}

let nonceScratch = Buffer.allocUnsafeSlow(12);

/**
 * The AEAD SK cipher of one direction of an IKE SA. A class, not closures: an
 * SA holds two for its lifetime.
 */
class AeadSkCipher implements SkCipher {
  readonly overhead: number;
  private readonly ivSize: number;
  private readonly icvSize: number;
  private readonly blockSize: number;
  private readonly salt: Buffer;

  constructor(
    private readonly encr: EncrDescriptor,
    private readonly cipherName: string,
    private readonly key: Buffer,
    salt: Buffer,
    private readonly random: RandomSource,
  ) {
    this.ivSize = encr.ivSize;
    this.icvSize = encr.icvSize;
    this.blockSize = encr.blockSize;
    this.overhead = this.ivSize + this.icvSize;
    this.salt = salt;
  }

  private paddedLength(plainLen: number): number {
    return Math.ceil((plainLen + 1) / this.blockSize) * this.blockSize;
  }

  sealedLength(plainLen: number): number {
    return this.ivSize + this.paddedLength(plainLen) + this.icvSize;
  }

  /**
   * salt || IV in a scratch buffer shared by all ciphers: the cipher copies
   * its nonce when created, and calls never interleave (a nonce buffer per
   * cipher costs a backing store per SA direction once OpenSSL has seen it).
   */
  private nonceOf(iv: Uint8Array): Buffer {
    const len = this.salt.length + this.ivSize;
    if (nonceScratch.length < len) nonceScratch = Buffer.allocUnsafeSlow(len);
    const n = nonceScratch.subarray(0, len);
    n.set(this.salt, 0);
    n.set(iv, this.salt.length);
    return n;
  }

  /** IV || E(plaintext | padding | pad length) || ICV written into `out` at `at` (sealedLength bytes). */
  private sealTo(out: Buffer, at: number, aad: Buffer, plaintext: Buffer, iv?: Buffer): void {
    const ivBuf = iv ?? this.random(this.ivSize);
    if (ivBuf.length !== this.ivSize)
      throw new CoatiError('INVALID_IV', `${this.encr.name}: IV must be ${this.ivSize} bytes`);
    const padLen = this.paddedLength(plaintext.length) - plaintext.length - 1;
    const trailer = Buffer.alloc(padLen + 1);
    trailer[padLen] = padLen;
    const c = createCipheriv(this.cipherName as 'aes-128-gcm', this.key, this.nonceOf(ivBuf), {
      authTagLength: this.icvSize,
    });
    c.setAAD(aad);
    let off = at;
    out.set(ivBuf, off);
    off += this.ivSize;
    for (const part of [c.update(plaintext), c.update(trailer), c.final()]) {
      out.set(part, off);
      off += part.length;
    }
    out.set(c.getAuthTag(), off);
  }

  seal(aad: Buffer, plaintext: Buffer, iv?: Buffer): Buffer {
    const out = Buffer.allocUnsafe(this.sealedLength(plaintext.length));
    this.sealTo(out, 0, aad, plaintext, iv);
    return out;
  }

  sealMessage(prefix: Buffer, plaintext: Buffer, iv?: Buffer): Buffer {
    const out = Buffer.allocUnsafeSlow(prefix.length + this.sealedLength(plaintext.length));
    prefix.copy(out, 0);
    this.sealTo(out, prefix.length, prefix, plaintext, iv);
    return out;
  }

  open(aad: Buffer, body: Buffer): Buffer | null {
    const { ivSize, icvSize } = this;
    const ctLen = body.length - ivSize - icvSize;
    if (ctLen < 1) return null;
    const pt = aeadDecrypt(
      this.cipherName,
      this.key,
      this.nonceOf(body.subarray(0, ivSize)),
      aad,
      body.subarray(ivSize, ivSize + ctLen),
      body.subarray(ivSize + ctLen),
    );
    if (pt === null) return null;
    const padLen = pt[pt.length - 1] ?? 0;
    if (padLen + 1 > pt.length) return null;
    return pt.subarray(0, pt.length - padLen - 1);
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
  return new AeadSkCipher(encr, encr.nodeCipher(keyBits), key, salt, random);
}
