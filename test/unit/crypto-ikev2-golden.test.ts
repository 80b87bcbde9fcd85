/**
 * Golden IKEv2 data from strongSwan 5.9.8: recompute the key schedule from
 * the logged nonces/SPIs/DH secret, decrypt every captured SK payload,
 * re-seal it, and check the AUTH values and the ECDSA signature.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { pskAuth, signedOctets, verifyPskAuth } from '../../src/crypto/ikev2/auth.js';
import { deriveChildKeys, deriveIkeSaKeys } from '../../src/crypto/ikev2/keys.js';
import { verifyAuth } from '../../src/crypto/signatures.js';
import { createSkCipher } from '../../src/crypto/sk.js';
import {
  EncrId,
  encrKeyMaterialSize,
  espSaAlgorithms,
  IntegId,
  integKeyMaterialSize,
  PrfId,
} from '../../src/crypto/transforms.js';
import { GOLDEN_DIR, goldenCaptures, goldenIke, ikeMajorVersion } from '../helpers/golden.js';
import { type GoldenIkev2Sa, goldenIkev2Sas, ikeHeader, KEYLOGS, walkPayloads } from '../helpers/keylog.js';

const SAS = KEYLOGS.flatMap(goldenIkev2Sas);

/** Negotiated suites per connection (see the golden README). */
function suite(sa: GoldenIkev2Sa) {
  return sa.conn === 'v2-cert'
    ? { prf: PrfId.HMAC_SHA2_256, encr: EncrId.AES_GCM_16, keyLen: 256, integ: undefined }
    : { prf: PrfId.HMAC_SHA2_256, encr: EncrId.AES_CBC, keyLen: 128, integ: IntegId.HMAC_SHA2_256_128 };
}

const ALL_V2 = goldenCaptures().flatMap((c) =>
  goldenIke(c)
    .filter((d) => ikeMajorVersion(d.ike) === 2)
    .map((d) => ({ capture: c, ike: d.ike })),
);

test('the keylogs describe v2-psk and v2-cert IKE SAs on both sides', () => {
  expect(SAS.length).toBe(10);
  expect(new Set(SAS.map((s) => s.conn))).toEqual(new Set(['v2-psk', 'v2-cert']));
});

describe.each(SAS.map((s) => [`${s.log} ${s.conn}|${s.saId}`, s] as const))('%s', (_name, sa) => {
  const s = suite(sa);
  const keys = deriveIkeSaKeys({
    ...s,
    ni: sa.ni,
    nr: sa.nr,
    sharedSecret: sa.sharedSecret,
    spiI: sa.spiI,
    spiR: sa.spiR,
  });

  test('SKEYSEED and the seven keys match the log', () => {
    expect(keys.skeyseed.toString('hex')).toBe(sa.skeyseed.toString('hex'));
    const want = (k: string) => sa.keys.get(k)?.toString('hex');
    expect(keys.skD.toString('hex')).toBe(want('Sk_d'));
    expect(keys.skEi.toString('hex')).toBe(want('Sk_ei'));
    expect(keys.skEr.toString('hex')).toBe(want('Sk_er'));
    expect(keys.skPi.toString('hex')).toBe(want('Sk_pi'));
    expect(keys.skPr.toString('hex')).toBe(want('Sk_pr'));
    if (s.integ) {
      expect(keys.skAi.toString('hex')).toBe(want('Sk_ai'));
      expect(keys.skAr.toString('hex')).toBe(want('Sk_ar'));
    } else {
      expect(keys.skAi.length).toBe(0);
      expect(sa.keys.has('Sk_ai')).toBe(false);
    }
  });

  test('the IKE_SA_INIT messages in the octets are the captured ones', () => {
    const found = ALL_V2.filter((m) => m.ike.equals(sa.initRequest) || m.ike.equals(sa.initResponse));
    expect(found.length).toBeGreaterThanOrEqual(2);
  });

  test('AUTH signed octets are recomputed from message, nonce and ID', () => {
    expect(
      signedOctets({
        realMessage: sa.initRequest,
        peerNonce: sa.nr,
        prf: s.prf,
        skP: keys.skPi,
        idPayloadBody: sa.idI,
      }),
    ).toEqual(sa.octetsI);
    expect(
      signedOctets({
        realMessage: sa.initResponse,
        peerNonce: sa.ni,
        prf: s.prf,
        skP: keys.skPr,
        idPayloadBody: sa.idR,
      }),
    ).toEqual(sa.octetsR);
  });

  // Only SAs whose log carries the data get these tests (no skipped tests).
  if (sa.psk !== undefined)
    test('PSK AUTH values match the log', () => {
      const psk = sa.psk ?? Buffer.alloc(0);
      expect(psk.toString()).toBe('rig-test-psk-v2-NOT-A-SECRET');
      expect(pskAuth(s.prf, psk, sa.octetsI)).toEqual(sa.pskAuthI);
      expect(pskAuth(s.prf, psk, sa.octetsR)).toEqual(sa.pskAuthR);
      expect(verifyPskAuth(s.prf, psk, sa.octetsI, sa.pskAuthI ?? Buffer.alloc(0))).toBe(true);
      expect(verifyPskAuth(s.prf, Buffer.from('wrong'), sa.octetsI, sa.pskAuthI ?? Buffer.alloc(0))).toBe(false);
    });

  if (sa.child !== undefined)
    test('CHILD_SA keys from SK_d and the nonces match the log', () => {
      const c = sa.child!;
      expect(c.seed).toEqual(Buffer.concat([sa.ni, sa.nr]));
      const espEncr = s.encr;
      const espInteg = s.integ;
      const child = deriveChildKeys({
        prf: s.prf,
        skD: keys.skD,
        ni: sa.ni,
        nr: sa.nr,
        encrKeyLen: encrKeyMaterialSize(espEncr, s.keyLen),
        integKeyLen: integKeyMaterialSize(espInteg),
      });
      expect(child.initiatorToResponder.encKey).toEqual(c.encI);
      expect(child.responderToInitiator.encKey).toEqual(c.encR);
      if (espInteg) {
        expect(child.initiatorToResponder.integKey).toEqual(c.integI);
        expect(child.responderToInitiator.integKey).toEqual(c.integR);
      }
      const alg = espSaAlgorithms({
        encr: espEncr,
        keyBits: s.keyLen,
        integ: espInteg,
        encKey: child.initiatorToResponder.encKey,
        integKey: child.initiatorToResponder.integKey,
      });
      if ('aead' in alg) expect(alg.aead).toMatchObject({ name: 'rfc4106(gcm(aes))', icvBits: 128 });
      else expect(alg.auth).toMatchObject({ name: 'hmac(sha256)', truncBits: 128 });
      child.destroy();
      expect(child.initiatorToResponder.encKey.every((b) => b === 0)).toBe(true);
    });
});

/** Every encrypted message of an IKE SA, decrypted, with what is needed to re-seal it. */
function openAll(sa: GoldenIkev2Sa) {
  const s = suite(sa);
  const keys = deriveIkeSaKeys({
    ...s,
    ni: sa.ni,
    nr: sa.nr,
    sharedSecret: sa.sharedSecret,
    spiI: sa.spiI,
    spiR: sa.spiR,
  });
  const seen = new Set<string>();
  const out = [];
  for (const m of ALL_V2) {
    const h = ikeHeader(m.ike);
    if (!h.spiI.equals(sa.spiI) || !h.spiR.equals(sa.spiR)) continue;
    const key = m.ike.toString('hex');
    if (seen.has(key)) continue; // the same exchange appears in both runs' captures only once per SA, but be safe
    seen.add(key);
    const sk = walkPayloads(m.ike, h.nextPayload, 28).find((p) => p.type === 46);
    if (!sk) continue;
    const fromInitiator = h.isInitiator;
    const cipher = createSkCipher({
      encr: s.encr,
      keyLen: s.keyLen,
      integ: s.integ,
      encKey: fromInitiator ? keys.skEi : keys.skEr,
      integKey: fromInitiator ? keys.skAi : keys.skAr,
    });
    const aad = m.ike.subarray(0, sk.offset + 4);
    const body = sk.body;
    const plain = cipher.open(aad, body);
    out.push({ capture: m.capture, h, sk, aad, body, plain, cipher, firstInner: m.ike[sk.offset] ?? 0 });
  }
  return out;
}

describe('SK payloads of the captures', () => {
  const leftSas = SAS.filter((s) => s.log.endsWith('left-keys'));

  test.each(leftSas.map((s) => [`${s.log} ${s.conn}|${s.saId}`, s] as const))(
    '%s: every SK payload verifies and decrypts to a payload chain',
    (_n, sa) => {
      const msgs = openAll(sa);
      expect(msgs.length).toBeGreaterThanOrEqual(4); // IKE_AUTH pair + INFORMATIONAL (delete) pair
      const exchanges = new Set(msgs.map((m) => m.h.exchange));
      expect(exchanges.has(35)).toBe(true); // IKE_AUTH
      expect(exchanges.has(37)).toBe(true); // INFORMATIONAL
      for (const m of msgs) {
        expect(m.plain, `${m.capture} msgid ${m.h.msgId}`).not.toBeNull();
        const plain = m.plain!;
        // The inner chain must walk to exactly its end.
        const inner = walkPayloads(plain, m.firstInner, 0);
        const last = inner.at(-1);
        if (last) expect(last.offset + 4 + last.body.length).toBe(plain.length);
        else expect(plain.length).toBe(0); // empty INFORMATIONAL (liveness)
        if (m.h.exchange === 35 && !m.h.isResponse) {
          expect(inner.map((p) => p.type)).toContain(35); // IDi
          expect(inner.map((p) => p.type)).toContain(39); // AUTH
        }
        // A flipped bit anywhere in the body, or in the header, must fail.
        const bad = Buffer.from(m.body);
        bad[bad.length - 1] = (bad[bad.length - 1] ?? 0) ^ 1;
        expect(m.cipher.open(m.aad, bad)).toBeNull();
        const badAad = Buffer.from(m.aad);
        badAad[20] = (badAad[20] ?? 0) ^ 0x80;
        expect(m.cipher.open(badAad, m.body)).toBeNull();
      }
    },
  );

  test.each(leftSas.map((s) => [`${s.log} ${s.conn}|${s.saId}`, s] as const))(
    '%s: re-sealing with the captured IV reproduces the captured bytes',
    (_n, sa) => {
      for (const m of openAll(sa)) {
        const plain = m.plain!;
        const ivSize = sa.conn === 'v2-cert' ? 8 : 16;
        const iv = m.body.subarray(0, ivSize);
        expect(m.cipher.sealedLength(plain.length)).toBeLessThanOrEqual(m.body.length);
        const resealed = m.cipher.seal(m.aad, plain, iv);
        // strongSwan pads minimally too (none for GCM), so the lengths agree.
        expect(resealed.length).toBe(m.body.length);
        expect(m.cipher.open(m.aad, resealed)).toEqual(plain);
        if (sa.conn === 'v2-cert') {
          // AES-GCM: no padding bytes, so the whole body is byte-identical.
          expect(resealed).toEqual(m.body);
        } else {
          // AES-CBC: strongSwan's padding bytes are random, ours are zeros, so
          // only the ciphertext blocks before the last (padding) block agree;
          // the last block and the ICV differ.
          const upTo = m.body.length - 16 - 16;
          expect(resealed.subarray(0, upTo)).toEqual(m.body.subarray(0, upTo));
          expect(resealed.subarray(upTo)).not.toEqual(m.body.subarray(upTo));
        }
      }
    },
  );
});

describe('v2-cert ECDSA AUTH payloads', () => {
  const certSas = SAS.filter((s) => s.conn === 'v2-cert' && s.log.endsWith('left-keys'));
  const pem = (name: string) => new X509Certificate(readFileSync(join(GOLDEN_DIR, 'pki', `${name}.cert.pem`)));

  test.each(certSas.map((s) => [`${s.log} ${s.conn}|${s.saId}`, s] as const))(
    '%s: both AUTH signatures verify with the certificates from pki/',
    (_n, sa) => {
      const auths = openAll(sa).filter((m) => m.h.exchange === 35 && m.plain);
      expect(auths.length).toBe(2);
      for (const m of auths) {
        const inner = walkPayloads(m.plain!, m.firstInner, 0);
        const cert = inner.find((p) => p.type === 37);
        const auth = inner.find((p) => p.type === 39);
        expect(cert?.body[0]).toBe(4); // X.509 Certificate - Signature
        expect(auth?.body[0]).toBe(14); // Digital Signature
        const x509 = new X509Certificate(cert!.body.subarray(1));
        const expected = pem(m.h.isInitiator ? 'left' : 'right');
        expect(x509.raw).toEqual(expected.raw);
        expect(x509.checkIssued(pem('ca'))).toBe(true);
        const octets = m.h.isInitiator ? sa.octetsI : sa.octetsR;
        const authData = auth!.body.subarray(4);
        const res = verifyAuth({ method: 14, publicKey: x509.publicKey, octets, authData });
        expect(res).toEqual({ ok: true, scheme: 'ecdsa-sha256' });
        // The other side's key, or the other octets, must not verify.
        const other = pem(m.h.isInitiator ? 'right' : 'left').publicKey;
        expect(verifyAuth({ method: 14, publicKey: other, octets, authData }).ok).toBe(false);
        const otherOctets = m.h.isInitiator ? sa.octetsR : sa.octetsI;
        expect(verifyAuth({ method: 14, publicKey: x509.publicKey, octets: otherOctets, authData }).ok).toBe(false);
      }
    },
  );
});
