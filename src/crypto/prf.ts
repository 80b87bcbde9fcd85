/**
 * IKEv2 pseudo-random functions (RFC 7296 2.13): prf and prf+.
 */
import { createHmac } from 'node:crypto';
import { CoatiError } from '../errors.js';
import { type PrfSpec, resolvePrf } from './transforms.js';

/** prf(key, data); `data` may be given as parts to avoid concatenation. */
export function prf(alg: PrfSpec, key: Buffer, data: Buffer | readonly Buffer[]): Buffer {
  const h = createHmac(resolvePrf(alg).hash, key);
  if (Buffer.isBuffer(data)) h.update(data);
  else for (const d of data) h.update(d);
  return h.digest();
}

/**
 * prf+(K, S) = T1 | T2 | ... truncated to `length` bytes, where
 * T1 = prf(K, S | 0x01) and Tn = prf(K, Tn-1 | S | n). At most 255 blocks.
 */
export function prfPlus(alg: PrfSpec, key: Buffer, seed: Buffer | readonly Buffer[], length: number): Buffer {
  const d = resolvePrf(alg);
  const blocks = Math.ceil(length / d.outputSize);
  if (!Number.isInteger(length) || length < 0 || blocks > 255) {
    throw new CoatiError(
      'PRF_PLUS_TOO_LONG',
      `prf+ of ${length} bytes needs ${blocks} iterations of ${d.name}; at most 255 are allowed`,
    );
  }
  const seeds = Buffer.isBuffer(seed) ? [seed] : seed;
  const out = Buffer.allocUnsafe(blocks * d.outputSize);
  const counter = Buffer.alloc(1);
  let prev: Buffer | undefined;
  for (let i = 1; i <= blocks; i++) {
    const h = createHmac(d.hash, key);
    if (prev) h.update(prev);
    for (const s of seeds) h.update(s);
    counter[0] = i;
    h.update(counter);
    prev = h.digest();
    prev.copy(out, (i - 1) * d.outputSize);
  }
  prev?.fill(0);
  if (out.length === length) return out;
  const result = Buffer.from(out.subarray(0, length));
  out.fill(0);
  return result;
}
