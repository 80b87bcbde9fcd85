/**
 * IKEv1 Main Mode with signature authentication between two coati engines (RSA, auth
 * method 3; ECDSA P-256, RFC 4754 method 9): both sides ask for the peer's certificate
 * with CERTREQ payloads naming their trust anchors in MM3/MM4 (charon sends CERT only
 * when asked), send CERT + SIG in MM5/MM6, and authenticate each other.
 */
import { describe, expect, it } from 'vitest';
import { parseCertificate } from '../../src/sa/certs.js';
import { parseIdentity } from '../../src/sa/identity.js';
import type { AuthPolicy } from '../../src/sa/policy.js';
import { decodeIsakmpMessage, V1CertEncoding, V1PayloadType } from '../../src/wire/ikev1/index.js';
import { installedChildren, V1Mesh, v1Policy } from '../helpers/ike1-pair.js';
import { type Issued, issue, PKI_NOW, type TestKeyType } from '../helpers/pki.js';

const subject = (cn: string): [string, string][] => [
  ['C', 'XX'],
  ['O', 'coati v1 tests'],
  ['CN', cn],
];

function pki(keyType: TestKeyType) {
  const ca = issue(`v1x-${keyType}-ca`, { subject: subject(`v1 ${keyType} CA`), ca: true, keyType });
  const leaf = (n: string) =>
    issue(`v1x-${keyType}-${n}`, { subject: subject(`${n}.mesh`), issuer: ca, keyType, san: { dns: [`${n}.mesh`] } });
  return { ca, a: leaf('a'), b: leaf('b') };
}

const auth = (leaf: Issued, ca: Issued): AuthPolicy => ({
  kind: 'pubkey',
  certs: [leaf.der],
  privateKey: leaf.key,
  cas: [ca.der],
});

describe('IKEv1 Main Mode with certificates', () => {
  for (const keyType of ['rsa', 'ec'] as const) {
    it(`${keyType === 'rsa' ? 'RSA' : 'ECDSA P-256'}: CERTREQ naming the CA in MM3 and MM4, CERT + SIG in MM5/MM6, both authenticated`, async () => {
      const { ca, a: ca_, b: cb_ } = pki(keyType);
      const m = new V1Mesh();
      await m.clock.advance(PKI_NOW - m.clock.now());
      const a = m.add('a', '10.0.0.1');
      const b = m.add('b', '10.0.0.2');
      a.manager.setPeer(v1Policy(a, b, { auth: auth(ca_, ca), dpdDelayMs: 0 }));
      b.manager.setPeer(v1Policy(b, a, { auth: auth(cb_, ca), dpdDelayMs: 0 }));
      await a.manager.initiate('b');
      await m.settle();
      expect(a.manager.established('b')).toHaveLength(1);
      expect(b.manager.established('a')).toHaveLength(1);
      expect(installedChildren(a, 'b')).toHaveLength(1);
      expect(b.manager.established('a')[0]?.remoteId).toEqual(parseIdentity('fqdn:a.mesh'));

      const caDn = parseCertificate(ca.der).subjectDer;
      const plain = m.sent.slice(0, 4).map((w) => decodeIsakmpMessage(w.data).payloads ?? []);
      expect(plain).toHaveLength(4);
      for (const step of [2, 3]) {
        const crs = plain[step]!.filter((p) => p.type === V1PayloadType.CR);
        expect(crs, `MM${step + 1}`).toHaveLength(1);
        const cr = crs[0] as { encoding: number; data: Buffer };
        expect(cr.encoding).toBe(V1CertEncoding.X509_SIGNATURE);
        expect(cr.data.equals(caDn)).toBe(true);
      }
      // MM1/MM2 offer and accept the key's signature method.
      const method = keyType === 'rsa' ? 3 : 9;
      const sa1 = plain[1]!.find((p) => p.type === V1PayloadType.SA) as {
        proposals: { transforms: { attributes: { type: number; value: number }[] }[] }[];
      };
      expect(sa1.proposals[0]!.transforms[0]!.attributes.find((x) => x.type === 3)?.value).toBe(method);
    });
  }

  it('a PSK peer sends no CERTREQ', async () => {
    const m = new V1Mesh();
    const a = m.add('a', '10.0.0.1');
    m.add('b', '10.0.0.2');
    m.pair({ dpdDelayMs: 0 });
    await a.manager.initiate('b');
    await m.settle();
    const plain = m.sent.slice(0, 4).flatMap((w) => decodeIsakmpMessage(w.data).payloads ?? []);
    expect(plain.filter((p) => p.type === V1PayloadType.CR)).toEqual([]);
  });
});
