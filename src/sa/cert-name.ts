/**
 * X.501 Names: structural validation and an RFC 4514-style text form for
 * logs. Comparisons elsewhere are on the DER bytes, never on this text.
 */
import { children, decodeOid, malformed, readOnly, TAG } from './cert-der.js';

const SHORT_NAMES: Record<string, string> = {
  '2.5.4.3': 'CN',
  '2.5.4.4': 'SN',
  '2.5.4.5': 'serialNumber',
  '2.5.4.6': 'C',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.9': 'STREET',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '2.5.4.12': 'title',
  '2.5.4.42': 'GN',
  '2.5.4.46': 'dnQualifier',
  '0.9.2342.19200300.100.1.1': 'UID',
  '0.9.2342.19200300.100.1.25': 'DC',
  '1.2.840.113549.1.9.1': 'emailAddress',
};

/** Value of a directory string, or undefined when it is not a string type we decode. */
function stringValue(tag: number, body: Buffer): string | undefined {
  switch (tag) {
    case TAG.UTF8_STRING:
      return body.toString('utf8');
    case TAG.PRINTABLE_STRING:
    case TAG.IA5_STRING:
    case TAG.T61_STRING:
      return body.toString('latin1');
    case TAG.BMP_STRING: {
      if (body.length % 2) return undefined;
      const swapped = Buffer.from(body).swap16();
      return swapped.toString('utf16le');
    }
    case TAG.UNIVERSAL_STRING: {
      if (body.length % 4) return undefined;
      let s = '';
      for (let i = 0; i < body.length; i += 4) {
        const cp = body.readUInt32BE(i);
        if (cp > 0x10ffff) return undefined;
        s += String.fromCodePoint(cp);
      }
      return s;
    }
    default:
      return undefined;
  }
}

/** RFC 4514 section 2.4 escaping, plus control characters as \XX for logs. */
function escapeValue(v: string): string {
  let out = '';
  for (let i = 0; i < v.length; i++) {
    const c = v[i] as string;
    const code = c.charCodeAt(0);
    if (code < 0x20 || code === 0x7f) out += `\\${code.toString(16).padStart(2, '0')}`;
    else if (',+"\\<>;='.includes(c)) out += `\\${c}`;
    else if ((i === 0 && (c === '#' || c === ' ')) || (i === v.length - 1 && c === ' ')) out += `\\${c}`;
    else out += c;
  }
  return out;
}

export interface NameAttribute {
  oid: string;
  /** The value's full TLV. */
  value: Buffer;
}

/** RDNs in encoding order (most general first); each RDN is a non-empty SET of attributes. */
export function parseName(der: Buffer, what: string): NameAttribute[][] {
  const name = readOnly(der, what, TAG.SEQUENCE);
  return children(name.body, what).map((rdn) => {
    if (rdn.tag !== TAG.SET) throw malformed(`${what}: RDN is not a SET`);
    const atvs = children(rdn.body, what);
    if (atvs.length === 0) throw malformed(`${what}: empty RDN`);
    return atvs.map((atv) => {
      if (atv.tag !== TAG.SEQUENCE) throw malformed(`${what}: attribute is not a SEQUENCE`);
      const parts = children(atv.body, what);
      const [type, value] = parts;
      if (parts.length !== 2 || !type || !value || type.tag !== TAG.OID) {
        throw malformed(`${what}: attribute is not (OID, value)`);
      }
      return { oid: decodeOid(type.body, what), value: value.raw };
    });
  });
}

/** RFC 4514-style text (most specific RDN first), e.g. `CN=left,O=IKE test rig,C=XX`. */
export function nameToText(der: Buffer, what = 'Name'): string {
  const rdns = parseName(der, what);
  return rdns
    .slice()
    .reverse()
    .map((rdn) =>
      rdn
        .map((a) => {
          const key = SHORT_NAMES[a.oid] ?? a.oid;
          const inner = readOnly(a.value, what);
          const s = stringValue(inner.tag, inner.body);
          return `${key}=${s === undefined ? `#${a.value.toString('hex')}` : escapeValue(s)}`;
        })
        .join('+'),
    )
    .join(',');
}
