/**
 * SA data attributes (RFC 2408 3.3): TV form (AF bit set, 16-bit value) and
 * TLV form (16-bit length, variable value).
 */
import type { Reader, Writer } from '../cursor.js';
import { V1EncodeError } from './errors.js';
import type { V1Attribute } from './types.js';

const AF_BIT = 0x8000;

/** Reads attributes until the reader is exhausted. */
export function readV1Attributes(r: Reader): V1Attribute[] {
  const out: V1Attribute[] = [];
  while (!r.atEnd) {
    const word = r.u16('attribute type');
    const type = word & 0x7fff;
    if (word & AF_BIT) {
      out.push({ type, tv: true, value: r.u16('TV attribute value') });
    } else {
      const len = r.u16('TLV attribute length');
      out.push({ type, tv: false, value: r.bytes(len, `TLV attribute ${type} value`) });
    }
  }
  return out;
}

export function writeV1Attributes(w: Writer, attrs: readonly V1Attribute[]): void {
  for (const a of attrs) {
    if (!Number.isInteger(a.type) || a.type < 0 || a.type > 0x7fff) {
      throw new V1EncodeError(`attribute type ${a.type} out of range`);
    }
    if (a.tv) {
      if (!Number.isInteger(a.value) || a.value < 0 || a.value > 0xffff) {
        throw new V1EncodeError(`TV attribute ${a.type} value ${a.value} does not fit 16 bits`);
      }
      w.u16(AF_BIT | a.type).u16(a.value);
    } else {
      if (a.value.length > 0xffff) throw new V1EncodeError(`TLV attribute ${a.type} value too long`);
      w.u16(a.type).u16(a.value.length).bytes(a.value);
    }
  }
}

/**
 * Numeric value of an attribute: the TV value, or a TLV value of 1..8
 * octets read big-endian (e.g. a 4-octet life duration). Undefined for
 * empty values and values beyond Number.MAX_SAFE_INTEGER.
 */
export function v1AttributeNumber(a: V1Attribute): number | undefined {
  if (a.tv) return a.value;
  if (a.value.length === 0 || a.value.length > 8) return undefined;
  let v = 0n;
  for (const byte of a.value) v = (v << 8n) | BigInt(byte);
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : undefined;
}

/**
 * Builds a numeric attribute in the shortest form: TV when the value fits 16
 * bits, else TLV with 4 octets (8 when it exceeds 32 bits).
 */
export function v1Attribute(type: number, value: number): V1Attribute {
  if (!Number.isSafeInteger(value) || value < 0) throw new V1EncodeError(`attribute ${type} value ${value} invalid`);
  if (value <= 0xffff) return { type, tv: true, value };
  if (value <= 0xffffffff) {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(value);
    return { type, tv: false, value: b };
  }
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(value));
  return { type, tv: false, value: b };
}

/** First attribute of `type` as a number (see v1AttributeNumber). */
export function findV1AttributeNumber(attrs: readonly V1Attribute[], type: number): number | undefined {
  const a = attrs.find((x) => x.type === type);
  return a ? v1AttributeNumber(a) : undefined;
}
