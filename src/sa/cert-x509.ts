/**
 * The X.509 v3 structure (RFC 5280 section 4.1) read with the strict DER
 * reader: just the fields IKE authentication needs, as raw DER where they are
 * compared byte-wise (names, SubjectPublicKeyInfo).
 */
import { bytesToIp } from '../util/ip.js';
import {
  children,
  DerCursor,
  decodeBitString,
  decodeBoolean,
  decodeOid,
  decodeSmallUint,
  decodeTime,
  malformed,
  readOnly,
  TAG,
  type Tlv,
} from './cert-der.js';
import { parseName } from './cert-name.js';

export const OID = {
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
} as const;

export interface SubjectAltNames {
  dns: string[];
  email: string[];
  /** Text form (dotted quad / RFC 5952). */
  ip: string[];
  /** directoryName entries as Name DER. */
  dirNames: Buffer[];
}

/** keyUsage bits (RFC 5280 4.2.1.3) we look at. */
export interface KeyUsage {
  digitalSignature: boolean;
  nonRepudiation: boolean;
  keyCertSign: boolean;
  cRLSign: boolean;
}

export interface ParsedCertificate {
  version: 1 | 2 | 3;
  serialHex: string;
  tbsDer: Buffer;
  signatureAlgorithmOid: string;
  issuerDer: Buffer;
  subjectDer: Buffer;
  notBefore: number;
  notAfter: number;
  spkiDer: Buffer;
  spkiAlgorithmOid: string;
  san: SubjectAltNames;
  basicConstraints?: { ca: boolean; pathLen?: number };
  keyUsage?: KeyUsage;
  /** extKeyUsage purposes (OIDs), when present. Exposed, not enforced (RFC 4945 5.1.3.12). */
  extKeyUsage?: string[];
  /** OIDs of critical extensions this reader does not process. */
  unknownCritical: string[];
}

function algorithmOid(t: Tlv, what: string): string {
  const c = new DerCursor(t.body, what);
  const oid = decodeOid(c.next(TAG.OID, 'algorithm').body, what);
  // parameters: ANY, optional; we only need the OID
  return oid;
}

function parseSan(value: Buffer, san: SubjectAltNames): void {
  const what = 'subjectAltName';
  const names = children(readOnly(value, what, TAG.SEQUENCE).body, what);
  if (names.length === 0) throw malformed(`${what}: empty GeneralNames`);
  for (const n of names) {
    switch (n.tag) {
      case 0x81: // rfc822Name, IA5String
        san.email.push(ia5(n.body, what));
        break;
      case 0x82: // dNSName
        san.dns.push(ia5(n.body, what));
        break;
      case 0x87: // iPAddress: 4 or 16 octets (8 or 32 only in name constraints)
        if (n.body.length !== 4 && n.body.length !== 16)
          throw malformed(`${what}: iPAddress of ${n.body.length} bytes`);
        san.ip.push(bytesToIp(n.body));
        break;
      case 0xa4: // directoryName, EXPLICIT Name
        {
          const name = readOnly(n.body, what, TAG.SEQUENCE);
          parseName(name.raw, what);
          san.dirNames.push(name.raw);
        }
        break;
      default:
        // otherName, x400Address, ediPartyName, URI, registeredID: not used for IKE IDs
        if ((n.tag & 0xc0) !== 0x80) throw malformed(`${what}: GeneralName with tag 0x${n.tag.toString(16)}`);
    }
  }
}

function ia5(b: Buffer, what: string): string {
  for (const c of b) if (c > 0x7e || c < 0x20) throw malformed(`${what}: non-printable IA5String`);
  return b.toString('latin1');
}

function parseBasicConstraints(value: Buffer): { ca: boolean; pathLen?: number } {
  const what = 'basicConstraints';
  const c = new DerCursor(readOnly(value, what, TAG.SEQUENCE).body, what);
  const caTlv = c.optional(TAG.BOOLEAN);
  const ca = caTlv ? decodeBoolean(caTlv, what) : false;
  if (caTlv && !ca) throw malformed(`${what}: DEFAULT FALSE encoded explicitly`);
  const pl = c.optional(TAG.INTEGER);
  c.end();
  return pl ? { ca, pathLen: decodeSmallUint(pl, what) } : { ca };
}

function parseKeyUsage(value: Buffer): KeyUsage {
  const what = 'keyUsage';
  const { bytes } = decodeBitString(readOnly(value, what, TAG.BIT_STRING), what);
  const b0 = bytes[0] ?? 0;
  return {
    digitalSignature: !!(b0 & 0x80),
    nonRepudiation: !!(b0 & 0x40),
    keyCertSign: !!(b0 & 0x04),
    cRLSign: !!(b0 & 0x02),
  };
}

function parseExtKeyUsage(value: Buffer): string[] {
  const what = 'extKeyUsage';
  const oids = children(readOnly(value, what, TAG.SEQUENCE).body, what);
  if (oids.length === 0) throw malformed(`${what}: empty`);
  return oids.map((o) => {
    if (o.tag !== TAG.OID) throw malformed(`${what}: KeyPurposeId is not an OID`);
    return decodeOid(o.body, what);
  });
}

function parseExtensions(outer: Tlv, cert: ParsedCertificate): void {
  const what = 'extensions';
  const list = children(readOnly(outer.body, what, TAG.SEQUENCE).body, what);
  if (list.length === 0) throw malformed(`${what}: empty`);
  const seen = new Set<string>();
  for (const ext of list) {
    if (ext.tag !== TAG.SEQUENCE) throw malformed(`${what}: Extension is not a SEQUENCE`);
    const c = new DerCursor(ext.body, 'Extension');
    const oid = decodeOid(c.next(TAG.OID, 'extnID').body, what);
    const critTlv = c.optional(TAG.BOOLEAN);
    const critical = critTlv ? decodeBoolean(critTlv, what) : false;
    if (critTlv && !critical) throw malformed(`${what}: ${oid} encodes DEFAULT FALSE critical`);
    const value = c.next(TAG.OCTET_STRING, 'extnValue').body;
    c.end();
    if (seen.has(oid)) throw malformed(`${what}: ${oid} appears twice`);
    seen.add(oid);
    if (oid === OID.subjectAltName) parseSan(value, cert.san);
    else if (oid === OID.basicConstraints) cert.basicConstraints = parseBasicConstraints(value);
    else if (oid === OID.keyUsage) cert.keyUsage = parseKeyUsage(value);
    else if (oid === OID.extKeyUsage) cert.extKeyUsage = parseExtKeyUsage(value);
    else if (critical) cert.unknownCritical.push(oid);
  }
}

/** Parses a DER certificate; throws CoatiError CERT_MALFORMED on anything that is not strict DER X.509. */
export function parseCertificateDer(der: Buffer): ParsedCertificate {
  const top = new DerCursor(readOnly(der, 'Certificate', TAG.SEQUENCE).body, 'Certificate');
  const tbs = top.next(TAG.SEQUENCE, 'tbsCertificate');
  const outerAlg = algorithmOid(top.next(TAG.SEQUENCE, 'signatureAlgorithm'), 'signatureAlgorithm');
  decodeBitString(top.next(TAG.BIT_STRING, 'signatureValue'), 'signatureValue');
  top.end();

  const c = new DerCursor(tbs.body, 'TBSCertificate');
  let version: 1 | 2 | 3 = 1;
  const v = c.optional(0xa0);
  if (v) {
    const n = decodeSmallUint(readOnly(v.body, 'version', TAG.INTEGER), 'version');
    if (n !== 1 && n !== 2) throw malformed(`version ${n + 1} (v1 must omit the field)`);
    version = (n + 1) as 2 | 3;
  }
  const serial = c.next(TAG.INTEGER, 'serialNumber');
  if (serial.body.length === 0 || serial.body.length > 21)
    throw malformed(`serialNumber of ${serial.body.length} bytes`);
  const innerAlg = algorithmOid(c.next(TAG.SEQUENCE, 'signature'), 'signature');
  if (innerAlg !== outerAlg) throw malformed('signature algorithm differs between TBSCertificate and Certificate');
  const issuer = c.next(TAG.SEQUENCE, 'issuer');
  parseName(issuer.raw, 'issuer');
  const validity = new DerCursor(c.next(TAG.SEQUENCE, 'validity').body, 'validity');
  const nb = validity.next(validity.peekTag() === TAG.UTC_TIME ? TAG.UTC_TIME : TAG.GENERALIZED_TIME, 'notBefore');
  const na = validity.next(validity.peekTag() === TAG.UTC_TIME ? TAG.UTC_TIME : TAG.GENERALIZED_TIME, 'notAfter');
  validity.end();
  const subject = c.next(TAG.SEQUENCE, 'subject');
  parseName(subject.raw, 'subject');
  const spki = c.next(TAG.SEQUENCE, 'subjectPublicKeyInfo');
  const sc = new DerCursor(spki.body, 'subjectPublicKeyInfo');
  const spkiAlg = algorithmOid(sc.next(TAG.SEQUENCE, 'algorithm'), 'subjectPublicKeyInfo');
  decodeBitString(sc.next(TAG.BIT_STRING, 'subjectPublicKey'), 'subjectPublicKey');
  sc.end();
  if (c.optional(0x81) && version === 1) throw malformed('issuerUniqueID in a v1 certificate');
  if (c.optional(0x82) && version === 1) throw malformed('subjectUniqueID in a v1 certificate');
  const cert: ParsedCertificate = {
    version,
    serialHex: serial.body.toString('hex'),
    tbsDer: tbs.raw,
    signatureAlgorithmOid: outerAlg,
    issuerDer: issuer.raw,
    subjectDer: subject.raw,
    notBefore: decodeTime(nb, 'notBefore'),
    notAfter: decodeTime(na, 'notAfter'),
    spkiDer: spki.raw,
    spkiAlgorithmOid: spkiAlg,
    san: { dns: [], email: [], ip: [], dirNames: [] },
    unknownCritical: [],
  };
  const exts = c.optional(0xa3);
  if (exts) {
    if (version !== 3) throw malformed('extensions in a certificate older than v3');
    parseExtensions(exts, cert);
  }
  c.end();
  return cert;
}
