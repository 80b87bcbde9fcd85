/**
 * The little DER needed for RFC 7427 AlgorithmIdentifiers: OIDs, NULL
 * parameters and RSASSA-PSS-params. Parsing never throws; it returns
 * undefined for anything malformed.
 */

export interface PssParams {
  hashOid: string;
  mgfHashOid: string;
  saltLength: number;
}

export interface AlgorithmIdentifier {
  oid: string;
  pss?: PssParams;
}

function tlv(tag: number, body: Buffer): Buffer {
  const len = body.length;
  const head = len < 0x80 ? Buffer.from([tag, len]) : Buffer.from([tag, 0x81, len]);
  return Buffer.concat([head, body]);
}

function encodeOid(oid: string): Buffer {
  const parts = oid.split('.').map(Number);
  const bytes = [40 * (parts[0] ?? 0) + (parts[1] ?? 0)];
  for (const p of parts.slice(2)) {
    const stack = [p & 0x7f];
    for (let v = p >>> 7; v > 0; v >>>= 7) stack.unshift((v & 0x7f) | 0x80);
    bytes.push(...stack);
  }
  return tlv(0x06, Buffer.from(bytes));
}

const NULL = Buffer.from([0x05, 0x00]);
const MGF1 = '1.2.840.113549.1.1.8';

const hashAlgId = (oid: string) => tlv(0x30, Buffer.concat([encodeOid(oid), NULL]));

export function encodeAlgorithmIdentifier(a: { oid: string; nullParams?: boolean; pss?: PssParams }): Buffer {
  const parts = [encodeOid(a.oid)];
  if (a.pss) {
    parts.push(
      tlv(
        0x30,
        Buffer.concat([
          tlv(0xa0, hashAlgId(a.pss.hashOid)),
          tlv(0xa1, tlv(0x30, Buffer.concat([encodeOid(MGF1), hashAlgId(a.pss.mgfHashOid)]))),
          tlv(0xa2, tlv(0x02, Buffer.from([a.pss.saltLength]))),
        ]),
      ),
    );
  } else if (a.nullParams) parts.push(NULL);
  return tlv(0x30, Buffer.concat(parts));
}

interface Node {
  tag: number;
  body: Buffer;
  end: number;
}

function read(buf: Buffer, off: number): Node | undefined {
  const tag = buf[off];
  let len = buf[off + 1];
  if (tag === undefined || len === undefined) return undefined;
  let start = off + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n < 1 || n > 2 || start + n > buf.length) return undefined;
    len = 0;
    for (let i = 0; i < n; i++) len = (len << 8) | (buf[start + i] ?? 0);
    start += n;
  }
  if (start + len > buf.length) return undefined;
  return { tag, body: buf.subarray(start, start + len), end: start + len };
}

function children(body: Buffer): Node[] | undefined {
  const out: Node[] = [];
  for (let off = 0; off < body.length; ) {
    const n = read(body, off);
    if (!n) return undefined;
    out.push(n);
    off = n.end;
  }
  return out;
}

function decodeOid(n: Node | undefined): string | undefined {
  if (n?.tag !== 0x06 || n.body.length === 0) return undefined;
  const first = n.body[0] ?? 0;
  const parts = [Math.min(2, Math.floor(first / 40)), first - 40 * Math.min(2, Math.floor(first / 40))];
  let v = 0;
  for (const b of n.body.subarray(1)) {
    v = v * 128 + (b & 0x7f);
    if (!(b & 0x80)) {
      parts.push(v);
      v = 0;
    }
  }
  return parts.join('.');
}

function hashOidOf(n: Node | undefined): string | undefined {
  if (n?.tag !== 0x30) return undefined;
  return decodeOid(children(n.body)?.[0]);
}

function parsePss(n: Node | undefined): PssParams | undefined {
  // Defaults per RFC 8017: SHA-1, MGF1-SHA-1, salt 20.
  const p: PssParams = { hashOid: '1.3.14.3.2.26', mgfHashOid: '1.3.14.3.2.26', saltLength: 20 };
  if (!n) return p;
  if (n.tag !== 0x30) return undefined;
  const fields = children(n.body);
  if (!fields) return undefined;
  for (const f of fields) {
    const inner = read(f.body, 0);
    if (!inner) return undefined;
    if (f.tag === 0xa0) {
      const h = hashOidOf(inner);
      if (!h) return undefined;
      p.hashOid = h;
    } else if (f.tag === 0xa1) {
      const mgf = inner.tag === 0x30 ? children(inner.body) : undefined;
      if (!mgf || decodeOid(mgf[0]) !== MGF1) return undefined;
      const h = hashOidOf(mgf[1]);
      if (!h) return undefined;
      p.mgfHashOid = h;
    } else if (f.tag === 0xa2) {
      if (inner.tag !== 0x02 || inner.body.length < 1 || inner.body.length > 2) return undefined;
      p.saltLength = inner.body.readUIntBE(0, inner.body.length);
    } else if (f.tag === 0xa3) {
      if (inner.tag !== 0x02 || inner.body.length !== 1 || inner.body[0] !== 1) return undefined;
    } else return undefined;
  }
  return p;
}

/** Parse an AlgorithmIdentifier that must span all of `buf`. */
export function parseAlgorithmIdentifier(buf: Buffer): AlgorithmIdentifier | undefined {
  const seq = read(buf, 0);
  if (seq?.tag !== 0x30 || seq.end !== buf.length) return undefined;
  const parts = children(seq.body);
  const oid = decodeOid(parts?.[0]);
  if (!parts || !oid || parts.length > 2) return undefined;
  if (oid === '1.2.840.113549.1.1.10') {
    const pss = parsePss(parts[1]);
    return pss ? { oid, pss } : undefined;
  }
  const params = parts[1];
  if (params && !(params.tag === 0x05 && params.body.length === 0)) return undefined;
  return { oid };
}
