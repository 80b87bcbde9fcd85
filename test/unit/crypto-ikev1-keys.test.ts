/**
 * IKEv1 key schedule pieces computed independently with node:crypto:
 * Appendix B key expansion, SKEYID for signatures, KEYMAT, NAT-D, destroy().
 */
import { createHash, createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  derivePhase1Keys,
  deriveSkeyid,
  expandKey,
  hmacPrf,
  natdHash,
  nodeHash,
  quickModeHash3,
  quickModeKeymat,
} from '../../src/crypto/ikev1/index.js';
import { CoatiError } from '../../src/errors.js';

const hmac = (hash: string, key: Buffer, ...data: Buffer[]) =>
  createHmac(hash, key).update(Buffer.concat(data)).digest();
const bytes = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));

const ni = bytes(32, 1);
const nr = bytes(32, 2);
const gxy = bytes(128, 3);
const cookieI = bytes(8, 4);
const cookieR = bytes(8, 5);
const psk = Buffer.from('expansion test psk');

describe('IKEv1 phase-1 key schedule', () => {
  it('expands a 20-byte SHA-1 SKEYID_e into a 32-byte AES-256 key (Appendix B)', () => {
    const keys = derivePhase1Keys({
      prf: hmacPrf('sha1'),
      auth: { kind: 'psk', psk },
      ni,
      nr,
      sharedSecret: gxy,
      cookieI,
      cookieR,
      encKeyLen: 32,
    });
    const skeyid = hmac('sha1', psk, ni, nr);
    const d = hmac('sha1', skeyid, gxy, cookieI, cookieR, Buffer.from([0]));
    const a = hmac('sha1', skeyid, d, gxy, cookieI, cookieR, Buffer.from([1]));
    const e = hmac('sha1', skeyid, a, gxy, cookieI, cookieR, Buffer.from([2]));
    const k1 = hmac('sha1', e, Buffer.from([0]));
    const k2 = hmac('sha1', e, k1);
    expect(keys.skeyid.equals(skeyid)).toBe(true);
    expect(keys.skeyidD.equals(d)).toBe(true);
    expect(keys.skeyidA.equals(a)).toBe(true);
    expect(keys.skeyidE.equals(e)).toBe(true);
    expect(keys.skeyidE).toHaveLength(20);
    expect(keys.encKey).toHaveLength(32);
    expect(keys.encKey.equals(Buffer.concat([k1, k2]).subarray(0, 32))).toBe(true);
    // Not simply SKEYID_e padded or repeated.
    expect(keys.encKey.subarray(0, 20).equals(e)).toBe(false);
  });

  it('expands three blocks for 3DES-sized output from a short PRF and truncates when long enough', () => {
    const prf = hmacPrf('md5');
    const key = bytes(16, 9);
    const k1 = hmac('md5', key, Buffer.from([0]));
    const k2 = hmac('md5', key, k1);
    expect(expandKey(prf, key, 24).equals(Buffer.concat([k1, k2]).subarray(0, 24))).toBe(true);
    const long = bytes(32, 7);
    expect(expandKey(prf, long, 16).equals(long.subarray(0, 16))).toBe(true);
    expect(() => expandKey(prf, key, -1)).toThrow(CoatiError);
  });

  it('computes SKEYID for signature authentication as prf(Ni_b | Nr_b, g^xy)', () => {
    const skeyid = deriveSkeyid({ prf: hmacPrf('sha256'), auth: { kind: 'signature' }, ni, nr, sharedSecret: gxy });
    expect(skeyid.equals(hmac('sha256', Buffer.concat([ni, nr]), gxy))).toBe(true);
    const pskSkeyid = deriveSkeyid({ prf: hmacPrf('sha256'), auth: { kind: 'psk', psk }, ni, nr, sharedSecret: gxy });
    expect(pskSkeyid.equals(skeyid)).toBe(false);
  });

  it('rejects cookies that are not 8 bytes and unknown hashes', () => {
    const input = { prf: hmacPrf('sha256'), auth: { kind: 'psk', psk } as const, ni, nr, sharedSecret: gxy };
    expect(() => derivePhase1Keys({ ...input, cookieI: bytes(7, 0), cookieR, encKeyLen: 16 })).toThrow(
      expect.objectContaining({ code: 'IKEV1_BAD_COOKIE' }),
    );
    expect(() => hmacPrf('no-such-hash')).toThrow(expect.objectContaining({ code: 'IKEV1_UNKNOWN_HASH' }));
  });

  it('zeroes every key on destroy()', () => {
    const keys = derivePhase1Keys({
      prf: hmacPrf('sha256'),
      auth: { kind: 'psk', psk },
      ni,
      nr,
      sharedSecret: gxy,
      cookieI,
      cookieR,
      encKeyLen: 16,
    });
    expect(keys.skeyidA.some((b) => b !== 0)).toBe(true);
    keys.destroy();
    expect(keys.isDestroyed).toBe(true);
    for (const k of [keys.skeyid, keys.skeyidD, keys.skeyidA, keys.skeyidE, keys.encKey]) {
      expect(k.every((b) => b === 0)).toBe(true);
    }
  });
});

describe('IKEv1 Quick Mode KEYMAT', () => {
  const skeyidD = bytes(20, 11);
  const qmNi = bytes(16, 12);
  const qmNr = bytes(16, 13);

  it('without PFS: K1 | K2 ... with K(n) = prf(SKEYID_d, K(n-1) | protocol | SPI | Ni_b | Nr_b)', () => {
    const spi = Buffer.from([0xc0, 0xb5, 0x8e, 0x99]);
    const seed = Buffer.concat([Buffer.from([3]), spi, qmNi, qmNr]);
    const k1 = hmac('sha1', skeyidD, seed);
    const k2 = hmac('sha1', skeyidD, k1, seed);
    const k3 = hmac('sha1', skeyidD, k2, seed);
    const km = quickModeKeymat({
      prf: hmacPrf('sha1'),
      skeyidD,
      protocol: 3,
      spi: 0xc0b58e99,
      ni: qmNi,
      nr: qmNr,
      length: 52,
    });
    expect(km.equals(Buffer.concat([k1, k2, k3]).subarray(0, 52))).toBe(true);
    const sameFromBytes = quickModeKeymat({
      prf: hmacPrf('sha1'),
      skeyidD,
      protocol: 3,
      spi,
      ni: qmNi,
      nr: qmNr,
      length: 52,
    });
    expect(sameFromBytes.equals(km)).toBe(true);
  });

  it('with PFS puts g(qm)^xy first, and each SPI gets its own KEYMAT', () => {
    const qmGxy = bytes(64, 14);
    const base = { prf: hmacPrf('sha256'), skeyidD, protocol: 3, ni: qmNi, nr: qmNr, length: 16 };
    const withPfs = quickModeKeymat({ ...base, spi: 1, sharedSecret: qmGxy });
    const expected = hmac('sha256', skeyidD, qmGxy, Buffer.from([3, 0, 0, 0, 1]), qmNi, qmNr).subarray(0, 16);
    expect(withPfs.equals(expected)).toBe(true);
    expect(quickModeKeymat({ ...base, spi: 1 }).equals(withPfs)).toBe(false);
    expect(quickModeKeymat({ ...base, spi: 2, sharedSecret: qmGxy }).equals(withPfs)).toBe(false);
  });

  it('rejects a malformed SPI, protocol or length', () => {
    const base = { prf: hmacPrf('sha256'), skeyidD, protocol: 3, ni: qmNi, nr: qmNr, spi: 1, length: 16 };
    expect(() => quickModeKeymat({ ...base, spi: Buffer.alloc(2) })).toThrow(
      expect.objectContaining({ code: 'IKEV1_BAD_SPI' }),
    );
    expect(() => quickModeKeymat({ ...base, protocol: 256 })).toThrow(CoatiError);
    expect(() => quickModeKeymat({ ...base, length: 0 })).toThrow(CoatiError);
  });

  it('HASH(3) is prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b)', () => {
    const skeyidA = bytes(32, 15);
    const h = quickModeHash3(hmacPrf('sha256'), skeyidA, 0x01020304, qmNi, qmNr);
    expect(h.equals(hmac('sha256', skeyidA, Buffer.from([0, 1, 2, 3, 4]), qmNi, qmNr))).toBe(true);
  });
});

describe('IKEv1 NAT-D', () => {
  it('hashes CKY-I | CKY-R | IP | port for IPv4 and IPv6', () => {
    const v6 = Buffer.from('20010db8000000000000000000000001', 'hex');
    const expected = createHash('sha1')
      .update(Buffer.concat([cookieI, cookieR, v6, Buffer.from([0x11, 0x94])]))
      .digest();
    expect(natdHash(nodeHash('sha1'), cookieI, cookieR, v6, 4500).equals(expected)).toBe(true);
    const v4 = natdHash(nodeHash('sha256'), cookieI, cookieR, Buffer.from([10, 0, 0, 1]), 500);
    expect(natdHash(nodeHash('sha256'), cookieI, cookieR, Buffer.from([10, 0, 0, 1]), 4500).equals(v4)).toBe(false);
    expect(() => natdHash(nodeHash('sha1'), cookieI, cookieR, Buffer.alloc(5), 500)).toThrow(
      expect.objectContaining({ code: 'IKEV1_BAD_ADDRESS' }),
    );
  });
});
