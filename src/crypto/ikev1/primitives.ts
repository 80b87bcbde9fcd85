/**
 * The primitives the IKEv1 key schedule is built from, injected rather than
 * taken from the shared transform registry: a keyed PRF, an unkeyed hash and
 * a CBC cipher described by its node:crypto name. `hmacPrf` and `nodeHash`
 * are small node:crypto-backed factories for callers (and tests) that have
 * nothing better to inject.
 */
import { createHash, createHmac, getHashes } from 'node:crypto';
import { CoatiError } from '../../errors.js';

/** A keyed pseudo-random function, `prf(key, data)` in RFC 2409 notation. */
export type PrfFn = (key: Buffer, data: Buffer) => Buffer;

/** The negotiated (unkeyed) hash, used for the phase-1/phase-2 IVs and NAT-D. */
export type HashFn = (data: Buffer) => Buffer;

/** A CBC cipher as node:crypto knows it, e.g. `{ nodeName: 'aes-128-cbc', keyLen: 16, blockSize: 16 }`. */
export interface CbcCipherSpec {
  readonly nodeName: string;
  readonly keyLen: number;
  readonly blockSize: number;
}

function checkHashName(hashName: string): void {
  if (!getHashes().includes(hashName.toLowerCase())) {
    throw new CoatiError('IKEV1_UNKNOWN_HASH', `hash ${hashName} is not available in node:crypto`);
  }
}

/** HMAC with a node:crypto hash as the IKEv1 prf (the usual case when no PRF attribute is negotiated). */
export function hmacPrf(hashName: string): PrfFn {
  checkHashName(hashName);
  return (key, data) => createHmac(hashName, key).update(data).digest();
}

/** A node:crypto hash as a `HashFn`. */
export function nodeHash(hashName: string): HashFn {
  checkHashName(hashName);
  return (data) => createHash(hashName).update(data).digest();
}

/** A single octet, as used by the RFC 2409 derivations (`| 0`, `| 1`, `| 2`). */
export function octet(value: number): Buffer {
  return Buffer.from([value & 0xff]);
}

/** A 32-bit value in network order (message IDs, SPIs). */
export function uint32be(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value >>> 0, 0);
  return b;
}
