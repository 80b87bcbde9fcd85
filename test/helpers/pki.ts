/**
 * Test PKIs, issued on the fly.
 *
 * Two independent certificate encoders, on purpose:
 *  - node-forge builds and signs every certificate whose key and issuer key
 *    are both RSA. Its encoder was written by other people, so parsing its
 *    output checks our DER reader against someone else's reading of X.509.
 *  - forge cannot encode EC or Ed25519 keys, so certificates that carry or are
 *    signed by such keys are built by the small DER encoder below and signed
 *    with node:crypto (ECDSA-with-SHA256, Ed25519, or RSA PKCS#1 v1.5 SHA-256).
 * Both encode names the same way (one attribute per RDN, PrintableString), so
 * forge and DER-built certificates chain to each other.
 *
 * Keys always come from node:crypto (forge's RSA key generation takes seconds);
 * the whole PKI is built once per test file (module cache) and is deterministic
 * in its names and dates, not in its keys.
 */
import { createHash, createPublicKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import forge from 'node-forge';
import { ipToBytes } from '../../src/util/ip.js';

/** The clock every generated certificate is judged against. */
export const PKI_NOW = Date.UTC(2030, 0, 1);
const YEAR = 365 * 24 * 3600 * 1000;

export type TestKeyType = 'rsa' | 'ec' | 'ed25519';

export interface Issued {
  name: string;
  der: Buffer;
  pem: string;
  key: KeyObject;
  keyType: TestKeyType;
  /** [shortName, value] pairs, most general first. */
  subject: [string, string][];
  engine: 'forge' | 'der';
}

export interface CertSpec {
  subject: [string, string][];
  /** Issuer; omitted = self-signed. */
  issuer?: Issued;
  keyType?: TestKeyType;
  key?: KeyObject;
  notBefore?: number;
  notAfter?: number;
  ca?: boolean;
  pathLen?: number;
  /** keyUsage: defaults to keyCertSign+cRLSign for CAs, digitalSignature otherwise. */
  keyUsage?: { digitalSignature?: boolean; keyCertSign?: boolean; cRLSign?: boolean };
  san?: { dns?: string[]; email?: string[]; ip?: string[] };
  /** Extra extensions (DER engine only), e.g. an unknown critical one. */
  extra?: { oid: string; critical: boolean; value: Buffer }[];
  /** Force the DER engine even for RSA/RSA. */
  forceDer?: boolean;
  /** An X.509 v1 certificate: no version field, no extensions (DER engine). */
  v1?: boolean;
}

const keyCache = new Map<string, KeyObject>();

export function testKey(type: TestKeyType, slot: string): KeyObject {
  const id = `${type}:${slot}`;
  let k = keyCache.get(id);
  if (!k) {
    const pair =
      type === 'rsa'
        ? generateKeyPairSync('rsa', { modulusLength: 2048 })
        : type === 'ec'
          ? generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
          : generateKeyPairSync('ed25519');
    k = pair.privateKey;
    keyCache.set(id, k);
  }
  return k;
}

// ---- tiny DER encoder ----------------------------------------------------

function tlv(tag: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  const n = body.length;
  const head =
    n < 0x80
      ? [tag, n]
      : n < 0x100
        ? [tag, 0x81, n]
        : n < 0x10000
          ? [tag, 0x82, n >> 8, n & 0xff]
          : [tag, 0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  return Buffer.concat([Buffer.from(head), body]);
}

function oid(text: string): Buffer {
  const arcs = text.split('.').map(Number);
  const out = [40 * arcs[0]! + arcs[1]!];
  for (const a of arcs.slice(2)) {
    const bytes = [a & 0x7f];
    for (let v = Math.floor(a / 128); v > 0; v = Math.floor(v / 128)) bytes.unshift((v & 0x7f) | 0x80);
    out.push(...bytes);
  }
  return tlv(0x06, Buffer.from(out));
}

const seq = (...p: Buffer[]) => tlv(0x30, ...p);
const uint = (b: Buffer) => tlv(0x02, b[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b);
const SHORT: Record<string, string> = { CN: '2.5.4.3', C: '2.5.4.6', O: '2.5.4.10', OU: '2.5.4.11', L: '2.5.4.7' };

export function encodeName(attrs: [string, string][]): Buffer {
  return seq(...attrs.map(([k, v]) => tlv(0x31, seq(oid(SHORT[k] ?? k), tlv(0x13, Buffer.from(v, 'latin1'))))));
}

function time(ms: number): Buffer {
  const d = new Date(ms).toISOString(); // 2030-01-01T00:00:00.000Z
  const digits = d.slice(0, 19).replace(/[-T:]/g, '');
  const y = new Date(ms).getUTCFullYear();
  return y >= 1950 && y < 2050 ? tlv(0x17, Buffer.from(`${digits.slice(2)}Z`)) : tlv(0x18, Buffer.from(`${digits}Z`));
}

function ext(id: string, critical: boolean, value: Buffer): Buffer {
  return seq(oid(id), ...(critical ? [tlv(0x01, Buffer.from([0xff]))] : []), tlv(0x04, value));
}

const ipBytes = (ip: string): Buffer => ipToBytes(ip);

function keyUsageBits(ku: NonNullable<CertSpec['keyUsage']>): Buffer {
  const byte = (ku.digitalSignature ? 0x80 : 0) | (ku.keyCertSign ? 0x04 : 0) | (ku.cRLSign ? 0x02 : 0);
  let unused = 0;
  while (unused < 8 && byte && !(byte & (1 << unused))) unused++;
  return tlv(0x03, Buffer.from(byte ? [unused, byte] : [0]));
}

function sigAlg(issuerKey: KeyObject): { alg: Buffer; sign: (tbs: Buffer) => Buffer } {
  switch (issuerKey.asymmetricKeyType) {
    case 'rsa':
      return {
        alg: seq(oid('1.2.840.113549.1.1.11'), tlv(0x05)),
        sign: (tbs) => sign('sha256', tbs, issuerKey),
      };
    case 'ec':
      return { alg: seq(oid('1.2.840.10045.4.3.2')), sign: (tbs) => sign('sha256', tbs, issuerKey) };
    case 'ed25519':
      return { alg: seq(oid('1.3.101.112')), sign: (tbs) => sign(null, tbs, issuerKey) };
    default:
      throw new Error(`no signer for ${issuerKey.asymmetricKeyType}`);
  }
}

let serialCounter = 1;
const nextSerial = () => createHash('sha256').update(`serial-${serialCounter++}`).digest().subarray(0, 8);

function keyUsageOf(spec: CertSpec) {
  return spec.keyUsage ?? (spec.ca ? { keyCertSign: true, cRLSign: true } : { digitalSignature: true });
}

function derCert(spec: CertSpec, key: KeyObject, window: { nb: number; na: number }): Buffer {
  const issuerKey = spec.issuer?.key ?? key;
  const { alg, sign: signTbs } = sigAlg(issuerKey);
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const exts: Buffer[] = [];
  if (spec.ca !== undefined) {
    const parts = spec.ca ? [tlv(0x01, Buffer.from([0xff]))] : [];
    if (spec.pathLen !== undefined) parts.push(uint(Buffer.from([spec.pathLen])));
    exts.push(ext('2.5.29.19', true, seq(...parts)));
  }
  exts.push(ext('2.5.29.15', true, keyUsageBits(keyUsageOf(spec))));
  const san = spec.san;
  if (san && (san.dns?.length || san.email?.length || san.ip?.length)) {
    const names = [
      ...(san.dns ?? []).map((d) => tlv(0x82, Buffer.from(d, 'latin1'))),
      ...(san.email ?? []).map((e) => tlv(0x81, Buffer.from(e, 'latin1'))),
      ...(san.ip ?? []).map((i) => tlv(0x87, ipBytes(i))),
    ];
    exts.push(ext('2.5.29.17', false, seq(...names)));
  }
  for (const e of spec.extra ?? []) exts.push(ext(e.oid, e.critical, e.value));
  const tbs = seq(
    ...(spec.v1 ? [] : [tlv(0xa0, uint(Buffer.from([2])))]),
    uint(nextSerial()),
    alg,
    encodeName(spec.issuer?.subject ?? spec.subject),
    seq(time(window.nb), time(window.na)),
    encodeName(spec.subject),
    spki,
    ...(spec.v1 ? [] : [tlv(0xa3, seq(...exts))]),
  );
  return seq(tbs, alg, tlv(0x03, Buffer.from([0]), signTbs(tbs)));
}

function forgeCert(spec: CertSpec, key: KeyObject, window: { nb: number; na: number }): Buffer {
  const issuerKey = spec.issuer?.key ?? key;
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(createPublicKey(key).export({ type: 'spki', format: 'pem' }) as string);
  cert.serialNumber = `01${nextSerial().toString('hex')}`;
  cert.validity.notBefore = new Date(window.nb);
  cert.validity.notAfter = new Date(window.na);
  const attrs = (a: [string, string][]) =>
    a.map(([k, v]) => (SHORT[k] ? { shortName: k, value: v } : { type: k, value: v }));
  cert.setSubject(attrs(spec.subject));
  cert.setIssuer(attrs(spec.issuer?.subject ?? spec.subject));
  const exts: object[] = [];
  if (spec.ca !== undefined) {
    exts.push({
      name: 'basicConstraints',
      critical: true,
      cA: spec.ca,
      ...(spec.pathLen !== undefined ? { pathLenConstraint: spec.pathLen } : {}),
    });
  }
  exts.push({ name: 'keyUsage', critical: true, ...keyUsageOf(spec) });
  const san = spec.san;
  if (san && (san.dns?.length || san.email?.length || san.ip?.length)) {
    exts.push({
      name: 'subjectAltName',
      altNames: [
        ...(san.dns ?? []).map((value) => ({ type: 2, value })),
        ...(san.email ?? []).map((value) => ({ type: 1, value })),
        ...(san.ip ?? []).map((ip) => ({ type: 7, ip })),
      ],
    });
  }
  cert.setExtensions(exts);
  const signer = forge.pki.privateKeyFromPem(issuerKey.export({ type: 'pkcs1', format: 'pem' }) as string);
  cert.sign(signer as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
  return Buffer.from(forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes(), 'binary');
}

/** Issues one certificate. `name` also selects the cached key slot. */
export function issue(name: string, spec: CertSpec): Issued {
  const keyType = spec.keyType ?? 'rsa';
  const key = spec.key ?? testKey(keyType, name);
  const window = { nb: spec.notBefore ?? PKI_NOW - YEAR, na: spec.notAfter ?? PKI_NOW + YEAR };
  const useForge =
    !spec.forceDer && !spec.extra && !spec.v1 && keyType === 'rsa' && (spec.issuer?.keyType ?? 'rsa') === 'rsa';
  const der = useForge ? forgeCert(spec, key, window) : derCert(spec, key, window);
  const pem = `-----BEGIN CERTIFICATE-----\n${der
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .trimEnd()}\n-----END CERTIFICATE-----\n`;
  return { name, der, pem, key, keyType, subject: spec.subject, engine: useForge ? 'forge' : 'der' };
}

const rig = (cn: string): [string, string][] => [
  ['C', 'XX'],
  ['O', 'coati tests'],
  ['CN', cn],
];

export interface TestPki {
  rsaCa: Issued;
  ecCa: Issued;
  /** RSA leaf from the RSA CA (forge), with DNS, email and IPv4/IPv6 SANs. */
  rsaLeaf: Issued;
  /** ECDSA P-256 leaf signed by the RSA CA (DER engine). */
  ecLeaf: Issued;
  /** Ed25519 leaf signed by the ECDSA CA. */
  edLeaf: Issued;
  /** RSA CA → intermediate CA → leaf. */
  intermediate: Issued;
  chainedLeaf: Issued;
  expiredLeaf: Issued;
  futureLeaf: Issued;
  expiredIntermediate: Issued;
  leafOfExpiredIntermediate: Issued;
  unknownCa: Issued;
  leafOfUnknownCa: Issued;
  /** Same subject as rsaCa, different key. */
  impostorCa: Issued;
  /** End entity (no CA flag) that issued another certificate. */
  notCa: Issued;
  leafOfNotCa: Issued;
  /** CA whose keyUsage lacks keyCertSign. */
  noCertSignCa: Issued;
  leafOfNoCertSignCa: Issued;
  /** RSA CA → pathLen 0 CA → CA → leaf. */
  pathLenZero: Issued;
  belowPathLenZero: Issued;
  leafBelowPathLenZero: Issued;
  /** ecCa → 9 intermediates → leaf (ECDSA, so it is fast). */
  longChain: Issued[];
  longLeaf: Issued;
  /** Leaf with an unknown critical extension. */
  criticalLeaf: Issued;
}

let cached: TestPki | undefined;

/** The shared generated PKI (built on first use, then cached for the test file). */
export function testPki(): TestPki {
  if (cached) return cached;
  const rsaCa = issue('rsa-ca', { subject: rig('RSA CA'), ca: true });
  const ecCa = issue('ec-ca', { subject: rig('EC CA'), keyType: 'ec', ca: true });
  const san = { dns: ['Peer.Example.NET'], email: ['IKE@Example.net'], ip: ['192.0.2.7', '2001:db8::7'] };
  const rsaLeaf = issue('rsa-leaf', { subject: rig('rsa leaf'), issuer: rsaCa, san });
  const ecLeaf = issue('ec-leaf', {
    subject: rig('ec leaf'),
    issuer: rsaCa,
    keyType: 'ec',
    san: { dns: ['ec.example'] },
  });
  const edLeaf = issue('ed-leaf', {
    subject: rig('ed leaf'),
    issuer: ecCa,
    keyType: 'ed25519',
    san: { dns: ['ed.example'] },
  });
  const intermediate = issue('inter', { subject: rig('Intermediate'), issuer: rsaCa, ca: true });
  const chainedLeaf = issue('chained', { subject: rig('chained leaf'), issuer: intermediate, keyType: 'ec' });
  const expiredLeaf = issue('expired', {
    subject: rig('expired leaf'),
    issuer: rsaCa,
    notBefore: PKI_NOW - 2 * YEAR,
    notAfter: PKI_NOW - YEAR,
  });
  const futureLeaf = issue('future', { subject: rig('future leaf'), issuer: rsaCa, notBefore: PKI_NOW + 1000 });
  const expiredIntermediate = issue('expired-inter', {
    subject: rig('expired intermediate'),
    issuer: rsaCa,
    ca: true,
    keyType: 'ec',
    notAfter: PKI_NOW - 1000,
  });
  const leafOfExpiredIntermediate = issue('leaf-expired-inter', {
    subject: rig('leaf of expired intermediate'),
    issuer: expiredIntermediate,
    keyType: 'ec',
  });
  const unknownCa = issue('unknown-ca', { subject: rig('Unknown CA'), keyType: 'ec', ca: true });
  const leafOfUnknownCa = issue('leaf-unknown', { subject: rig('stranger'), issuer: unknownCa, keyType: 'ec' });
  const impostorCa = issue('impostor-ca', { subject: rig('RSA CA'), ca: true });
  const notCa = issue('not-ca', { subject: rig('not a CA'), issuer: rsaCa, keyType: 'ec', ca: false });
  const leafOfNotCa = issue('leaf-not-ca', { subject: rig('leaf of non-CA'), issuer: notCa, keyType: 'ec' });
  const noCertSignCa = issue('no-certsign', {
    subject: rig('CA without keyCertSign'),
    issuer: rsaCa,
    keyType: 'ec',
    ca: true,
    keyUsage: { digitalSignature: true, cRLSign: true },
  });
  const leafOfNoCertSignCa = issue('leaf-no-certsign', { subject: rig('leaf'), issuer: noCertSignCa, keyType: 'ec' });
  const pathLenZero = issue('pathlen0', {
    subject: rig('pathLen 0 CA'),
    issuer: rsaCa,
    keyType: 'ec',
    ca: true,
    pathLen: 0,
  });
  const belowPathLenZero = issue('below-pathlen0', {
    subject: rig('CA below pathLen 0'),
    issuer: pathLenZero,
    keyType: 'ec',
    ca: true,
  });
  const leafBelowPathLenZero = issue('leaf-pathlen', {
    subject: rig('deep leaf'),
    issuer: belowPathLenZero,
    keyType: 'ec',
  });
  const longChain: Issued[] = [];
  let parent = ecCa;
  for (let i = 0; i < 9; i++) {
    parent = issue(`long-${i}`, { subject: rig(`long CA ${i}`), issuer: parent, keyType: 'ec', ca: true });
    longChain.push(parent);
  }
  const longLeaf = issue('long-leaf', { subject: rig('long leaf'), issuer: parent, keyType: 'ec' });
  const criticalLeaf = issue('critical', {
    subject: rig('critical leaf'),
    issuer: ecCa,
    keyType: 'ec',
    extra: [{ oid: '1.3.6.1.4.1.55555.1', critical: true, value: Buffer.from([0x05, 0x00]) }],
  });
  cached = {
    rsaCa,
    ecCa,
    rsaLeaf,
    ecLeaf,
    edLeaf,
    intermediate,
    chainedLeaf,
    expiredLeaf,
    futureLeaf,
    expiredIntermediate,
    leafOfExpiredIntermediate,
    unknownCa,
    leafOfUnknownCa,
    impostorCa,
    notCa,
    leafOfNotCa,
    noCertSignCa,
    leafOfNoCertSignCa,
    pathLenZero,
    belowPathLenZero,
    leafBelowPathLenZero,
    longChain,
    longLeaf,
    criticalLeaf,
  };
  return cached;
}
