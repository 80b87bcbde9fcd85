/**
 * Payload chains: generic headers (RFC 2408 3.2) linked by next-payload.
 * Used for unencrypted message bodies and for decrypted bodies, which may
 * end in CBC padding (RFC 2409 5.3: receivers accept padding).
 */
import { Reader, Writer } from '../cursor.js';
import { safeDecode } from '../errors.js';
import { name, V1_GENERIC_HEADER_LENGTH, V1PayloadType } from './constants.js';
import { V1EncodeError } from './errors.js';
import { readV1PayloadBody, writeV1PayloadBody } from './payloads.js';
import type { V1Payload } from './types.js';

export interface V1ChainOptions {
  /**
   * Accept bytes after the payload whose next-payload is 0 (decrypted
   * bodies carry CBC padding). Default false: trailing bytes are malformed.
   */
  allowTrailingPadding?: boolean;
}

export interface V1PayloadChain {
  payloads: V1Payload[];
  /** Octets after the last payload (padding); 0 unless allowTrailingPadding. */
  trailing: number;
}

/** Label for errors and logs, e.g. `N#3`. */
export function v1PayloadLabel(type: number, index: number): string {
  return `${name(V1PayloadType, type)}#${index + 1}`;
}

/** Reads a chain from the reader's position to its end. */
export function readV1PayloadChain(r: Reader, firstType: number, opts: V1ChainOptions = {}): V1PayloadChain {
  const payloads: V1Payload[] = [];
  let type = firstType;
  const prefix = r.where ? `${r.where}/` : '';
  while (type !== V1PayloadType.NONE) {
    const at = r.offset;
    const where = `${prefix}${v1PayloadLabel(type, payloads.length)}`;
    r.where = where;
    const next = r.u8('next payload');
    r.u8('reserved'); // RFC 2408: unused, set to 0; ignored on receipt, written as 0.
    const len = r.u16('payload length');
    if (len < V1_GENERIC_HEADER_LENGTH) r.fail(`payload length ${len} < ${V1_GENERIC_HEADER_LENGTH}`, at + 2);
    if (len - V1_GENERIC_HEADER_LENGTH > r.remaining) {
      r.fail(`payload length ${len} exceeds the ${r.remaining + V1_GENERIC_HEADER_LENGTH} octet(s) left`, at + 2);
    }
    const body = r.sub(len - V1_GENERIC_HEADER_LENGTH, where);
    payloads.push(readV1PayloadBody(type, body, at));
    type = next;
  }
  r.where = prefix ? prefix.slice(0, -1) : undefined;
  const trailing = r.remaining;
  if (trailing > 0 && !opts.allowTrailingPadding) r.fail(`${trailing} octet(s) after the last payload`);
  return { payloads, trailing };
}

/**
 * Decodes a payload chain occupying `buf` (typically a decrypted body).
 * Offsets in errors are relative to `buf`.
 */
export function decodeV1PayloadChain(
  buf: Uint8Array,
  firstType: number,
  where = 'payloads',
  opts: V1ChainOptions = {},
): V1PayloadChain {
  return safeDecode(where, () => readV1PayloadChain(new Reader(buf, 0, buf.length, where), firstType, opts));
}

/** Writes the chain; returns the first payload's type (0 for an empty chain). */
export function writeV1PayloadChain(w: Writer, payloads: readonly V1Payload[]): number {
  payloads.forEach((p, i) => {
    const start = w.length;
    w.u8(payloads[i + 1]?.type ?? V1PayloadType.NONE).u8(0);
    const lenAt = w.reserve(2);
    writeV1PayloadBody(w, p);
    const len = w.length - start;
    if (len > 0xffff) throw new V1EncodeError(`${v1PayloadLabel(p.type, i)} length ${len} exceeds 65535`);
    w.patchU16(lenAt, len);
  });
  return payloads[0]?.type ?? V1PayloadType.NONE;
}

/** Encodes a chain with next-payload and length fields filled in. */
export function encodeV1PayloadChain(payloads: readonly V1Payload[]): { firstType: number; bytes: Buffer } {
  const w = new Writer(512);
  const firstType = writeV1PayloadChain(w, payloads);
  return { firstType, bytes: w.finish() };
}
