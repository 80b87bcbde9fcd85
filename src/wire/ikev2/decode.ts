/**
 * IKEv2 header and payload-chain decoders (RFC 7296 §3.1, §3.2). Strictly
 * bounds-checked; every failure is a MalformedMessageError (or its subclass
 * UnsupportedCriticalPayloadError) naming the payload and absolute offset.
 */
import { ownedCopy, Reader } from '../cursor.js';
import { safeDecode } from '../errors.js';
import {
  CRITICAL_FLAG,
  GENERIC_PAYLOAD_HEADER_LENGTH,
  HEADER_FLAG,
  IKE_MAJOR_VERSION,
  name,
  PAYLOAD,
} from './constants.js';
import { decodePayloadBody } from './decode-payloads.js';
import { UnsupportedCriticalPayloadError } from './errors.js';
import { type IkeHeader, type IkeMessage, isKnownPayloadType, type Payload, type UnknownPayloadType } from './types.js';

function readHeader(r: Reader): IkeHeader {
  const spiI = r.bytes(8, 'initiator SPI');
  const spiR = r.bytes(8, 'responder SPI');
  const nextPayload = r.u8('next payload');
  const version = r.u8('version');
  const exchangeType = r.u8('exchange type');
  const flags = r.u8('flags');
  const messageId = r.u32('message id');
  const length = r.u32('length');
  return {
    spiI,
    spiR,
    nextPayload,
    majorVersion: version >> 4,
    minorVersion: version & 0x0f,
    exchangeType,
    flags: {
      initiator: (flags & HEADER_FLAG.INITIATOR) !== 0,
      response: (flags & HEADER_FLAG.RESPONSE) !== 0,
      higherVersion: (flags & HEADER_FLAG.VERSION) !== 0,
    },
    messageId,
    length,
  };
}

/**
 * Decode the fixed 28-byte IKE header without checking the version or the
 * length against the buffer, so a caller can answer INVALID_MAJOR_VERSION or
 * look up the SA before deciding what to do with the rest.
 */
export function decodeHeader(buf: Uint8Array): IkeHeader {
  return safeDecode('IKE header', () => readHeader(new Reader(buf, 0, buf.length, 'IKE header')));
}

function chain(r: Reader, firstType: number, allowEncrypted: boolean, prefix = ''): Payload[] {
  const payloads: Payload[] = [];
  let type = firstType;
  while (type !== PAYLOAD.NONE) {
    const at = r.offset;
    const t = type;
    const n = payloads.length + 1;
    const label = () => `${prefix}${name(PAYLOAD, t)}#${n}`;
    r.where = label;
    if (r.atEnd) r.fail(`next payload is ${name(PAYLOAD, type)} but the message ends`);
    const next = r.u8('next payload');
    const critical = (r.u8('payload flags') & CRITICAL_FLAG) !== 0;
    const len = r.u16('payload length');
    if (len < GENERIC_PAYLOAD_HEADER_LENGTH) r.fail(`payload length ${len} < 4`, at);
    if (len - GENERIC_PAYLOAD_HEADER_LENGTH > r.remaining) {
      r.fail(`payload length ${len} exceeds the ${r.remaining + GENERIC_PAYLOAD_HEADER_LENGTH} byte(s) left`, at);
    }
    const body = r.sub(len - GENERIC_PAYLOAD_HEADER_LENGTH, label);
    if (!isKnownPayloadType(type)) {
      if (critical) throw new UnsupportedCriticalPayloadError(type, at, label());
      payloads.push({ type: type as UnknownPayloadType, critical, unknown: true, data: body.rest('payload data') });
      type = next;
      continue;
    }
    const encrypted = type === PAYLOAD.SK || type === PAYLOAD.SKF;
    if (encrypted && !allowEncrypted) r.fail(`${name(PAYLOAD, type)} payload inside an encrypted payload`, at);
    payloads.push(decodePayloadBody(type, body, critical, next));
    if (!body.atEnd) body.expectEnd(name(PAYLOAD, type));
    if (encrypted) {
      if (!r.atEnd) r.fail(`${r.remaining} byte(s) after ${name(PAYLOAD, type)}, which must be the last payload`);
      return payloads;
    }
    type = next;
  }
  r.where = undefined;
  if (!r.atEnd) r.fail(`${r.remaining} trailing byte(s) after the last payload`);
  return payloads;
}

/**
 * Decode a whole IKEv2 message. The header length must equal the buffer
 * length, and the major version must be 2 (check `decodeHeader` first to
 * answer INVALID_MAJOR_VERSION). SK/SKF bodies stay opaque.
 */
export function decodeMessage(buf: Uint8Array): IkeMessage {
  return safeDecode('IKEv2 message', () => {
    // One private copy of the datagram; the decoded fields are views into it.
    const r = new Reader(ownedCopy(buf), 0, buf.length, 'IKE header', true);
    const header = readHeader(r);
    if (header.majorVersion !== IKE_MAJOR_VERSION) r.fail(`major version ${header.majorVersion} is not 2`, 17);
    if (header.length !== buf.length) r.fail(`header length ${header.length} != datagram length ${buf.length}`, 24);
    return { header, payloads: chain(r, header.nextPayload, true) };
  });
}

/**
 * Decode a chain of payloads that is not a whole message: the decrypted
 * contents of an SK payload (or reassembled SKF fragments). Offsets in errors
 * are relative to `buf`; `where` labels the container (e.g. `SK`).
 * SK/SKF may not appear inside. Decoded fields are views into a private copy
 * of `buf`, or into `buf` itself when the caller says it is `owned`.
 */
export function decodePayloadChain(buf: Uint8Array, firstType: number, where = 'SK', owned = false): Payload[] {
  return safeDecode(where, () => {
    // `owned`: the caller hands over `buf` (never reused, not a pool slice): decode views into it.
    const mine = owned ? buf : ownedCopy(buf);
    return chain(new Reader(mine, 0, buf.length, where, true), firstType, false, `${where}/`);
  });
}
