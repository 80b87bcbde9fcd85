import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CoatiError } from '../../src/errors.js';
import { decodeOid, decodeTime, readOnly, readTlv, TAG } from '../../src/sa/cert-der.js';
import { nameToText } from '../../src/sa/cert-name.js';
import { parseCertificateDer } from '../../src/sa/cert-x509.js';
import { type CertificateInfo, loadCertificates, parseCertificate } from '../../src/sa/certs.js';
import { ipToBytes } from '../../src/util/ip.js';
import { GOLDEN_DIR } from '../helpers/golden.js';
import { type Issued, testPki } from '../helpers/pki.js';

const golden = ['ca', 'left', 'right'].map(
  (n) => loadCertificates(readFileSync(join(GOLDEN_DIR, 'pki', `${n}.cert.pem`), 'utf8'))[0]!,
);
const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
    return undefined;
  } catch (e) {
    if (e instanceof CoatiError) return e.code;
    throw e;
  }
}

describe('strict DER reader', () => {
  it.each([
    ['truncated header', '30'],
    ['length past the end', '3003 0101'],
    ['indefinite length', '3080 0000'],
    ['non-minimal long form', '3081 05 0000000000'],
    ['leading zero in long form', '3082 0005 0000000000'],
    ['five length octets', '3085 0000000001 00'],
    ['high tag number', '1f81 00'],
    ['trailing bytes', '3000 00'],
  ])('rejects %s', (_n, input) => {
    expect(codeOf(() => readOnly(hex(input), 'test'))).toBe('CERT_MALFORMED');
  });

  it('reads long-form lengths and nested values', () => {
    const body = Buffer.alloc(200, 7);
    const t = readTlv(Buffer.concat([hex('0481c8'), body]), 0, 'x');
    expect(t.tag).toBe(TAG.OCTET_STRING);
    expect(t.body.equals(body)).toBe(true);
  });

  it('decodes OIDs strictly', () => {
    expect(decodeOid(hex('2a864886f70d010101'), 'x')).toBe('1.2.840.113549.1.1.1');
    expect(decodeOid(hex('550403'), 'x')).toBe('2.5.4.3');
    expect(decodeOid(hex('8837'), 'x')).toBe('2.999');
    expect(codeOf(() => decodeOid(hex(''), 'x'))).toBe('CERT_MALFORMED');
    expect(codeOf(() => decodeOid(hex('2a80 01'), 'x'))).toBe('CERT_MALFORMED');
    expect(codeOf(() => decodeOid(hex('2a86'), 'x'))).toBe('CERT_MALFORMED');
  });

  it('decodes RFC 5280 times', () => {
    const utc = (s: string) => ({ tag: TAG.UTC_TIME, raw: Buffer.alloc(0), body: Buffer.from(s) });
    const gen = (s: string) => ({ tag: TAG.GENERALIZED_TIME, raw: Buffer.alloc(0), body: Buffer.from(s) });
    expect(decodeTime(utc('491231235959Z'), 't')).toBe(Date.UTC(2049, 11, 31, 23, 59, 59));
    expect(decodeTime(utc('500101000000Z'), 't')).toBe(Date.UTC(1950, 0, 1));
    expect(decodeTime(gen('20500101000000Z'), 't')).toBe(Date.UTC(2050, 0, 1));
    expect(decodeTime(utc('240229120000Z'), 't')).toBe(Date.UTC(2024, 1, 29, 12));
    for (const bad of [
      utc('230229120000Z'), // not a leap year
      utc('241301000000Z'),
      utc('240100000000Z'),
      utc('240101240000Z'),
      utc('2401010000Z'), // no seconds
      utc('240101000000+0100'),
      gen('20240101000000.5Z'),
      gen('00490101000000Z'),
      { tag: TAG.OCTET_STRING, raw: Buffer.alloc(0), body: Buffer.from('240101000000Z') },
    ]) {
      expect(codeOf(() => decodeTime(bad, 't'))).toBe('CERT_MALFORMED');
    }
  });

  it('writes names RFC 4514-style with escaping and string types', () => {
    const atv = (oid: string, tag: number, v: Buffer) => {
      const o = Buffer.concat([Buffer.from([0x06, oid.length / 2]), hex(oid)]);
      const val = Buffer.concat([Buffer.from([tag, v.length]), v]);
      const seq = Buffer.concat([Buffer.from([0x30, o.length + val.length]), o, val]);
      return Buffer.concat([Buffer.from([0x31, seq.length]), seq]);
    };
    const rdns = [
      atv('550406', 0x13, Buffer.from('XX')),
      atv('55040a', 0x0c, Buffer.from('Ünïcode, "Ltd"+Co')),
      atv('55040b', 0x1e, Buffer.from('00e9 0020 0023'.replace(/ /g, ''), 'hex')),
      atv('550403', 0x13, Buffer.from('#lead ')),
      atv('2a0304', 0x04, Buffer.from([1, 2])),
    ];
    const body = Buffer.concat(rdns);
    const name = Buffer.concat([Buffer.from([0x30, body.length]), body]);
    expect(nameToText(name)).toBe('1.2.3.4=#04020102,CN=\\#lead\\ ,OU=é #,O=Ünïcode\\, \\"Ltd\\"\\+Co,C=XX');
    expect(codeOf(() => nameToText(hex('3002 3100')))).toBe('CERT_MALFORMED');
    expect(codeOf(() => nameToText(hex('3003 0c0100')))).toBe('CERT_MALFORMED');
  });

  it('reports the version and the signature and key algorithm OIDs', () => {
    const p = parseCertificateDer(golden[0]!);
    expect(p.version).toBe(3);
    expect(p.signatureAlgorithmOid).toBe('1.2.840.10045.4.3.2');
    expect(p.spkiAlgorithmOid).toBe('1.2.840.10045.2.1');
  });
});

// ---- fuzz ----------------------------------------------------------------

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function mutate(src: Buffer, rnd: () => number): Buffer {
  const b = Buffer.from(src);
  const pick = (n: number) => Math.floor(rnd() * n);
  const rounds = 1 + pick(3);
  let out = b;
  for (let r = 0; r < rounds; r++) {
    const at = pick(out.length);
    switch (pick(7)) {
      case 0: // flip a bit
        out[at] = out[at]! ^ (1 << pick(8));
        break;
      case 1: // random byte
        out[at] = pick(256);
        break;
      case 2: // truncate
        out = out.subarray(0, at);
        break;
      case 3: // insert a byte
        out = Buffer.concat([out.subarray(0, at), Buffer.from([pick(256)]), out.subarray(at)]);
        break;
      case 4: // delete a run
        out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1 + pick(8))]);
        break;
      case 5: // interesting length / tag bytes
        out[at] = [0x00, 0x7f, 0x80, 0x81, 0x82, 0x84, 0x85, 0xff, 0x30, 0x31, 0xa3, 0x1f][pick(12)]!;
        break;
      default: // duplicate a slice
        out = Buffer.concat([out.subarray(0, at), out.subarray(at, at + pick(40)), out.subarray(at)]);
    }
    if (out.length === 0) break;
  }
  return out;
}

/** Compares our reading of a certificate with OpenSSL's (via X509Certificate) where both expose the field. */
function agreesWithOpenSsl(info: CertificateInfo): void {
  const x = info.x509;
  expect(Date.parse(x.validFrom)).toBe(info.notBefore);
  expect(Date.parse(x.validTo)).toBe(info.notAfter);
  if (!((Number.parseInt(info.serialHex.slice(0, 2), 16) || 0) & 0x80)) {
    expect(x.serialNumber.toLowerCase().replace(/^(00)+/, '')).toBe(info.serialHex.replace(/^(00)+/, ''));
  }
  // the CA flag is cross-checked inside parseCertificate itself
}

describe('agreement with OpenSSL', () => {
  it('on every golden and generated certificate, SANs included', () => {
    const pki = testPki();
    const all = [
      ...golden,
      ...Object.values(pki)
        .flat()
        .map((i) => (i as Issued).der),
    ];
    for (const der of all) {
      const info = parseCertificate(der);
      agreesWithOpenSsl(info);
      const theirs = (info.x509.subjectAltName ?? '').split(', ').filter((e) => e.length > 0);
      const ours = [
        ...info.san.dns.map((d) => `DNS:${d}`),
        ...info.san.email.map((e) => `email:${e}`),
        ...info.san.ip.map((ip) => `IP:${ipToBytes(ip).toString('hex')}`),
      ].sort();
      const norm = theirs
        .filter((e) => !e.startsWith('DirName:'))
        .map((e) => (e.startsWith('IP Address:') ? `IP:${ipToBytes(e.slice(11)).toString('hex')}` : e))
        .sort();
      expect(ours).toEqual(norm);
    }
  });
});

describe('DER reader fuzz', () => {
  const pki = testPki();
  const seeds = [...golden, pki.rsaLeaf.der, pki.ecLeaf.der, pki.edLeaf.der, pki.rsaCa.der];

  it('every mutation yields a CertificateInfo or CoatiError CERT_MALFORMED, never another exception', () => {
    const rnd = prng(0xc0a71);
    let parsed = 0;
    let rejected = 0;
    for (let i = 0; i < 4000; i++) {
      const input = mutate(seeds[i % seeds.length]!, rnd);
      try {
        const info = parseCertificate(input);
        // what we cut out must be inside the input and self-consistent
        expect(input.includes(info.subjectDer)).toBe(true);
        expect(input.includes(info.spkiDer)).toBe(true);
        expect(typeof info.subjectText).toBe('string');
        agreesWithOpenSsl(info);
        parsed++;
      } catch (e) {
        if (!(e instanceof CoatiError) || e.code !== 'CERT_MALFORMED') {
          throw new Error(`iteration ${i}: unexpected ${String(e)} for ${input.toString('hex')}`, { cause: e });
        }
        rejected++;
      }
    }
    // both outcomes occur, so the mutator neither only breaks framing nor never touches anything
    expect(rejected).toBeGreaterThan(1000);
    expect(parsed).toBeGreaterThan(20);
  });

  it('mutated PEM text only ever fails with CERT_MALFORMED', () => {
    const rnd = prng(7);
    const text = Buffer.from(readFileSync(join(GOLDEN_DIR, 'pki', 'left.cert.pem'), 'utf8'));
    for (let i = 0; i < 1500; i++) {
      const input = mutate(text, rnd).toString('latin1');
      try {
        for (const der of loadCertificates(input)) parseCertificate(der);
      } catch (e) {
        if (!(e instanceof CoatiError) || e.code !== 'CERT_MALFORMED') {
          throw new Error(`iteration ${i}: unexpected ${String(e)} for ${JSON.stringify(input)}`);
        }
      }
    }
  });
});
