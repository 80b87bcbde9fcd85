/**
 * Certificate authentication in IKE_AUTH (RFC 7296 2.15, RFC 7427, RFC 4945)
 * between two coati engines: generated PKIs (RSA, ECDSA P-256, Ed25519), the
 * classic signature methods, every kind of bad certificate, a wrong key, and
 * the golden strongSwan PKI.
 */
import type { KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { signAuth } from '../../src/crypto/signatures.js';
import { verifyPeerSignature } from '../../src/ikev2/exchanges/auth-pubkey.js';
import type { IkeSa } from '../../src/ikev2/ike-sa.js';
import { certIdentity, loadCertificates, loadPrivateKey, parseCertificate } from '../../src/sa/certs.js';
import { type Identity, parseIdentity } from '../../src/sa/identity.js';
import type { AuthPolicy, PeerPolicy } from '../../src/sa/policy.js';
import type { IkeProposalSpec } from '../../src/sa/proposal.js';
import {
  decodeMessage,
  EXCHANGE,
  isCertReq,
  isNotify,
  NOTIFY,
  PAYLOAD,
  type Payload,
} from '../../src/wire/ikev2/index.js';
import { Mesh, type Node, peerPolicy } from '../helpers/ike-pair.js';
import { type Issued, issue, PKI_NOW, testKey, testPki } from '../helpers/pki.js';

const rig = (cn: string): [string, string][] => [
  ['C', 'XX'],
  ['O', 'coati tests'],
  ['CN', cn],
];

/** A DN identity with no data: "the subject of my certificate". */
const CERT_SUBJECT: Identity = { kind: 'dn', text: 'dn:', data: Buffer.alloc(0) };

function subjectOf(cert: Issued | Buffer): Identity {
  return certIdentity(parseCertificate(Buffer.isBuffer(cert) ? cert : cert.der));
}

function pubkey(chain: (Issued | Buffer)[], cas: (Issued | Buffer)[], key?: KeyObject): AuthPolicy {
  const der = (c: Issued | Buffer) => (Buffer.isBuffer(c) ? c : c.der);
  const leaf = chain[0];
  if (!leaf) throw new Error('empty chain');
  const privateKey = key ?? (Buffer.isBuffer(leaf) ? undefined : leaf.key);
  if (!privateKey) throw new Error('no key');
  return { kind: 'pubkey', certs: chain.map(der), privateKey, cas: cas.map(der) };
}

/** Two engines whose clock reads `now` (the generated PKI is valid around 2030). */
async function pair(now = PKI_NOW) {
  const m = new Mesh();
  await m.clock.advance(now - m.clock.now());
  const a = m.add('a', '10.0.0.1');
  const b = m.add('b', '10.0.0.2');
  return { m, a, b };
}

async function connect(m: Mesh, a: Node, b: Node, pa: Partial<PeerPolicy>, pb: Partial<PeerPolicy>) {
  a.manager.setPeer(peerPolicy(a, b, pa));
  b.manager.setPeer(peerPolicy(b, a, pb));
  await a.manager.initiate('b');
  await m.settle();
  return { ia: a.manager.established('b')[0], rb: b.manager.established('a')[0] };
}

function expectUp(ia: IkeSa | undefined, rb: IkeSa | undefined): asserts ia is IkeSa {
  expect(ia?.state).toBe('established');
  expect(rb?.state).toBe('established');
  expect(ia?.children.size).toBe(1);
  expect(rb?.children.size).toBe(1);
}

/** Both sides gave up, nothing is left in the kernels, and `who` logged `detail`. */
async function expectRefused(a: Node, b: Node, who: Node, detail: RegExp) {
  expect(a.manager.established('b')).toHaveLength(0);
  expect(b.manager.established('a')).toHaveLength(0);
  expect(await a.kernel.listSas()).toHaveLength(0);
  expect(await b.kernel.listSas()).toHaveLength(0);
  const failed = who.events.filter((e) => e.type === 'handshake.failed');
  expect(failed.map((e) => e.reason)).toContain('AUTHENTICATION_FAILED');
  expect(failed.map((e) => String(e.detail)).join('\n')).toMatch(detail);
}

/** The first IKE_SA_INIT response on the wire, decoded. */
function initResponse(m: Mesh) {
  for (const w of m.sent) {
    const msg = decodeMessage(w.data);
    if (msg.header.exchangeType === EXCHANGE.IKE_SA_INIT && msg.header.flags.response) return msg;
  }
  throw new Error('no IKE_SA_INIT response');
}

describe('IKEv2 certificate authentication', () => {
  const pki = testPki();

  it('RSA on both sides: RFC 7427 signatures, CERTREQ both ways, email and FQDN identities from SANs', async () => {
    const rsaB = issue('certs-rsa-b', { subject: rig('rsa b'), issuer: pki.rsaCa, san: { dns: ['b.rsa.test'] } });
    const { m, a, b } = await pair();
    const { ia, rb } = await connect(
      m,
      a,
      b,
      {
        localId: parseIdentity('email:ike@example.net'),
        remoteId: parseIdentity('fqdn:b.rsa.test'),
        auth: pubkey([pki.rsaLeaf], [pki.rsaCa]),
      },
      {
        localId: parseIdentity('fqdn:b.rsa.test'),
        remoteId: parseIdentity('email:ike@example.net'),
        auth: pubkey([rsaB], [pki.rsaCa]),
      },
    );
    expectUp(ia, rb);
    expect(ia.authUsed).toEqual({ local: 14, remote: 14, remoteSubject: 'CN=rsa b,O=coati tests,C=XX' });
    expect(rb?.authUsed).toEqual({ local: 14, remote: 14, remoteSubject: 'CN=rsa leaf,O=coati tests,C=XX' });
    const caHash = parseCertificate(pki.rsaCa.der).spkiSha1;
    // the responder's CERTREQ came in IKE_SA_INIT, the initiator's in IKE_AUTH
    expect(ia.peerCertReq).toEqual(caHash);
    expect(rb?.peerCertReq).toEqual(caHash);
    const init = initResponse(m);
    expect(init.payloads.filter(isCertReq).map((p) => [p.encoding, p.data])).toEqual([[4, caHash]]);
    const sha = init.payloads.find((p) => isNotify(p) && p.notifyType === NOTIFY.SIGNATURE_HASH_ALGORITHMS);
    expect(sha && isNotify(sha) ? [...sha.data] : []).toEqual([0, 2, 0, 3, 0, 4, 0, 5]);
    expect(ia.peerSignatureHashes).toEqual([2, 3, 4, 5]);
  });

  it('ECDSA P-256, the responder sending an intermediate CA and using its subject DN as identity', async () => {
    const { m, a, b } = await pair();
    const { ia, rb } = await connect(
      m,
      a,
      b,
      {
        localId: parseIdentity('fqdn:ec.example'),
        remoteId: subjectOf(pki.chainedLeaf),
        auth: pubkey([pki.ecLeaf], [pki.rsaCa]),
      },
      {
        localId: CERT_SUBJECT,
        remoteId: parseIdentity('fqdn:ec.example'),
        auth: pubkey([pki.chainedLeaf, pki.intermediate], [pki.rsaCa]),
      },
    );
    expectUp(ia, rb);
    expect(ia.authUsed.remote).toBe(14);
    expect(ia.remoteId?.kind).toBe('dn');
    expect(ia.authUsed.remoteSubject).toBe('CN=chained leaf,O=coati tests,C=XX');
    expect(rb?.authUsed.remoteSubject).toBe('CN=ec leaf,O=coati tests,C=XX');
  });

  it('refuses the chain when the intermediate CA is not sent and not trusted', async () => {
    const { m, a, b } = await pair();
    await connect(
      m,
      a,
      b,
      {
        localId: parseIdentity('fqdn:ec.example'),
        remoteId: subjectOf(pki.chainedLeaf),
        auth: pubkey([pki.ecLeaf], [pki.rsaCa]),
      },
      {
        localId: CERT_SUBJECT,
        remoteId: parseIdentity('fqdn:ec.example'),
        auth: pubkey([pki.chainedLeaf], [pki.rsaCa]),
      },
    );
    await expectRefused(a, b, a, /CERT_UNTRUSTED: .*Intermediate/);
  });

  it('Ed25519 with method 14 and hash algorithm Identity, an IP identity from a SAN', async () => {
    const edB = issue('certs-ed-b', {
      subject: rig('ed b'),
      issuer: pki.ecCa,
      keyType: 'ed25519',
      san: { ip: ['10.0.0.2'] },
    });
    const { m, a, b } = await pair();
    const { ia, rb } = await connect(
      m,
      a,
      b,
      {
        localId: parseIdentity('fqdn:ed.example'),
        remoteId: parseIdentity('ip:10.0.0.2'),
        auth: pubkey([pki.edLeaf], [pki.ecCa]),
      },
      {
        localId: parseIdentity('ip:10.0.0.2'),
        remoteId: parseIdentity('fqdn:ed.example'),
        auth: pubkey([edB], [pki.ecCa]),
      },
    );
    expectUp(ia, rb);
    expect(ia.authUsed).toMatchObject({ local: 14, remote: 14 });
    expect(rb?.authUsed).toMatchObject({ local: 14, remote: 14 });
  });

  it('uses the classic methods (RSA 1, ECDSA P-256 9) towards a peer that announces no SIGNATURE_HASH_ALGORITHMS', async () => {
    const { m, a, b } = await pair();
    const { ia, rb } = await connect(
      m,
      a,
      b,
      {
        localId: parseIdentity('fqdn:peer.example.net'),
        remoteId: parseIdentity('fqdn:ec.example'),
        auth: pubkey([pki.rsaLeaf], [pki.rsaCa]),
        signatureHashes: false,
      },
      {
        localId: parseIdentity('fqdn:ec.example'),
        remoteId: parseIdentity('fqdn:peer.example.net'),
        auth: pubkey([pki.ecLeaf], [pki.rsaCa]),
        signatureHashes: false,
      },
    );
    expectUp(ia, rb);
    expect(ia.peerSignatureHashes).toEqual([]);
    expect(ia.authUsed).toMatchObject({ local: 1, remote: 9 });
    expect(rb?.authUsed).toMatchObject({ local: 9, remote: 1 });
    const init = initResponse(m);
    expect(init.payloads.some((p) => isNotify(p) && p.notifyType === NOTIFY.SIGNATURE_HASH_ALGORITHMS)).toBe(false);
  });

  it('mixes methods when only one side announces RFC 7427 support', async () => {
    const { m, a, b } = await pair();
    const { ia, rb } = await connect(
      m,
      a,
      b,
      {
        localId: parseIdentity('fqdn:peer.example.net'),
        remoteId: parseIdentity('fqdn:ec.example'),
        auth: pubkey([pki.rsaLeaf], [pki.rsaCa]),
        signatureHashes: false,
      },
      {
        localId: parseIdentity('fqdn:ec.example'),
        remoteId: parseIdentity('fqdn:peer.example.net'),
        auth: pubkey([pki.ecLeaf], [pki.rsaCa]),
      },
    );
    expectUp(ia, rb);
    // the responder heard no hash list from us: classic ECDSA; we heard one: Digital Signature
    expect(ia.authUsed).toMatchObject({ local: 14, remote: 9 });
  });

  it('an Ed25519 key cannot authenticate to a peer without RFC 7427 support', async () => {
    const { m, a, b } = await pair();
    await connect(
      m,
      a,
      b,
      {
        localId: parseIdentity('fqdn:ed.example'),
        remoteId: parseIdentity('fqdn:ec.example'),
        auth: pubkey([pki.edLeaf], [pki.rsaCa]),
      },
      {
        localId: parseIdentity('fqdn:ec.example'),
        remoteId: parseIdentity('fqdn:ed.example'),
        auth: pubkey([pki.ecLeaf], [pki.ecCa]),
        signatureHashes: false,
      },
    );
    expect(a.manager.established('b')).toHaveLength(0);
    expect(a.manager.peer('b')?.lastError?.code).toBe('AUTHENTICATION_FAILED');
    expect(a.manager.peer('b')?.lastError?.message).toMatch(/Ed25519 .*Identity \(5\)/);
  });

  it('works without CERTREQ (we send our chain unasked) and records none', async () => {
    const { m, a, b } = await pair();
    const { ia, rb } = await connect(
      m,
      a,
      b,
      {
        localId: parseIdentity('fqdn:peer.example.net'),
        remoteId: parseIdentity('fqdn:ec.example'),
        auth: pubkey([pki.rsaLeaf], [pki.rsaCa]),
        sendCertReq: false,
      },
      {
        localId: parseIdentity('fqdn:ec.example'),
        remoteId: parseIdentity('fqdn:peer.example.net'),
        auth: pubkey([pki.ecLeaf], [pki.rsaCa]),
        sendCertReq: false,
      },
    );
    expectUp(ia, rb);
    expect(ia.peerCertReq).toBeUndefined();
    expect(rb?.peerCertReq).toBeUndefined();
    expect(initResponse(m).payloads.some(isCertReq)).toBe(false);
  });

  it('refuses to start with an identity our own certificate does not carry', async () => {
    const { m, a, b } = await pair();
    await connect(
      m,
      a,
      b,
      {
        localId: parseIdentity('fqdn:not-mine.example'),
        remoteId: parseIdentity('fqdn:ec.example'),
        auth: pubkey([pki.rsaLeaf], [pki.rsaCa]),
      },
      {
        localId: parseIdentity('fqdn:ec.example'),
        remoteId: parseIdentity('fqdn:not-mine.example'),
        auth: pubkey([pki.ecLeaf], [pki.rsaCa]),
      },
    );
    expect(a.manager.established('b')).toHaveLength(0);
    expect(a.manager.peer('b')?.lastError?.code).toBe('AUTHENTICATION_FAILED');
    expect(a.manager.peer('b')?.lastError?.message).toMatch(
      /our identity fqdn:not-mine.example is not bound to our certificate "CN=rsa leaf/,
    );
    // nothing was signed or sent past IKE_SA_INIT
    expect(m.sent).toHaveLength(2);
  });

  describe('refusals', () => {
    const ecB = () => ({
      localId: parseIdentity('fqdn:ec.example'),
      remoteId: parseIdentity('fqdn:peer.example.net'),
      auth: pubkey([pki.ecLeaf], [pki.rsaCa]),
    });

    it('an expired responder certificate', async () => {
      const { m, a, b } = await pair();
      await connect(
        m,
        a,
        b,
        {
          localId: parseIdentity('fqdn:ec.example'),
          remoteId: subjectOf(pki.expiredLeaf),
          auth: pubkey([pki.ecLeaf], [pki.rsaCa]),
        },
        {
          localId: CERT_SUBJECT,
          remoteId: parseIdentity('fqdn:ec.example'),
          auth: pubkey([pki.expiredLeaf], [pki.rsaCa]),
        },
      );
      await expectRefused(a, b, a, /CERT_EXPIRED: certificate "CN=expired leaf,O=coati tests,C=XX" expired/);
      expect(a.manager.peer('b')?.lastError?.code).toBe('AUTHENTICATION_FAILED');
    });

    it('a certificate that is valid only later than the clock', async () => {
      const { m, a, b } = await pair(Date.UTC(2020, 0, 1));
      await connect(
        m,
        a,
        b,
        {
          localId: parseIdentity('fqdn:peer.example.net'),
          remoteId: parseIdentity('fqdn:ec.example'),
          auth: pubkey([pki.rsaLeaf], [pki.rsaCa]),
        },
        ecB(),
      );
      await expectRefused(a, b, b, /CERT_NOT_YET_VALID: certificate "CN=rsa leaf,O=coati tests,C=XX"/);
    });

    it('a certificate from a CA we do not trust', async () => {
      const { m, a, b } = await pair();
      await connect(
        m,
        a,
        b,
        {
          localId: CERT_SUBJECT,
          remoteId: parseIdentity('fqdn:ec.example'),
          auth: pubkey([pki.leafOfUnknownCa], [pki.rsaCa]),
        },
        { ...ecB(), remoteId: subjectOf(pki.leafOfUnknownCa) },
      );
      await expectRefused(a, b, b, /CERT_UNTRUSTED: no trust anchor or intermediate named "CN=Unknown CA/);
      expect(a.manager.peer('b')?.lastError?.code).toBe('AUTHENTICATION_FAILED');
    });

    it('a private key that does not belong to the certificate', async () => {
      const { m, a, b } = await pair();
      await connect(
        m,
        a,
        b,
        {
          localId: parseIdentity('fqdn:peer.example.net'),
          remoteId: parseIdentity('fqdn:ec.example'),
          auth: pubkey([pki.rsaLeaf], [pki.rsaCa], testKey('rsa', 'certs-not-the-leaf')),
        },
        ecB(),
      );
      await expectRefused(
        a,
        b,
        b,
        /signature does not verify with the key of "CN=rsa leaf[^"]*" \(auth method 14 rsa-pkcs1-sha512: signature mismatch\)/,
      );
    });

    it('a responder whose key does not match its certificate', async () => {
      const { m, a, b } = await pair();
      await connect(
        m,
        a,
        b,
        {
          localId: parseIdentity('fqdn:peer.example.net'),
          remoteId: parseIdentity('fqdn:ec.example'),
          auth: pubkey([pki.rsaLeaf], [pki.rsaCa]),
        },
        { ...ecB(), auth: pubkey([pki.ecLeaf], [pki.rsaCa], testKey('ec', 'certs-other-ec')) },
      );
      expect(a.manager.established('b')).toHaveLength(0);
      expect(a.manager.peer('b')?.lastError).toMatchObject({ code: 'AUTHENTICATION_FAILED' });
      expect(a.manager.peer('b')?.lastError?.message).toMatch(/signature does not verify .*CN=ec leaf/);
      expect(await a.kernel.listSas()).toHaveLength(0);
    });

    it('a peer using a shared key where a certificate is expected', async () => {
      const { m, a, b } = await pair();
      await connect(
        m,
        a,
        b,
        { localId: parseIdentity('fqdn:peer.example.net'), remoteId: parseIdentity('fqdn:ec.example') },
        ecB(),
      );
      await expectRefused(a, b, b, /shared key \(auth method 2\), we expect a certificate signature/);
    });
  });

  it('interop: the golden strongSwan PKI (ECDSA P-256) between two coati engines, aes256gcm16-prfsha256-ecp256', async () => {
    const dir = join(import.meta.dirname, '../fixtures/golden/pki');
    const read = (f: string) => readFileSync(join(dir, f));
    const [ca] = loadCertificates(read('ca.cert.pem'));
    const [left] = loadCertificates(read('left.cert.pem'));
    const [right] = loadCertificates(read('right.cert.pem'));
    if (!ca || !left || !right) throw new Error('golden PKI incomplete');
    const proposal: IkeProposalSpec = { encr: [{ id: 20, keyLen: 256 }], prf: [5], integ: [], ke: [19] };
    // inside the certificates' validity (2026-11-24 .. 2036-11-21)
    const { m, a, b } = await pair(Date.UTC(2028, 5, 1));
    const { ia, rb } = await connect(
      m,
      a,
      b,
      {
        localId: parseIdentity('fqdn:left.cert.rig.test'),
        remoteId: parseIdentity('fqdn:right.cert.rig.test'),
        auth: pubkey([left], [ca], loadPrivateKey(read('left.key.pem'))),
        ikeProposals: [proposal],
      },
      {
        localId: parseIdentity('fqdn:right.cert.rig.test'),
        remoteId: parseIdentity('fqdn:left.cert.rig.test'),
        auth: pubkey([right], [ca], loadPrivateKey(read('right.key.pem'))),
        ikeProposals: [proposal],
      },
    );
    expectUp(ia, rb);
    expect(ia.suite).toEqual({ encr: { id: 20, keyLen: 256 }, prf: 5, ke: 19 });
    expect(ia.authUsed).toMatchObject({
      local: 14,
      remote: 14,
      remoteSubject: 'CN=right.cert.rig.test,O=IKE test rig,C=XX',
    });
    expect(rb?.authUsed.remoteSubject).toBe('CN=left.cert.rig.test,O=IKE test rig,C=XX');
    expect(ia.peerCertReq).toEqual(parseCertificate(ca).spkiSha1);
    expect(rb?.peerCertReq).toEqual(parseCertificate(ca).spkiSha1);
  });

  it('interop: the golden PKI is refused once its certificates have expired', async () => {
    const dir = join(import.meta.dirname, '../fixtures/golden/pki');
    const read = (f: string) => readFileSync(join(dir, f));
    const [ca] = loadCertificates(read('ca.cert.pem'));
    const [left] = loadCertificates(read('left.cert.pem'));
    const [right] = loadCertificates(read('right.cert.pem'));
    if (!ca || !left || !right) throw new Error('golden PKI incomplete');
    const { m, a, b } = await pair(Date.UTC(2037, 0, 1));
    await connect(
      m,
      a,
      b,
      {
        localId: parseIdentity('fqdn:left.cert.rig.test'),
        remoteId: parseIdentity('fqdn:right.cert.rig.test'),
        auth: pubkey([left], [ca], loadPrivateKey(read('left.key.pem'))),
      },
      {
        localId: parseIdentity('fqdn:right.cert.rig.test'),
        remoteId: parseIdentity('fqdn:left.cert.rig.test'),
        auth: pubkey([right], [ca], loadPrivateKey(read('right.key.pem'))),
      },
    );
    await expectRefused(a, b, b, /CERT_EXPIRED: certificate "CN=left.cert.rig.test[^"]*" expired at 2036-11-21/);
  });
  describe('verifier checks a coati peer never provokes (it refuses to send such IKE_AUTH)', () => {
    const sa = () => ({ env: { clock: { now: () => PKI_NOW } }, authUsed: {} }) as unknown as IkeSa;
    const trust = pubkey([pki.ecLeaf], [pki.rsaCa]) as Extract<AuthPolicy, { kind: 'pubkey' }>;
    const octets = Buffer.from('the octets the peer signs');
    const cert = (data: Buffer, encoding = 4): Payload => ({ type: PAYLOAD.CERT, critical: false, encoding, data });
    const rsaSig = () => ({
      method: 14,
      data: signAuth({ method: 14, scheme: 'rsa-pkcs1-sha256', privateKey: pki.rsaLeaf.key, octets }),
    });

    it('accepts a matching identity and a good signature (the control case)', () => {
      const s = sa();
      const id = parseIdentity('ip:2001:db8::7');
      expect(verifyPeerSignature(s, trust, id, [cert(pki.rsaLeaf.der)], rsaSig(), octets)).toBeUndefined();
      expect(s.authUsed).toEqual({ remote: 14, remoteSubject: 'CN=rsa leaf,O=coati tests,C=XX' });
    });

    it('an FQDN identity that is not among the SANs', () => {
      const id = parseIdentity('fqdn:elsewhere.example');
      expect(verifyPeerSignature(sa(), trust, id, [cert(pki.rsaLeaf.der)], rsaSig(), octets)).toBe(
        'identity fqdn:elsewhere.example not in certificate "CN=rsa leaf,O=coati tests,C=XX" SANs ' +
          '(dns:Peer.Example.NET, email:IKE@Example.net, ip:192.0.2.7, ip:2001:db8::7)',
      );
    });

    it('a DN identity that is not the subject', () => {
      expect(
        verifyPeerSignature(sa(), trust, subjectOf(pki.ecLeaf), [cert(pki.rsaLeaf.der)], rsaSig(), octets),
      ).toMatch(/^identity DN .* is not the subject of certificate "CN=rsa leaf/);
    });

    it('no certificate, only other encodings, a malformed one', () => {
      const id = parseIdentity('fqdn:peer.example.net');
      expect(verifyPeerSignature(sa(), trust, id, [], rsaSig(), octets)).toBe('peer sent no certificate');
      expect(verifyPeerSignature(sa(), trust, id, [cert(pki.rsaLeaf.der, 12)], rsaSig(), octets)).toBe(
        'peer sent certificates only in unsupported encodings (12)',
      );
      expect(
        verifyPeerSignature(sa(), trust, id, [cert(Buffer.from([0x30, 0x03, 1, 2, 3]))], rsaSig(), octets),
      ).toMatch(/^certificate 1 from the peer is malformed: /);
    });

    it('a signature over other octets, and a method that does not fit the key', () => {
      const id = parseIdentity('fqdn:peer.example.net');
      expect(
        verifyPeerSignature(sa(), trust, id, [cert(pki.rsaLeaf.der)], rsaSig(), Buffer.from('other octets')),
      ).toMatch(/^signature does not verify with the key of "CN=rsa leaf.*rsa-pkcs1-sha256: signature mismatch\)$/);
      const classic = { method: 9, data: rsaSig().data };
      expect(verifyPeerSignature(sa(), trust, id, [cert(pki.rsaLeaf.der)], classic, octets)).toMatch(
        /auth method 9: auth method 9 needs a prime256v1 key/,
      );
    });
  });
});
