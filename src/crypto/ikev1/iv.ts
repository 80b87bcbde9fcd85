/**
 * IKEv1 IV derivation (RFC 2409 Appendix B). Both IVs use the negotiated
 * hash itself, not its HMAC, truncated to the cipher's block size.
 */
import { CoatiError } from '../../errors.js';
import { type HashFn, uint32be } from './primitives.js';

function truncate(hash: HashFn, data: Buffer, blockSize: number): Buffer {
  const h = hash(data);
  if (h.length < blockSize) {
    throw new CoatiError('IKEV1_HASH_TOO_SHORT', `hash output ${h.length} bytes is shorter than block ${blockSize}`);
  }
  return Buffer.from(h.subarray(0, blockSize));
}

/** Phase-1 IV: hash(g^xi | g^xr) truncated to the block size. */
export function phase1Iv(hash: HashFn, gxi: Buffer, gxr: Buffer, blockSize: number): Buffer {
  return truncate(hash, Buffer.concat([gxi, gxr]), blockSize);
}

/**
 * IV of the first message of a phase-2 (Quick Mode) or informational
 * exchange: hash(last phase-1 CBC output block | M-ID) truncated to the block size.
 */
export function phase2Iv(hash: HashFn, lastPhase1Block: Buffer, messageId: number, blockSize: number): Buffer {
  return truncate(hash, Buffer.concat([lastPhase1Block, uint32be(messageId)]), blockSize);
}
