import { Reader, Writer } from '../cursor.js';
import { safeDecode } from '../errors.js';
import { ISAKMP_HEADER_LENGTH, ISAKMP_MAJOR_VERSION, V1Flag } from './constants.js';
import { V1EncodeError } from './errors.js';
import type { IsakmpHeader } from './types.js';

const WHERE = 'ISAKMP header';

/** Reads the 28-octet header at the reader's position (no length checks against the datagram). */
export function readIsakmpHeader(r: Reader): IsakmpHeader {
  const start = r.offset;
  const initiatorCookie = r.bytes(8, 'initiator cookie');
  const responderCookie = r.bytes(8, 'responder cookie');
  const nextPayload = r.u8('next payload');
  const version = r.u8('version');
  const majorVersion = version >> 4;
  const minorVersion = version & 0x0f;
  if (majorVersion !== ISAKMP_MAJOR_VERSION) r.fail(`major version ${majorVersion} is not ISAKMP 1`, start + 17);
  const exchangeType = r.u8('exchange type');
  // Undefined flag bits are ignored (RFC 2408 gives receivers no rule) and re-encoded as zero.
  const flagBits = r.u8('flags');
  const messageId = r.u32('message id');
  const length = r.u32('length');
  if (length < ISAKMP_HEADER_LENGTH) r.fail(`length ${length} shorter than the header`, start + 24);
  return {
    initiatorCookie,
    responderCookie,
    nextPayload,
    majorVersion,
    minorVersion,
    exchangeType,
    flags: {
      encryption: (flagBits & V1Flag.ENCRYPTION) !== 0,
      commit: (flagBits & V1Flag.COMMIT) !== 0,
      authOnly: (flagBits & V1Flag.AUTH_ONLY) !== 0,
    },
    messageId,
    length,
  };
}

/**
 * Decodes the ISAKMP header at the start of `buf`. Checks the major version
 * (1) and that the header length field covers at least the header; it does
 * not compare the length field with `buf.length` (decodeIsakmpMessage does).
 */
export function decodeIsakmpHeader(buf: Uint8Array): IsakmpHeader {
  return safeDecode(WHERE, () => readIsakmpHeader(new Reader(buf, 0, buf.length, WHERE)));
}

/** Writes a header using `header.nextPayload` and the given total length. */
export function writeIsakmpHeader(w: Writer, header: Omit<IsakmpHeader, 'length'>, totalLength: number): void {
  if (header.initiatorCookie.length !== 8 || header.responderCookie.length !== 8) {
    throw new V1EncodeError('ISAKMP cookies must be 8 octets');
  }
  w.bytes(header.initiatorCookie);
  w.bytes(header.responderCookie);
  w.u8(header.nextPayload);
  w.u8(((header.majorVersion & 0x0f) << 4) | (header.minorVersion & 0x0f));
  w.u8(header.exchangeType);
  w.u8(
    (header.flags.encryption ? V1Flag.ENCRYPTION : 0) |
      (header.flags.commit ? V1Flag.COMMIT : 0) |
      (header.flags.authOnly ? V1Flag.AUTH_ONLY : 0),
  );
  w.u32(header.messageId);
  w.u32(totalLength);
}

/** Encodes the 28-octet header with the given total message length. */
export function encodeIsakmpHeader(header: Omit<IsakmpHeader, 'length'>, totalLength: number): Buffer {
  const w = new Writer(ISAKMP_HEADER_LENGTH);
  writeIsakmpHeader(w, header, totalLength);
  return w.finish();
}
