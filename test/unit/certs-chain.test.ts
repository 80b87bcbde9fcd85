import { describe, expect, it } from 'vitest';
import { type CertificateInfo, parseCertificate, validateChain } from '../../src/sa/certs.js';
import { type Issued, issue, PKI_NOW, testPki } from '../helpers/pki.js';

const pki = testPki();
const info = new Map<Issued, CertificateInfo>();
const c = (i: Issued): CertificateInfo => {
  let v = info.get(i);
  if (!v) {
    v = parseCertificate(i.der);
    info.set(i, v);
  }
  return v;
};

function check(leaf: Issued, intermediates: Issued[], anchors: Issued[], now = PKI_NOW, maxDepth?: number) {
  return validateChain({
    leaf: c(leaf),
    intermediates: intermediates.map(c),
    trustAnchors: anchors.map(c),
    now,
    ...(maxDepth !== undefined ? { maxDepth } : {}),
  });
}

const subjects = (r: ReturnType<typeof check>) => (r.ok ? r.chain.map((x) => x.subjectText) : r);

describe('generated PKI parses through both encoders', () => {
  it('forge-issued RSA and DER-issued EC/Ed25519 certificates', () => {
    expect(pki.rsaLeaf.engine).toBe('forge');
    expect(pki.ecLeaf.engine).toBe('der');
    const rsa = c(pki.rsaLeaf);
    expect(rsa.keyType).toBe('rsa');
    expect(rsa.san).toEqual({
      dns: ['Peer.Example.NET'],
      email: ['IKE@Example.net'],
      ip: ['192.0.2.7', '2001:db8::7'],
      dirNames: [],
    });
    expect(rsa.subjectText).toBe('CN=rsa leaf,O=coati tests,C=XX');
    expect(c(pki.ecLeaf).keyType).toBe('ec');
    expect(c(pki.edLeaf).keyType).toBe('ed25519');
    expect(c(pki.rsaCa).isCa).toBe(true);
    expect(c(pki.pathLenZero).pathLen).toBe(0);
    expect(c(pki.criticalLeaf).unknownCritical).toEqual(['1.3.6.1.4.1.55555.1']);
  });
});

describe('extension handling', () => {
  const tlv = (tag: number, body: Buffer) => Buffer.concat([Buffer.from([tag, body.length]), body]);
  const ekuIke = tlv(0x30, tlv(0x06, Buffer.from('2b06010505070311', 'hex'))); // 1.3.6.1.5.5.7.3.17 ipsecIKE

  it('critical extKeyUsage is understood and exposed; critical CRL distribution points are not', () => {
    const eku = c(
      issue('eku', {
        subject: [['CN', 'eku']],
        issuer: pki.ecCa,
        keyType: 'ec',
        extra: [{ oid: '2.5.29.37', critical: true, value: ekuIke }],
      }),
    );
    expect(eku.extKeyUsage).toEqual(['1.3.6.1.5.5.7.3.17']);
    expect(eku.unknownCritical).toEqual([]);
    const crldp = c(
      issue('crldp', {
        subject: [['CN', 'crldp']],
        issuer: pki.ecCa,
        keyType: 'ec',
        extra: [{ oid: '2.5.29.31', critical: true, value: tlv(0x30, Buffer.alloc(0)) }],
      }),
    );
    expect(crldp.unknownCritical).toEqual(['2.5.29.31']);
  });

  it('a CA certificate OpenSSL finds invalid (malformed subjectKeyIdentifier) is CERT_MALFORMED', () => {
    const bad = issue('bad-ski-ca', {
      subject: [['CN', 'bad SKI CA']],
      issuer: pki.ecCa,
      keyType: 'ec',
      ca: true,
      extra: [{ oid: '2.5.29.14', critical: false, value: tlv(0x03, Buffer.from([0])) }],
    });
    expect(() => parseCertificate(bad.der)).toThrowError(
      expect.objectContaining({ code: 'CERT_MALFORMED', message: expect.stringMatching(/OpenSSL refuses it as a CA/) }),
    );
  });
});

describe('validateChain: good paths', () => {
  it('leaf directly under an RSA or ECDSA anchor, any key type', () => {
    for (const [leaf, ca] of [
      [pki.rsaLeaf, pki.rsaCa],
      [pki.ecLeaf, pki.rsaCa],
      [pki.edLeaf, pki.ecCa],
    ] as const) {
      const r = check(leaf, [], [pki.ecCa, pki.rsaCa]);
      expect(r.ok && r.chain.map((x) => x.der)).toEqual([leaf.der, ca.der]);
    }
  });

  it('through an intermediate, picked out of unrelated ones', () => {
    const r = check(pki.chainedLeaf, [pki.notCa, pki.intermediate, pki.ecCa], [pki.rsaCa]);
    expect(subjects(r)).toEqual([
      'CN=chained leaf,O=coati tests,C=XX',
      'CN=Intermediate,O=coati tests,C=XX',
      'CN=RSA CA,O=coati tests,C=XX',
    ]);
  });

  it('an anchor that is the leaf itself (pinned certificate)', () => {
    expect(subjects(check(pki.rsaLeaf, [], [pki.rsaLeaf]))).toEqual(['CN=rsa leaf,O=coati tests,C=XX']);
  });

  it('backtracks from an impostor anchor with the same name to the real one', () => {
    const r = check(pki.rsaLeaf, [], [pki.impostorCa, pki.rsaCa]);
    expect(r.ok && r.chain[1]!.der.equals(pki.rsaCa.der)).toBe(true);
  });

  it('a self-signed v1 certificate is a CA only as a trust anchor', () => {
    const v1Root = issue('v1-root', { subject: [['CN', 'v1 root']], keyType: 'ec', v1: true });
    const v1Leaf = issue('v1-leaf', { subject: [['CN', 'under v1']], issuer: v1Root, keyType: 'ec' });
    expect(c(v1Root).version).toBe(1);
    expect(c(v1Root).isCa).toBe(false);
    expect(check(v1Leaf, [], [v1Root]).ok).toBe(true);
    // the same v1 certificate offered as an intermediate is not a CA
    const r = check(v1Leaf, [v1Root], [pki.ecCa]);
    expect(r).toMatchObject({ ok: false, code: 'CERT_NOT_CA' });
    // nor is a v1 certificate that is not self-signed, even as an anchor
    const v1Inter = issue('v1-inter', { subject: [['CN', 'v1 inter']], issuer: pki.ecCa, keyType: 'ec', v1: true });
    const below = issue('below-v1', { subject: [['CN', 'below v1']], issuer: v1Inter, keyType: 'ec' });
    expect(check(below, [], [v1Inter])).toMatchObject({ ok: false, code: 'CERT_NOT_CA' });
  });

  it('a long chain passes when the limit allows it', () => {
    expect(check(pki.longLeaf, pki.longChain, [pki.ecCa], PKI_NOW, 11).ok).toBe(true);
  });
});

describe('validateChain: each failure code names the certificate', () => {
  it.each([
    ['expired leaf', () => check(pki.expiredLeaf, [], [pki.rsaCa]), 'CERT_EXPIRED', /"CN=expired leaf.*" expired at/],
    [
      'expired intermediate',
      () => check(pki.leafOfExpiredIntermediate, [pki.expiredIntermediate], [pki.rsaCa]),
      'CERT_EXPIRED',
      /intermediate CA "CN=expired intermediate.*" expired/,
    ],
    [
      'expired anchor',
      () => check(pki.leafOfExpiredIntermediate, [], [pki.expiredIntermediate]),
      'CERT_EXPIRED',
      /trust anchor "CN=expired intermediate.*" expired at/,
    ],
    [
      'not yet valid',
      () => check(pki.futureLeaf, [], [pki.rsaCa]),
      'CERT_NOT_YET_VALID',
      /"CN=future leaf.*" is not valid before 2030-01-01T00:00:01.000Z/,
    ],
    [
      'unknown CA',
      () => check(pki.leafOfUnknownCa, [], [pki.rsaCa, pki.ecCa]),
      'CERT_UNTRUSTED',
      /no trust anchor or intermediate named "CN=Unknown CA.*" to vouch for "CN=stranger/,
    ],
    ['missing intermediate', () => check(pki.chainedLeaf, [], [pki.rsaCa]), 'CERT_UNTRUSTED', /named "CN=Intermediate/],
    ['no anchors at all', () => check(pki.rsaLeaf, [], []), 'CERT_UNTRUSTED', /"CN=rsa leaf/],
    [
      'unknown critical extension',
      () => check(pki.criticalLeaf, [], [pki.ecCa]),
      'CERT_UNTRUSTED',
      /"CN=critical leaf.*" has unsupported critical extension\(s\) 1\.3\.6\.1\.4\.1\.55555\.1/,
    ],
    [
      'signed by a different key under the same name',
      () => check(pki.rsaLeaf, [], [pki.impostorCa]),
      'CERT_BAD_SIGNATURE',
      /signature on "CN=rsa leaf.*" does not verify with the key of trust anchor "CN=RSA CA/,
    ],
    [
      'issuer without the CA flag',
      () => check(pki.leafOfNotCa, [pki.notCa], [pki.rsaCa]),
      'CERT_NOT_CA',
      /intermediate CA "CN=not a CA.*" issued "CN=leaf of non-CA.*" but is not a CA/,
    ],
    [
      'CA whose keyUsage lacks keyCertSign',
      () => check(pki.leafOfNoCertSignCa, [pki.noCertSignCa], [pki.rsaCa]),
      'CERT_NOT_CA',
      /"CN=CA without keyCertSign.*" has keyUsage without keyCertSign/,
    ],
    [
      'depth limit',
      () => check(pki.longLeaf, pki.longChain, [pki.ecCa]),
      'CERT_CHAIN_TOO_LONG',
      /path from "CN=long leaf.*" needs more than 8 certificates/,
    ],
    [
      'pathLenConstraint',
      () => check(pki.leafBelowPathLenZero, [pki.pathLenZero, pki.belowPathLenZero], [pki.rsaCa]),
      'CERT_CHAIN_TOO_LONG',
      /"CN=pathLen 0 CA.*" allows 0 intermediate CA\(s\) below it \(pathLenConstraint\), the path has 1/,
    ],
  ] as const)('%s', (_name, run, code, message) => {
    const r = run();
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.code).toBe(code);
    expect(r.message).toMatch(message);
  });

  it('a tampered signature is CERT_BAD_SIGNATURE, not a parse error', () => {
    const der = Buffer.from(pki.rsaLeaf.der);
    der[der.length - 5]! ^= 0x01;
    const r = validateChain({
      leaf: parseCertificate(der),
      intermediates: [],
      trustAnchors: [c(pki.rsaCa)],
      now: PKI_NOW,
    });
    expect(r).toMatchObject({ ok: false, code: 'CERT_BAD_SIGNATURE' });
  });

  it('reports the failure deepest along the path when every branch fails', () => {
    // branch 1: a non-CA certificate that carries the intermediate's name fails at depth 2 (CERT_NOT_CA);
    // branch 2: the real intermediate, then the impostor anchor fails at depth 3 (CERT_BAD_SIGNATURE)
    const fake = issue('fake-inter', {
      subject: pki.intermediate.subject,
      issuer: pki.rsaCa,
      keyType: 'ec',
      ca: false,
    });
    const r = check(pki.chainedLeaf, [fake, pki.intermediate], [pki.impostorCa]);
    expect(r).toMatchObject({ ok: false, code: 'CERT_BAD_SIGNATURE' });
    expect(!r.ok && r.message).toMatch(/signature on "CN=Intermediate.*" does not verify/);
    expect(check(pki.chainedLeaf, [fake], [pki.impostorCa])).toMatchObject({ ok: false, code: 'CERT_NOT_CA' });
  });
});
