/**
 * The Encrypted and Authenticated (SK) payload body (RFC 7296 3.14,
 * RFC 5282, RFC 7634): one entry point that picks CBC+HMAC or AEAD from the
 * negotiated transforms.
 */

import { CoatiError } from '../errors.js';
import { createAeadSkCipher } from './aead.js';
import { createCbcSkCipher } from './cbc.js';
import { defaultRandom, type RandomSource } from './random.js';
import { type EncrSpec, encrKeyBits, IntegId, type IntegSpec, resolveEncr, resolveInteg } from './transforms.js';

export interface SkCipher {
  /** IV + ICV bytes added around the (padded) ciphertext. */
  readonly overhead: number;
  /** Length of seal()'s output for an inner payload chain of `plainLen` bytes. */
  sealedLength(plainLen: number): number;
  /**
   * Encrypt and protect an inner payload chain. `aad` is the message prefix:
   * IKE header (with the final length) + unencrypted payloads + SK payload
   * header. Returns IV || ciphertext || ICV. Padding is added here.
   */
  seal(aad: Buffer, plaintext: Buffer, iv?: Buffer): Buffer;
  /**
   * prefix || seal(prefix, plaintext) as one buffer of its own (outside the
   * Buffer pool: sent messages are kept for retransmission). Optional: the
   * caller joins the two otherwise.
   */
  sealMessage?(prefix: Buffer, plaintext: Buffer, iv?: Buffer): Buffer;
  /** Verify and decrypt an SK body; the inner chain without padding, or null. Never throws. */
  open(aad: Buffer, body: Buffer): Buffer | null;
}

export interface SkCipherOptions {
  encr: EncrSpec;
  /** Key Length attribute in bits (omit for fixed-size ciphers like ChaCha20). */
  keyLen?: number;
  integ?: IntegSpec;
  /** SK_e. For AEAD without `salt`, SK_e as derived: key || salt. */
  encKey: Buffer;
  integKey?: Buffer;
  /** AEAD salt, when not appended to `encKey`. */
  salt?: Buffer;
  /** Source for IVs; defaults to crypto.randomBytes. */
  randomBytes?: RandomSource;
}

export function createSkCipher(opts: SkCipherOptions): SkCipher {
  const encr = resolveEncr(opts.encr);
  const keyBits = encrKeyBits(encr, opts.keyLen);
  const random = opts.randomBytes ?? defaultRandom;
  if (encr.kind === 'aead') {
    if (opts.integ !== undefined && opts.integ !== IntegId.NONE) {
      throw new CoatiError('UNSUPPORTED_TRANSFORM', `${encr.name} is combined-mode: no INTEG transform allowed`);
    }
    const keyBytes = keyBits / 8;
    let key = opts.encKey;
    let salt = opts.salt;
    if (salt === undefined) {
      if (opts.encKey.length !== keyBytes + encr.saltSize) {
        throw new CoatiError(
          'INVALID_KEY_LENGTH',
          `${encr.name}: SK_e must be ${keyBytes + encr.saltSize} bytes (key + salt), got ${opts.encKey.length}`,
        );
      }
      key = opts.encKey.subarray(0, keyBytes);
      salt = opts.encKey.subarray(keyBytes);
    }
    return createAeadSkCipher({ encr, keyBits, key, salt, random });
  }
  if (opts.integ === undefined || opts.integ === IntegId.NONE || opts.integKey === undefined) {
    throw new CoatiError('UNSUPPORTED_TRANSFORM', `${encr.name} needs an INTEG transform and SK_a`);
  }
  return createCbcSkCipher({
    encr,
    keyBits,
    integ: resolveInteg(opts.integ),
    encKey: opts.encKey,
    integKey: opts.integKey,
    random,
  });
}
