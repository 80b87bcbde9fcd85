/**
 * IKEv2 message encoders. Next-payload fields and lengths are computed from
 * the payload list; the header's `nextPayload` and `length` are not trusted.
 * Encoding a decoded message reproduces it byte for byte (reserved fields are
 * written as zero, as RFC 7296 requires of senders).
 */
import { Writer } from '../cursor.js';
import {
  CRITICAL_FLAG,
  GENERIC_PAYLOAD_HEADER_LENGTH,
  HEADER_FLAG,
  IKE_HEADER_LENGTH,
  name,
  PAYLOAD,
} from './constants.js';
import { writePayloadBody } from './encode-payloads.js';
import { WireEncodeError } from './errors.js';
import { type IkeHeader, isUnknown, type Payload } from './types.js';

export { GENERIC_PAYLOAD_HEADER_LENGTH, IKE_HEADER_LENGTH } from './constants.js';

/** Bytes of the SKF payload before its body: generic header + fragment number + total. */
export const SKF_HEADER_LENGTH = GENERIC_PAYLOAD_HEADER_LENGTH + 4;

const MAX_U16 = 0xffff;

function isEncrypted(p: Payload): p is Extract<Payload, { innerFirstPayload: number }> {
  return !isUnknown(p) && (p.type === PAYLOAD.SK || p.type === PAYLOAD.SKF);
}

function writeHeader(w: Writer, header: IkeHeader, nextPayload: number, totalLength: number): void {
  if (header.spiI.length !== 8 || header.spiR.length !== 8) throw new WireEncodeError('IKE SPIs must be 8 bytes');
  if (header.majorVersion > 15 || header.minorVersion > 15 || header.majorVersion < 0 || header.minorVersion < 0) {
    throw new WireEncodeError('IKE version out of range');
  }
  if (!Number.isInteger(totalLength) || totalLength < IKE_HEADER_LENGTH || totalLength > 0xffffffff) {
    throw new WireEncodeError(`bad total length ${totalLength}`);
  }
  const f = header.flags;
  const flags =
    (f.initiator ? HEADER_FLAG.INITIATOR : 0) |
    (f.response ? HEADER_FLAG.RESPONSE : 0) |
    (f.higherVersion ? HEADER_FLAG.VERSION : 0);
  w.bytes(header.spiI).bytes(header.spiR);
  w.u8(nextPayload).u8((header.majorVersion << 4) | header.minorVersion);
  w.u8(header.exchangeType).u8(flags).u32(header.messageId).u32(totalLength);
}

/** The 28-byte IKE header with `header.nextPayload` and the given total length. */
export function encodeHeader(header: IkeHeader, totalLength: number): Buffer {
  const w = new Writer(IKE_HEADER_LENGTH);
  writeHeader(w, header, header.nextPayload, totalLength);
  return w.finish();
}

function writeGeneric(w: Writer, next: number, critical: boolean, bodyLength: number, type: number): void {
  const len = GENERIC_PAYLOAD_HEADER_LENGTH + bodyLength;
  if (len > MAX_U16) throw new WireEncodeError(`${name(PAYLOAD, type)} payload of ${len} bytes exceeds 65535`);
  w.u8(next)
    .u8(critical ? CRITICAL_FLAG : 0)
    .u16(len);
}

/**
 * Write a payload chain; the last payload's next-payload field is
 * `trailingNext` (NONE, or SK when an encrypted payload follows). An SK/SKF
 * payload must be last and carries its inner first payload type instead.
 */
function writeChain(w: Writer, payloads: readonly Payload[], trailingNext: number): number {
  payloads.forEach((p, i) => {
    const last = i === payloads.length - 1;
    let next = last ? trailingNext : (payloads[i + 1] as Payload).type;
    if (isEncrypted(p)) {
      if (!last || trailingNext !== PAYLOAD.NONE) throw new WireEncodeError(`${name(PAYLOAD, p.type)} must be last`);
      next = p.innerFirstPayload;
    }
    if (!Number.isInteger(p.type) || p.type <= 0 || p.type > 0xff)
      throw new WireEncodeError(`bad payload type ${p.type}`);
    const start = w.length;
    writeGeneric(w, next, p.critical, 0, p.type);
    writePayloadBody(w, p);
    const len = w.length - start;
    if (len > MAX_U16) throw new WireEncodeError(`${name(PAYLOAD, p.type)} payload of ${len} bytes exceeds 65535`);
    w.patchU16(start + 2, len);
  });
  return payloads[0]?.type ?? trailingNext;
}

/**
 * Encode a payload chain (e.g. the plaintext to put inside SK). The bytes are
 * a view meant to be used at once (encrypted into a message), not kept.
 */
export function encodePayloadChain(payloads: readonly Payload[]): { firstType: number; bytes: Buffer } {
  const w = new Writer();
  const firstType = writeChain(w, payloads, PAYLOAD.NONE);
  return { firstType, bytes: w.view() };
}

/** Writes the IKE header over the IKE_HEADER_LENGTH bytes reserved at the start of `w`. */
function patchHeader(w: Writer, header: IkeHeader, nextPayload: number): void {
  const h = new Writer(IKE_HEADER_LENGTH);
  writeHeader(h, header, nextPayload, w.length);
  w.patchBytes(0, h.view());
}

/** Encode a whole message; header.nextPayload and header.length are computed. */
export function encodeMessage(header: IkeHeader, payloads: readonly Payload[]): Buffer {
  const w = new Writer(512);
  w.zeros(IKE_HEADER_LENGTH);
  const firstType = writeChain(w, payloads, PAYLOAD.NONE);
  patchHeader(w, header, firstType);
  return w.finish();
}

/**
 * Bytes of [IKE header with the final total length][unencrypted payloads][SK
 * generic header] for an SK body of `skBodyLength` bytes (IV || ciphertext ||
 * ICV). This prefix is the AEAD associated data and the start of the
 * integrity-checked range; append the body to complete the message. A view to
 * be used at once (the sealed message copies it).
 */
export function encodeSkPrefix(
  header: IkeHeader,
  unencryptedPayloads: readonly Payload[],
  skInnerFirst: number,
  skBodyLength: number,
): Buffer {
  const w = new Writer(64);
  w.zeros(IKE_HEADER_LENGTH);
  const firstType = writeChain(w, unencryptedPayloads, PAYLOAD.SK);
  writeGeneric(w, skInnerFirst, false, skBodyLength, PAYLOAD.SK);
  const h = new Writer(IKE_HEADER_LENGTH);
  writeHeader(h, header, firstType, w.length + skBodyLength);
  w.patchBytes(0, h.view());
  return w.view();
}

/**
 * Bytes of [IKE header][SKF header: generic header, fragment number, total]
 * for a fragment body of `bodyLength` bytes (RFC 7383 §2.5). The inner first
 * payload type goes in fragment 1 only; other fragments carry 0.
 */
export function encodeSkfPrefix(
  header: IkeHeader,
  fragmentNumber: number,
  totalFragments: number,
  innerFirst: number,
  bodyLength: number,
): Buffer {
  if (!(fragmentNumber >= 1 && fragmentNumber <= totalFragments && totalFragments <= MAX_U16)) {
    throw new WireEncodeError(`fragment ${fragmentNumber} of ${totalFragments}`);
  }
  const total = IKE_HEADER_LENGTH + SKF_HEADER_LENGTH + bodyLength;
  const w = new Writer(IKE_HEADER_LENGTH + SKF_HEADER_LENGTH);
  writeHeader(w, header, PAYLOAD.SKF, total);
  writeGeneric(w, fragmentNumber === 1 ? innerFirst : PAYLOAD.NONE, false, 4 + bodyLength, PAYLOAD.SKF);
  w.u16(fragmentNumber).u16(totalFragments);
  return w.view();
}
