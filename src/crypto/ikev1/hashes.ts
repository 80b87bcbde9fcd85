/**
 * The IKEv1 authentication hashes (RFC 2409 sections 5 and 5.5, section 5.7
 * for informational exchanges) and the NAT-D hash (RFC 3947 section 3.2).
 * Every byte string is a payload body, i.e. without its generic header,
 * except where a whole payload run is named explicitly.
 */
import { timingSafeEqual } from 'node:crypto';
import { CoatiError } from '../../errors.js';
import { type HashFn, octet, type PrfFn, uint32be } from './primitives.js';

export interface Phase1HashInput {
  readonly prf: PrfFn;
  readonly skeyid: Buffer;
  /** g^xi and g^xr: the public DH values of initiator and responder. */
  readonly gxi: Buffer;
  readonly gxr: Buffer;
  readonly cookieI: Buffer;
  readonly cookieR: Buffer;
  /** SAi_b: the body of the initiator's SA payload (DOI, situation, proposals). */
  readonly saiB: Buffer;
}

/** HASH_I = prf(SKEYID, g^xi | g^xr | CKY-I | CKY-R | SAi_b | IDii_b). */
export function hashI(input: Phase1HashInput, idiiB: Buffer): Buffer {
  const { gxi, gxr, cookieI, cookieR, saiB } = input;
  return input.prf(input.skeyid, Buffer.concat([gxi, gxr, cookieI, cookieR, saiB, idiiB]));
}

/** HASH_R = prf(SKEYID, g^xr | g^xi | CKY-R | CKY-I | SAi_b | IDir_b). */
export function hashR(input: Phase1HashInput, idirB: Buffer): Buffer {
  const { gxi, gxr, cookieI, cookieR, saiB } = input;
  return input.prf(input.skeyid, Buffer.concat([gxr, gxi, cookieR, cookieI, saiB, idirB]));
}

/**
 * Quick Mode HASH(1) = prf(SKEYID_a, M-ID | SA | Ni [ | KE ] [ | IDci | IDcr ]):
 * `payloadsAfterHash` is every payload that follows the HASH payload, generic
 * headers included, exactly as they appear in the message (padding excluded).
 */
export function quickModeHash1(prf: PrfFn, skeyidA: Buffer, messageId: number, payloadsAfterHash: Buffer): Buffer {
  return prf(skeyidA, Buffer.concat([uint32be(messageId), payloadsAfterHash]));
}

/** Quick Mode HASH(2) = prf(SKEYID_a, M-ID | Ni_b | SA | Nr [ | KE ] [ | IDci | IDcr ]). */
export function quickModeHash2(
  prf: PrfFn,
  skeyidA: Buffer,
  messageId: number,
  niB: Buffer,
  payloadsAfterHash: Buffer,
): Buffer {
  return prf(skeyidA, Buffer.concat([uint32be(messageId), niB, payloadsAfterHash]));
}

/** Quick Mode HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b). */
export function quickModeHash3(prf: PrfFn, skeyidA: Buffer, messageId: number, niB: Buffer, nrB: Buffer): Buffer {
  return prf(skeyidA, Buffer.concat([octet(0), uint32be(messageId), niB, nrB]));
}

/**
 * Informational HASH(1) = prf(SKEYID_a, M-ID | N/D): `payloadsAfterHash` is
 * the Notification or Delete payload(s) with their generic headers. Also what
 * RFC 3706 DPD R-U-THERE / R-U-THERE-ACK messages carry.
 */
export function informationalHash(prf: PrfFn, skeyidA: Buffer, messageId: number, payloadsAfterHash: Buffer): Buffer {
  return prf(skeyidA, Buffer.concat([uint32be(messageId), payloadsAfterHash]));
}

/**
 * NAT-D (RFC 3947): hash(CKY-I | CKY-R | IP | Port) with the negotiated hash;
 * `address` is the raw 4- or 16-byte IP address, `port` the UDP port.
 */
export function natdHash(hash: HashFn, cookieI: Buffer, cookieR: Buffer, address: Buffer, port: number): Buffer {
  if (address.length !== 4 && address.length !== 16) {
    throw new CoatiError('IKEV1_BAD_ADDRESS', `NAT-D address must be 4 or 16 bytes, got ${address.length}`);
  }
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) {
    throw new CoatiError('IKEV1_BAD_PORT', `invalid port ${port}`);
  }
  const p = Buffer.alloc(2);
  p.writeUInt16BE(port, 0);
  return hash(Buffer.concat([cookieI, cookieR, address, p]));
}

/** Constant-time comparison of a received hash with the expected one; false on length mismatch. */
export function hashesEqual(received: Buffer, expected: Buffer): boolean {
  return received.length === expected.length && timingSafeEqual(received, expected);
}
