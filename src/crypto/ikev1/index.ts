/** IKEv1 (RFC 2409) key schedule, IVs, message encryption, hashes and signatures. */

export type { Phase1HashInput } from './hashes.js';
export {
  hashesEqual,
  hashI,
  hashR,
  informationalHash,
  natdHash,
  quickModeHash1,
  quickModeHash2,
  quickModeHash3,
} from './hashes.js';
export { phase1Iv, phase2Iv } from './iv.js';
export type { Phase1Auth, Phase1KeysInput, SkeyidInput } from './key-schedule.js';
export { derivePhase1Keys, deriveSkeyid, expandKey, Phase1Keys } from './key-schedule.js';
export type { QuickModeKeymatInput } from './keymat.js';
export { quickModeKeymat } from './keymat.js';
export type { Phase1CryptoOptions } from './phase1-crypto.js';
export { Phase1Crypto, payloadChainLength } from './phase1-crypto.js';
export type { CbcCipherSpec, HashFn, PrfFn } from './primitives.js';
export { hmacPrf, nodeHash, octet, uint32be } from './primitives.js';
export { signPhase1Hash, verifyPhase1Hash } from './signature.js';
