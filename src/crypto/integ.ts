/**
 * Integrity transforms (truncated HMACs, RFC 2404 / RFC 4868).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { CoatiError } from '../errors.js';
import { type IntegDescriptor, type IntegSpec, resolveInteg } from './transforms.js';

export interface Integrity {
  readonly descriptor: IntegDescriptor;
  readonly icvSize: number;
  /** Truncated MAC over the concatenation of `parts`. */
  compute(parts: readonly Buffer[]): Buffer;
  /** Constant-time check of `icv` against the MAC of `parts`. */
  verify(parts: readonly Buffer[], icv: Buffer): boolean;
}

export function createIntegrity(alg: IntegSpec, key: Buffer): Integrity {
  const d = resolveInteg(alg);
  if (key.length !== d.keySize) {
    throw new CoatiError('INVALID_KEY_LENGTH', `${d.name}: key must be ${d.keySize} bytes, got ${key.length}`);
  }
  const compute = (parts: readonly Buffer[]): Buffer => {
    const h = createHmac(d.hash, key);
    for (const p of parts) h.update(p);
    return h.digest().subarray(0, d.icvSize);
  };
  return {
    descriptor: d,
    icvSize: d.icvSize,
    compute,
    verify(parts, icv) {
      if (icv.length !== d.icvSize) return false;
      return timingSafeEqual(compute(parts), icv);
    },
  };
}
