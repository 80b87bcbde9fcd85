/**
 * A small, strict DER reader for the parts of an X.509 certificate that IKE
 * needs and node:crypto does not expose as bytes: the issuer and subject Name
 * DER, the SubjectPublicKeyInfo DER, validity, and the subjectAltName,
 * basicConstraints and keyUsage extensions.
 *
 * Strict means DER, not BER: definite minimal lengths, low tag numbers, no
 * trailing bytes after a structure. Every malformed input raises one
 * CoatiError with code CERT_MALFORMED; nothing else escapes.
 */
import { CoatiError } from '../errors.js';

export const CERT_MALFORMED = 'CERT_MALFORMED';

/** One TLV: `raw` is the whole encoding, `body` the contents. */
export interface Tlv {
  tag: number;
  raw: Buffer;
  body: Buffer;
}

export function malformed(what: string): CoatiError {
  return new CoatiError(CERT_MALFORMED, `malformed certificate: ${what}`);
}

/** Reads one TLV at `off`; throws CERT_MALFORMED if it does not fit or is not DER. */
export function readTlv(buf: Buffer, off: number, what: string): Tlv {
  const tag = buf[off];
  const first = buf[off + 1];
  if (tag === undefined || first === undefined) throw malformed(`${what}: truncated header`);
  if ((tag & 0x1f) === 0x1f) throw malformed(`${what}: high tag numbers are not used in certificates`);
  let len = first;
  let start = off + 2;
  if (first & 0x80) {
    const n = first & 0x7f;
    if (n === 0) throw malformed(`${what}: indefinite length is not DER`);
    if (n > 4) throw malformed(`${what}: length of ${n} bytes`);
    if (start + n > buf.length) throw malformed(`${what}: truncated length`);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (buf[start + i] as number);
    if (buf[start] === 0 || len < 0x80) throw malformed(`${what}: length not minimally encoded`);
    start += n;
  }
  const end = start + len;
  if (end > buf.length) throw malformed(`${what}: length ${len} runs past the end`);
  return { tag, raw: buf.subarray(off, end), body: buf.subarray(start, end) };
}

/** Reads exactly one TLV spanning the whole buffer, optionally of a given tag. */
export function readOnly(buf: Buffer, what: string, tag?: number): Tlv {
  const t = readTlv(buf, 0, what);
  if (t.raw.length !== buf.length) throw malformed(`${what}: ${buf.length - t.raw.length} trailing bytes`);
  if (tag !== undefined && t.tag !== tag)
    throw malformed(`${what}: tag 0x${t.tag.toString(16)}, expected 0x${tag.toString(16)}`);
  return t;
}

/** The TLVs inside a constructed value's body. */
export function children(body: Buffer, what: string): Tlv[] {
  const out: Tlv[] = [];
  for (let off = 0; off < body.length; ) {
    const t = readTlv(body, off, what);
    out.push(t);
    off += t.raw.length;
  }
  return out;
}

/** Sequential access to the children of a constructed value. */
export class DerCursor {
  private i = 0;
  private readonly items: Tlv[];
  constructor(
    body: Buffer,
    private readonly what: string,
  ) {
    this.items = children(body, what);
  }
  peekTag(): number | undefined {
    return this.items[this.i]?.tag;
  }
  next(tag: number, field: string): Tlv {
    const t = this.items[this.i];
    if (!t) throw malformed(`${this.what}: missing ${field}`);
    if (t.tag !== tag) {
      throw malformed(`${this.what}: ${field} has tag 0x${t.tag.toString(16)}, expected 0x${tag.toString(16)}`);
    }
    this.i++;
    return t;
  }
  optional(tag: number): Tlv | undefined {
    const t = this.items[this.i];
    if (t?.tag !== tag) return undefined;
    this.i++;
    return t;
  }
  end(): void {
    if (this.i !== this.items.length) throw malformed(`${this.what}: unexpected extra element`);
  }
}

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  T61_STRING: 0x14,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  UNIVERSAL_STRING: 0x1c,
  BMP_STRING: 0x1e,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** Dotted OID text; strict (no leading 0x80 octets, no truncated arc). */
export function decodeOid(body: Buffer, what: string): string {
  if (body.length === 0) throw malformed(`${what}: empty OID`);
  const arcs: number[] = [];
  let v = 0;
  let fresh = true;
  for (const b of body) {
    if (fresh && b === 0x80) throw malformed(`${what}: OID arc not minimally encoded`);
    if (v > 0x1fffffffffff) throw malformed(`${what}: OID arc too large`);
    v = v * 128 + (b & 0x7f);
    fresh = !(b & 0x80);
    if (fresh) {
      arcs.push(v);
      v = 0;
    }
  }
  if (!fresh) throw malformed(`${what}: truncated OID`);
  const first = arcs[0] as number;
  const head = first < 40 ? [0, first] : first < 80 ? [1, first - 40] : [2, first - 80];
  return [...head, ...arcs.slice(1)].join('.');
}

export function decodeBoolean(t: Tlv, what: string): boolean {
  if (t.body.length !== 1 || (t.body[0] !== 0 && t.body[0] !== 0xff)) throw malformed(`${what}: not a DER BOOLEAN`);
  return t.body[0] === 0xff;
}

/** A small non-negative INTEGER (pathLenConstraint and the like). */
export function decodeSmallUint(t: Tlv, what: string): number {
  const b = t.body;
  if (b.length === 0 || b.length > 4) throw malformed(`${what}: INTEGER of ${b.length} bytes`);
  if (b[0]! & 0x80) throw malformed(`${what}: negative INTEGER`);
  if (b.length > 1 && b[0] === 0 && !(b[1]! & 0x80)) throw malformed(`${what}: INTEGER not minimally encoded`);
  return b.readUIntBE(0, b.length);
}

/** BIT STRING contents as bytes plus the count of unused trailing bits. */
export function decodeBitString(t: Tlv, what: string): { bytes: Buffer; unused: number } {
  const unused = t.body[0];
  if (unused === undefined || unused > 7) throw malformed(`${what}: bad BIT STRING`);
  const bytes = t.body.subarray(1);
  if (bytes.length === 0 && unused !== 0) throw malformed(`${what}: bad BIT STRING`);
  const last = bytes[bytes.length - 1];
  if (last !== undefined && (last & ((1 << unused) - 1)) !== 0) throw malformed(`${what}: BIT STRING padding not zero`);
  return { bytes, unused };
}

const two = (s: string, i: number) => Number(s.slice(i, i + 2));

/** UTCTime / GeneralizedTime in the RFC 5280 profile (Z, seconds, no fraction) → ms since epoch. */
export function decodeTime(t: Tlv, what: string): number {
  const s = t.body.toString('latin1');
  let year: number;
  let rest: string;
  if (t.tag === TAG.UTC_TIME && /^\d{12}Z$/.test(s)) {
    const yy = two(s, 0);
    year = yy < 50 ? 2000 + yy : 1900 + yy;
    rest = s.slice(2);
  } else if (t.tag === TAG.GENERALIZED_TIME && /^\d{14}Z$/.test(s)) {
    year = Number(s.slice(0, 4));
    rest = s.slice(4);
  } else {
    throw malformed(`${what}: not an RFC 5280 UTCTime or GeneralizedTime`);
  }
  const [mo, d, h, mi, se] = [two(rest, 0), two(rest, 2), two(rest, 4), two(rest, 6), two(rest, 8)];
  const ms = Date.UTC(year, mo - 1, d, h, mi, se);
  const check = new Date(ms);
  if (
    mo < 1 ||
    check.getUTCMonth() !== mo - 1 ||
    check.getUTCDate() !== d ||
    h > 23 ||
    mi > 59 ||
    se > 59 ||
    check.getUTCFullYear() !== year
  ) {
    throw malformed(`${what}: time "${s}" out of range`);
  }
  return ms;
}
