/**
 * Injectable random source. Everything in src/crypto that needs randomness
 * (IVs, padding-free nonces) takes a RandomSource so tests can be
 * deterministic; only the composition root passes the real one.
 */
import { randomBytes } from 'node:crypto';

export type RandomSource = (n: number) => Buffer;

/** The production source: OpenSSL's CSPRNG through node:crypto. */
export const defaultRandom: RandomSource = (n) => randomBytes(n);

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
