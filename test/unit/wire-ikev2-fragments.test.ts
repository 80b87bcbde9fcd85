import { describe, expect, it } from 'vitest';
import {
  type DecryptedFragment,
  decodePayloadChain,
  encodePayloadChain,
  FragmentReassembler,
  PAYLOAD,
  type Payload,
  splitForFragments,
  WireEncodeError,
} from '../../src/wire/ikev2/index.js';

const inner: Payload[] = [
  { type: PAYLOAD.IDi, critical: false, idType: 2, data: Buffer.from('left.cert.rig.test') },
  { type: PAYLOAD.CERT, critical: false, encoding: 4, data: Buffer.alloc(1500, 0x30) },
  { type: PAYLOAD.AUTH, critical: false, method: 14, data: Buffer.alloc(80, 0x41) },
];

function fragments(bytes: Buffer, first: number, size: number): DecryptedFragment[] {
  const parts = splitForFragments(first, bytes, size);
  return parts.map((plaintext, i) => ({
    fragmentNumber: i + 1,
    totalFragments: parts.length,
    innerFirstPayload: i === 0 ? first : 0,
    plaintext,
  }));
}

describe('RFC 7383 fragmentation helpers', () => {
  const { firstType, bytes } = encodePayloadChain(inner);

  it('splits into bounded chunks that concatenate back', () => {
    const parts = splitForFragments(firstType, bytes, 500);
    expect(parts.length).toBe(Math.ceil(bytes.length / 500));
    expect(parts.every((p) => p.length <= 500 && p.length > 0)).toBe(true);
    expect(Buffer.concat(parts).equals(bytes)).toBe(true);
    expect(splitForFragments(firstType, bytes, bytes.length)).toHaveLength(1);
  });

  it('refuses bad arguments', () => {
    expect(() => splitForFragments(0, bytes, 100)).toThrow(WireEncodeError);
    expect(() => splitForFragments(PAYLOAD.SK, bytes, 100)).toThrow(WireEncodeError);
    expect(() => splitForFragments(firstType, bytes, 0)).toThrow(WireEncodeError);
    expect(() => splitForFragments(firstType, Buffer.alloc(0), 10)).toThrow(WireEncodeError);
  });

  it('reassembles out of order, ignoring duplicates, into the original chain', () => {
    const frags = fragments(bytes, firstType, 400);
    const r = new FragmentReassembler();
    const order = [2, 0, 4, 1, 3].filter((i) => i < frags.length);
    expect(order.length).toBe(frags.length);
    let last: ReturnType<FragmentReassembler['add']> | undefined;
    for (const [k, i] of order.entries()) {
      last = r.add(frags[i]!);
      if (k === 0) expect(r.add(frags[i]!)).toEqual({ status: 'duplicate' });
      if (k < order.length - 1) expect(last).toEqual({ status: 'incomplete', received: k + 1, total: frags.length });
    }
    expect(last?.status).toBe('complete');
    if (last?.status !== 'complete') return;
    expect(last.innerFirstPayload).toBe(PAYLOAD.IDi);
    expect(last.bytes.equals(bytes)).toBe(true);
    expect(decodePayloadChain(last.bytes, last.innerFirstPayload)).toEqual(inner);
    expect(r.add(frags[0]!)).toEqual({ status: 'duplicate' });
  });

  it('a larger total restarts reassembly; a smaller one is stale', () => {
    const small = fragments(bytes, firstType, 1000); // 2 fragments
    const big = fragments(bytes, firstType, 600); // 3 fragments
    const r = new FragmentReassembler();
    expect(r.add(small[0]!).status).toBe('incomplete');
    expect(r.add(big[1]!)).toEqual({ status: 'incomplete', received: 1, total: 3 });
    expect(r.add(small[1]!)).toEqual({ status: 'stale' });
    expect(r.add(big[0]!).status).toBe('incomplete');
    const done = r.add(big[2]!);
    expect(done.status === 'complete' && done.bytes.equals(bytes)).toBe(true);
  });

  it('enforces limits and fragment numbering', () => {
    const frags = fragments(bytes, firstType, 100);
    expect(frags.length).toBeGreaterThan(8);
    expect(new FragmentReassembler({ maxFragments: 8 }).add(frags[0]!)).toMatchObject({ status: 'rejected' });
    const tight = new FragmentReassembler({ maxBytes: 250 });
    expect(tight.add(frags[0]!).status).toBe('incomplete');
    expect(tight.add(frags[1]!).status).toBe('incomplete');
    expect(tight.add(frags[2]!)).toMatchObject({ status: 'rejected' });
    expect(tight.receivedFragments).toBe(0);
    const r = new FragmentReassembler();
    const base = frags[0]!;
    expect(r.add({ ...base, fragmentNumber: 0 })).toMatchObject({ status: 'rejected' });
    expect(r.add({ ...base, fragmentNumber: base.totalFragments + 1 })).toMatchObject({ status: 'rejected' });
    expect(r.add({ ...base, totalFragments: 0 })).toMatchObject({ status: 'rejected' });
    expect(r.add({ ...base, innerFirstPayload: 0 })).toMatchObject({ status: 'rejected' });
    expect(r.receivedFragments).toBe(0);
  });

  it('a single fragment completes at once', () => {
    const [only] = fragments(bytes, firstType, 4096);
    const res = new FragmentReassembler().add(only!);
    expect(res.status === 'complete' && res.bytes.equals(bytes)).toBe(true);
  });
});
