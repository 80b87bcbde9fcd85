/**
 * SK payload protection with a block cipher in CBC mode plus a separate
 * integrity transform (RFC 7296 3.14):
 *   body = IV || E(inner payloads | padding | pad length) || ICV
 * where ICV = MAC(SK_a, aad || IV || ciphertext) and `aad` is the message
 * from the IKE header through the SK generic payload header.
 * The IV is random (from the injected RandomSource), one block long.
 * Padding bytes are zeros: RFC 7296 leaves their contents to the sender.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { CoatiError } from '../errors.js';
import { createIntegrity } from './integ.js';
import type { RandomSource } from './random.js';
import type { SkCipher } from './sk.js';
import type { EncrDescriptor, IntegDescriptor } from './transforms.js';

export function createCbcSkCipher(args: {
  encr: EncrDescriptor;
  keyBits: number;
  integ: IntegDescriptor;
  encKey: Buffer;
  integKey: Buffer;
  random: RandomSource;
}): SkCipher {
  const { encr, keyBits, encKey, random } = args;
  if (encKey.length !== keyBits / 8) {
    throw new CoatiError('INVALID_KEY_LENGTH', `${encr.name}: key must be ${keyBits / 8} bytes, got ${encKey.length}`);
  }
  const cipherName = encr.nodeCipher(keyBits);
  const integ = createIntegrity(args.integ, args.integKey);
  const bs = encr.blockSize;
  const ivSize = encr.ivSize;
  const icvSize = integ.icvSize;

  const paddedLength = (plainLen: number): number => Math.ceil((plainLen + 1) / bs) * bs;

  return {
    overhead: ivSize + icvSize,
    sealedLength: (plainLen) => ivSize + paddedLength(plainLen) + icvSize,
    seal(aad, plaintext, iv) {
      const ivBuf = iv ?? random(ivSize);
      if (ivBuf.length !== ivSize) throw new CoatiError('INVALID_IV', `${encr.name}: IV must be ${ivSize} bytes`);
      const padded = Buffer.alloc(paddedLength(plaintext.length));
      plaintext.copy(padded);
      padded[padded.length - 1] = padded.length - plaintext.length - 1;
      const c = createCipheriv(cipherName, encKey, ivBuf).setAutoPadding(false);
      const ct = Buffer.concat([c.update(padded), c.final()]);
      padded.fill(0);
      const icv = integ.compute([aad, ivBuf, ct]);
      return Buffer.concat([ivBuf, ct, icv]);
    },
    open(aad, body) {
      const ctLen = body.length - ivSize - icvSize;
      if (ctLen < bs || ctLen % bs !== 0) return null;
      const ivBuf = body.subarray(0, ivSize);
      const ct = body.subarray(ivSize, ivSize + ctLen);
      const icv = body.subarray(ivSize + ctLen);
      if (!integ.verify([aad, ivBuf, ct], icv)) return null;
      const d = createDecipheriv(cipherName, encKey, ivBuf).setAutoPadding(false);
      // update()'s result is private and unpooled (callers decode views into it); final() adds
      // nothing without auto padding.
      const dec = d.update(ct);
      const fin = d.final();
      let pt = dec;
      if (fin.length > 0) {
        pt = Buffer.allocUnsafeSlow(dec.length + fin.length);
        dec.copy(pt, 0);
        fin.copy(pt, dec.length);
      }
      const padLen = pt[pt.length - 1] ?? 0;
      if (padLen + 1 > pt.length) return null;
      return pt.subarray(0, pt.length - padLen - 1);
    },
  };
}
