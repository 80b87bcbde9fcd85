/**
 * Whole ISAKMP messages: header plus payload chain, or header plus opaque
 * ciphertext when the E flag is set.
 *
 * Length policy: the header length must equal the datagram length. strongSwan
 * and ike-scan send exact lengths, and a mismatch is what RFC 2408's
 * UNEQUAL-PAYLOAD-LENGTHS describes; `allowTrailingBytes` exists for peers
 * that pad datagrams, in which case bytes past the header length are ignored.
 * A header length beyond the datagram is always malformed.
 */
import { Reader, Writer } from '../cursor.js';
import { safeDecode } from '../errors.js';
import { readV1PayloadChain, writeV1PayloadChain } from './chain.js';
import { ISAKMP_HEADER_LENGTH } from './constants.js';
import { V1EncodeError } from './errors.js';
import { readIsakmpHeader, writeIsakmpHeader } from './header.js';
import type { IsakmpHeaderFields, IsakmpMessage, V1Payload } from './types.js';

export interface IsakmpDecodeOptions {
  /** Tolerate datagram bytes past the header length (ignored). Default false. */
  allowTrailingBytes?: boolean;
}

/** Decodes a datagram; an E-flag message keeps its body opaque. */
export function decodeIsakmpMessage(buf: Uint8Array, opts: IsakmpDecodeOptions = {}): IsakmpMessage {
  return safeDecode('ISAKMP message', () => {
    const hr = new Reader(buf, 0, buf.length, 'ISAKMP header');
    const header = readIsakmpHeader(hr);
    if (header.length > buf.length) hr.fail(`length ${header.length} exceeds datagram of ${buf.length}`, 24);
    if (header.length < buf.length && !opts.allowTrailingBytes) {
      hr.fail(`length ${header.length} shorter than datagram of ${buf.length}`, 24);
    }
    const body = new Reader(buf, ISAKMP_HEADER_LENGTH, header.length);
    if (header.flags.encryption) {
      if (body.atEnd) hr.fail('encrypted message without a body', ISAKMP_HEADER_LENGTH);
      return { header, encrypted: body.rest('encrypted body') };
    }
    const { payloads } = readV1PayloadChain(body, header.nextPayload);
    return { header, payloads };
  });
}

function checkLength(total: number): void {
  if (total > 0xffffffff) throw new V1EncodeError(`message length ${total} exceeds 32 bits`);
}

/**
 * Encodes an unencrypted message. Next-payload and length come from the
 * payloads; the E flag must be clear (use encodeEncryptedIsakmp).
 */
export function encodeIsakmpMessage(header: IsakmpHeaderFields, payloads: readonly V1Payload[]): Buffer {
  if (header.flags.encryption)
    throw new V1EncodeError('encodeIsakmpMessage with the E flag: use encodeEncryptedIsakmp');
  const body = new Writer(512);
  const firstType = writeV1PayloadChain(body, payloads);
  const bodyBytes = body.finish();
  checkLength(ISAKMP_HEADER_LENGTH + bodyBytes.length);
  const w = new Writer(ISAKMP_HEADER_LENGTH + bodyBytes.length);
  writeIsakmpHeader(w, { ...header, nextPayload: firstType }, ISAKMP_HEADER_LENGTH + bodyBytes.length);
  w.bytes(bodyBytes);
  return w.finish();
}

/**
 * Encodes an E-flag message around ciphertext produced by the crypto layer;
 * `firstType` is the type of the first (encrypted) payload. The E flag is
 * set regardless of `header.flags.encryption`.
 */
export function encodeEncryptedIsakmp(header: IsakmpHeaderFields, firstType: number, ciphertext: Uint8Array): Buffer {
  if (ciphertext.length === 0) throw new V1EncodeError('empty ciphertext');
  const total = ISAKMP_HEADER_LENGTH + ciphertext.length;
  checkLength(total);
  const w = new Writer(total);
  writeIsakmpHeader(w, { ...header, flags: { ...header.flags, encryption: true }, nextPayload: firstType }, total);
  w.bytes(ciphertext);
  return w.finish();
}
