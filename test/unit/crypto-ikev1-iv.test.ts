/**
 * Phase1Crypto: CBC IV chaining per exchange, padding, and retransmissions,
 * with an initiator and a responder object talking to each other.
 */
import { createCipheriv, createDecipheriv, createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { nodeHash, Phase1Crypto, payloadChainLength, phase1Iv, phase2Iv } from '../../src/crypto/ikev1/index.js';

const AES256 = { nodeName: 'aes-256-cbc', keyLen: 32, blockSize: 16 } as const;
const key = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex');
const gxi = Buffer.alloc(64, 0xa1);
const gxr = Buffer.alloc(64, 0xb2);
const hash = nodeHash('sha1');
const QM_MID = 0x11223344;

/** A payload chain: one generic payload (next 0) of `n` body bytes filled with `fill`. */
function chain(n: number, fill: number): Buffer {
  const p = Buffer.alloc(4 + n, fill);
  p[0] = 0;
  p[1] = 0;
  p.writeUInt16BE(4 + n, 2);
  return p;
}

function pair() {
  const opts = { cipher: AES256, key, hash, gxi, gxr };
  return { i: new Phase1Crypto(opts), r: new Phase1Crypto(opts) };
}

function cbc(iv: Buffer, data: Buffer): Buffer {
  const c = createCipheriv('aes-256-cbc', key, iv).setAutoPadding(false);
  return Buffer.concat([c.update(data), c.final()]);
}

describe('Phase1Crypto IV chaining', () => {
  it('starts at hash(g^xi | g^xr), chains last ciphertext blocks, and derives phase-2 IVs', () => {
    const { i, r } = pair();
    const iv0 = createHash('sha1')
      .update(Buffer.concat([gxi, gxr]))
      .digest()
      .subarray(0, 16);
    expect(i.nextIv(0).equals(iv0)).toBe(true);
    expect(phase1Iv(hash, gxi, gxr, 16).equals(iv0)).toBe(true);

    const mm5 = chain(40, 5);
    const c5 = i.encrypt(0, mm5);
    expect(c5).toHaveLength(48);
    expect(c5.equals(cbc(iv0, Buffer.concat([mm5, Buffer.alloc(4)])))).toBe(true);
    expect(r.decrypt(0, c5).subarray(0, mm5.length).equals(mm5)).toBe(true);

    const mm6 = chain(44, 6);
    const c6 = r.encrypt(0, mm6);
    expect(c6.equals(cbc(c5.subarray(-16), mm6))).toBe(true);
    expect(i.decrypt(0, c6).equals(mm6)).toBe(true);

    const qmIv = createHash('sha1')
      .update(Buffer.concat([c6.subarray(-16), Buffer.from([0x11, 0x22, 0x33, 0x44])]))
      .digest()
      .subarray(0, 16);
    expect(i.nextIv(QM_MID).equals(qmIv)).toBe(true);
    expect(phase2Iv(hash, c6.subarray(-16), QM_MID, 16).equals(qmIv)).toBe(true);
    const qm1 = chain(100, 7);
    const cq1 = i.encrypt(QM_MID, qm1);
    expect(cq1.equals(cbc(qmIv, Buffer.concat([qm1, Buffer.alloc(8)])))).toBe(true);
    expect(r.decrypt(QM_MID, cq1).subarray(0, qm1.length).equals(qm1)).toBe(true);
  });

  it('keeps concurrent exchanges independent', () => {
    const { i, r } = pair();
    r.decrypt(0, i.encrypt(0, chain(12, 1)));
    i.decrypt(0, r.encrypt(0, chain(12, 2)));
    const a = i.encrypt(1, chain(20, 3));
    const b = i.encrypt(2, chain(20, 4));
    // The responder sees them in the opposite order.
    expect(r.decrypt(2, b).subarray(0, 24).equals(chain(20, 4))).toBe(true);
    expect(r.decrypt(1, a).subarray(0, 24).equals(chain(20, 3))).toBe(true);
    expect(
      i
        .decrypt(1, r.encrypt(1, chain(8, 5)))
        .subarray(0, 12)
        .equals(chain(8, 5)),
    ).toBe(true);
    expect(
      i
        .decrypt(2, r.encrypt(2, chain(8, 6)))
        .subarray(0, 12)
        .equals(chain(8, 6)),
    ).toBe(true);
  });
});

describe('Phase1Crypto padding', () => {
  it('pads with zeros to the block size, adds nothing to a block multiple, and decrypt keeps the padding', () => {
    const { i, r } = pair();
    const odd = chain(26, 9);
    const ct = i.encrypt(0, odd);
    expect(ct).toHaveLength(32);
    const plain = r.decrypt(0, ct);
    expect(plain.subarray(30).equals(Buffer.alloc(2))).toBe(true);
    expect(payloadChainLength(plain, 1)).toBe(30);
    const exact = chain(28, 8);
    expect(r.encrypt(0, exact)).toHaveLength(32);
  });

  it('accepts a peer that pads with random bytes and a pad-length octet', () => {
    const { i, r } = pair();
    const body = chain(21, 3);
    const padded = Buffer.concat([body, Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x55, 0x66, 0x06])]);
    const ct = cbc(i.nextIv(0), padded);
    const plain = r.decrypt(0, ct);
    expect(plain.equals(padded)).toBe(true);
    expect(plain.subarray(0, payloadChainLength(plain, 1)).equals(body)).toBe(true);
  });

  it('rejects a body that is not a positive multiple of the block size', () => {
    const { r } = pair();
    expect(() => r.decrypt(0, Buffer.alloc(17))).toThrow(
      expect.objectContaining({ code: 'IKEV1_BAD_CIPHERTEXT_LENGTH' }),
    );
    expect(() => r.decrypt(0, Buffer.alloc(0))).toThrow(
      expect.objectContaining({ code: 'IKEV1_BAD_CIPHERTEXT_LENGTH' }),
    );
    expect(() => payloadChainLength(Buffer.from([0, 0, 0, 40, 1]), 5)).toThrow(
      expect.objectContaining({ code: 'IKEV1_BAD_PAYLOAD_CHAIN' }),
    );
  });
});

describe('Phase1Crypto retransmissions', () => {
  it('re-decrypts a retransmitted MM5 without moving the IV, and the responder resends MM6 unchanged', () => {
    const { i, r } = pair();
    const c5 = i.encrypt(0, chain(40, 5));
    const p5 = r.decrypt(0, c5);
    const c6 = r.encrypt(0, chain(40, 6));
    const ivAfter6 = r.nextIv(0);
    // MM6 was lost: the initiator resends MM5 byte for byte.
    const resent = i.lastSent(0)!;
    expect(resent.equals(c5)).toBe(true);
    expect(r.isRetransmission(0, resent)).toBe(true);
    expect(r.decrypt(0, resent).equals(p5)).toBe(true);
    expect(r.nextIv(0).equals(ivAfter6)).toBe(true);
    expect(r.lastSent(0)!.equals(c6)).toBe(true);
    // The resent MM6 still decrypts, and Quick Mode works on both sides afterwards.
    expect(i.decrypt(0, r.lastSent(0)!).subarray(0, 44).equals(chain(40, 6))).toBe(true);
    const q1 = i.encrypt(QM_MID, chain(60, 7));
    expect(r.decrypt(QM_MID, q1).subarray(0, 64).equals(chain(60, 7))).toBe(true);
  });

  it('recognises a retransmitted QM1 after QM3 and a duplicate QM2 at the initiator', () => {
    const { i, r } = pair();
    r.decrypt(0, i.encrypt(0, chain(12, 1)));
    i.decrypt(0, r.encrypt(0, chain(12, 2)));
    const q1 = i.encrypt(QM_MID, chain(60, 1));
    const p1 = r.decrypt(QM_MID, q1);
    const q2 = r.encrypt(QM_MID, chain(60, 2));
    const p2 = i.decrypt(QM_MID, q2);
    expect(i.decrypt(QM_MID, q2).equals(p2)).toBe(true);
    const q3 = i.encrypt(QM_MID, chain(28, 3));
    expect(r.decrypt(QM_MID, q3).equals(chain(28, 3))).toBe(true);
    const ivR = r.nextIv(QM_MID);
    expect(r.isRetransmission(QM_MID, q1)).toBe(true);
    expect(r.decrypt(QM_MID, q1).equals(p1)).toBe(true);
    expect(r.nextIv(QM_MID).equals(ivR)).toBe(true);
    expect(r.isRetransmission(QM_MID, q3)).toBe(true);
    expect(r.isRetransmission(QM_MID, q2)).toBe(false);
  });

  it('treating a retransmission as new would desynchronise the IV (why the check exists)', () => {
    const { i, r } = pair();
    const c5 = i.encrypt(0, chain(40, 5));
    r.decrypt(0, c5);
    r.encrypt(0, chain(40, 6));
    // What a naive implementation would do: decrypt the duplicate with the current IV.
    const naive = createDecipheriv('aes-256-cbc', key, r.nextIv(0)).setAutoPadding(false).update(c5);
    expect(naive.subarray(0, 16).equals(chain(40, 5).subarray(0, 16))).toBe(false);
  });

  it('rollback() undoes a forged message so the genuine one still decrypts', () => {
    const { i, r } = pair();
    const forged = Buffer.alloc(32, 0x42);
    const garbage = r.decrypt(0, forged);
    expect(payloadChainLengthOrNull(garbage)).toBeNull();
    r.rollback(0);
    const genuine = i.encrypt(0, chain(40, 5));
    expect(r.decrypt(0, genuine).subarray(0, 44).equals(chain(40, 5))).toBe(true);
    expect(() => r.rollback(0)).not.toThrow();
    expect(() => r.rollback(0)).toThrow(expect.objectContaining({ code: 'IKEV1_NOTHING_TO_ROLL_BACK' }));

    // Without the rollback the genuine message would come out wrong.
    const other = pair();
    other.r.decrypt(0, forged);
    const genuine2 = other.i.encrypt(0, chain(40, 5));
    expect(other.r.decrypt(0, genuine2).subarray(0, 44).equals(chain(40, 5))).toBe(false);
  });

  it('forgets finished exchanges, bounds the number kept, and refuses to work after destroy()', () => {
    const r = new Phase1Crypto({ cipher: AES256, key, hash, gxi, gxr, maxExchanges: 2 });
    const iv1 = r.nextIv(1);
    r.encrypt(1, chain(12, 1));
    r.forget(1);
    expect(r.lastSent(1)).toBeUndefined();
    expect(r.nextIv(1).equals(iv1)).toBe(true);
    r.encrypt(1, chain(12, 1));
    r.nextIv(2);
    expect(r.lastSent(1)).toBeDefined();
    r.nextIv(3);
    // Three exchanges with a limit of two: the oldest (1) was dropped.
    expect(r.lastSent(1)).toBeUndefined();
    r.destroy();
    expect(() => r.encrypt(0, chain(12, 1))).toThrow(expect.objectContaining({ code: 'IKEV1_SA_DESTROYED' }));
  });
});

function payloadChainLengthOrNull(plain: Buffer): number | null {
  try {
    return payloadChainLength(plain, 1);
  } catch {
    return null;
  }
}
