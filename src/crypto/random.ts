/**
 * Injectable random source. Everything in src/crypto that needs randomness
 * (IVs, padding-free nonces) takes a RandomSource so tests can be
 * deterministic; only the composition root passes the real one.
 */
import { randomBytes, randomFillSync } from 'node:crypto';

export type RandomSource = (n: number) => Buffer;

const POOL_SIZE = 4096;
/** Requests up to this size are served from the pool; larger ones go to OpenSSL directly. */
const POOLED_MAX = 256;

/**
 * OpenSSL's CSPRNG read 4 KiB at a time. A handshake takes many small
 * random values (SPIs, nonces, IVs) and every `randomBytes` call costs a
 * C++ job of its own (~2 µs against ~0.2 µs from here). Each byte is handed
 * out once and wiped in the pool as it is taken; every result is a Buffer of
 * its own (no shared or pooled backing store).
 */
export function pooledRandom(): RandomSource {
  const pool = Buffer.allocUnsafeSlow(POOL_SIZE);
  let at = POOL_SIZE;
  return (n) => {
    if (!Number.isInteger(n) || n < 0 || n > POOLED_MAX) return randomBytes(n);
    if (at + n > POOL_SIZE) {
      randomFillSync(pool);
      at = 0;
    }
    const out = Buffer.alloc(n);
    pool.copy(out, 0, at, at + n);
    pool.fill(0, at, at + n);
    at += n;
    return out;
  };
}

/** The production source: OpenSSL's CSPRNG through node:crypto, read in 4 KiB blocks. */
export const defaultRandom: RandomSource = pooledRandom();

/**
 * A deterministic source for tests and benches: a byte counter, never for
 * production use. Each call returns the next `n` bytes of 0,1,2,...,255,0,...
 */
export function counterRandom(start = 0): RandomSource {
  let next = start & 0xff;
  return (n) => {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) {
      out[i] = next;
      next = (next + 1) & 0xff;
    }
    return out;
  };
}
