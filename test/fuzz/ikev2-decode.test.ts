/**
 * Property tests of the IKEv2 decoders: random and mutated input may only
 * decode or raise MalformedMessageError, and whatever decodes must re-encode
 * and decode again to an equal structure.
 *
 * The default case count keeps CI at a few seconds. For long runs:
 *   COATI_FUZZ_CASES=2000000 COATI_FUZZ_SEED=12345 npx vitest run test/fuzz/ikev2-decode.test.ts
 */
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { MalformedMessageError } from '../../src/wire/errors.js';
import {
  decodeMessage,
  decodePayloadChain,
  encodeMessage,
  encodePayloadChain,
  FragmentReassembler,
  IKE_HEADER_LENGTH,
  PAYLOAD,
  type Payload,
} from '../../src/wire/ikev2/index.js';
import { goldenCaptures, goldenIke, ikeMajorVersion } from '../helpers/golden.js';

const CASES = Number(process.env.COATI_FUZZ_CASES ?? 20_000);
const SEED = Number(process.env.COATI_FUZZ_SEED ?? 0x1ce2c0a7);

/** mulberry32: small, seeded, good enough to drive mutations. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number): number => Math.floor(next() * n);
  const bytes = (n: number): Buffer => {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = int(256);
    return b;
  };
  return { next, int, bytes };
}
type Rng = ReturnType<typeof prng>;

const golden: Buffer[] = goldenCaptures().flatMap((c) =>
  goldenIke(c)
    .filter((m) => ikeMajorVersion(m.ike) === 2)
    .map((m) => Buffer.from(m.ike)),
);

/** Offsets of every generic payload header length field in a message, from its structure. */
function lengthFieldOffsets(buf: Buffer): number[] {
  const out: number[] = [24];
  let off = IKE_HEADER_LENGTH;
  let type = buf[16] ?? 0;
  while (type !== 0 && off + 4 <= buf.length) {
    out.push(off + 2);
    if (type === PAYLOAD.SK || type === PAYLOAD.SKF) break;
    type = buf[off] ?? 0;
    off += buf.readUInt16BE(off + 2) || 4;
  }
  return out;
}

function mutate(rng: Rng, src: Buffer): Buffer {
  let b = Buffer.from(src);
  const rounds = 1 + rng.int(3);
  for (let r = 0; r < rounds; r++) {
    switch (rng.int(7)) {
      case 0: {
        const i = rng.int(b.length);
        b[i] = (b[i] ?? 0) ^ (1 << rng.int(8));
        break;
      }
      case 1:
        b = b.subarray(0, rng.int(b.length + 1));
        break;
      case 2: {
        const offs = lengthFieldOffsets(b);
        const at = offs[rng.int(offs.length)] ?? 24;
        if (at + 2 <= b.length) {
          const choices = [0, 1, 3, 4, 5, 0xffff, b.readUInt16BE(at) + 1, b.readUInt16BE(at) - 1, rng.int(0x10000)];
          b.writeUInt16BE((choices[rng.int(choices.length)] ?? 0) & 0xffff, at);
        }
        break;
      }
      case 3: {
        const at = rng.int(b.length + 1);
        b = Buffer.concat([b.subarray(0, at), rng.bytes(1 + rng.int(8)), b.subarray(at)]);
        break;
      }
      case 4: {
        const at = rng.int(b.length);
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + rng.int(8))]);
        break;
      }
      case 5: {
        // Structural bytes: next payload, flags (critical bit), counts and markers.
        const i = IKE_HEADER_LENGTH + rng.int(Math.max(1, b.length - IKE_HEADER_LENGTH));
        if (i < b.length) b[i] = [0, 2, 3, 33, 41, 46, 53, 0x80, 0xff, rng.int(256)][rng.int(10)] ?? 0;
        break;
      }
      default:
        break;
    }
    // Usually keep the header length consistent so mutations reach the payloads.
    if (b.length >= IKE_HEADER_LENGTH && rng.next() < 0.8) b.writeUInt32BE(b.length, 24);
  }
  return b;
}

function randomMessage(rng: Rng): Buffer {
  const body = rng.bytes(rng.int(200));
  const h = rng.bytes(IKE_HEADER_LENGTH);
  h[16] = [33, 34, 35, 40, 41, 42, 44, 46, 47, 48, 53, rng.int(256)][rng.int(12)] ?? 0;
  h[17] = 0x20;
  h.writeUInt32BE(IKE_HEADER_LENGTH + body.length, 24);
  return Buffer.concat([h, body]);
}

interface Stats {
  decoded: number;
  rejected: number;
}

function check(input: Buffer, stats: Stats): void {
  let msg: ReturnType<typeof decodeMessage>;
  try {
    msg = decodeMessage(input);
  } catch (err) {
    if (!(err instanceof MalformedMessageError)) throw err;
    if (err.message.includes('internal decoder error')) throw err;
    stats.rejected++;
    return;
  }
  stats.decoded++;
  const again = decodeMessage(encodeMessage(msg.header, msg.payloads));
  if (!isDeepStrictEqual(again, msg)) {
    throw new Error(`re-encode changed structure of ${input.toString('hex')}`);
  }
}

function checkChain(input: Buffer, first: number, stats: Stats): void {
  let payloads: Payload[];
  try {
    payloads = decodePayloadChain(input, first);
  } catch (err) {
    if (!(err instanceof MalformedMessageError) || err.message.includes('internal decoder error')) throw err;
    stats.rejected++;
    return;
  }
  stats.decoded++;
  const enc = encodePayloadChain(payloads);
  if (!isDeepStrictEqual(decodePayloadChain(enc.bytes, enc.firstType), payloads)) {
    throw new Error(`inner chain re-encode changed structure of ${input.toString('hex')}`);
  }
}

describe('IKEv2 decoder fuzzing', () => {
  it('has golden seeds', () => {
    expect(golden.length).toBeGreaterThan(40);
  });

  it(`mutated golden messages (${Math.floor(CASES * 0.5)} cases)`, () => {
    const rng = prng(SEED);
    const stats: Stats = { decoded: 0, rejected: 0 };
    for (let i = 0; i < Math.floor(CASES * 0.5); i++) {
      check(mutate(rng, golden[i % golden.length] as Buffer), stats);
    }
    // Both outcomes must actually occur, or the mutations are not exercising the decoder.
    expect(stats.decoded).toBeGreaterThan(0);
    expect(stats.rejected).toBeGreaterThan(0);
  });

  it(`random buffers and random bodies behind a valid header (${Math.floor(CASES * 0.3)} cases)`, () => {
    const rng = prng(SEED ^ 0x5a5a5a5a);
    const stats: Stats = { decoded: 0, rejected: 0 };
    for (let i = 0; i < Math.floor(CASES * 0.3); i++) {
      check(i % 2 === 0 ? rng.bytes(rng.int(120)) : randomMessage(rng), stats);
    }
    expect(stats.rejected).toBeGreaterThan(0);
  });

  it(`mutated and random inner (decrypted) payload chains (${Math.floor(CASES * 0.2)} cases)`, () => {
    const rng = prng(SEED ^ 0x0f0f0f0f);
    const seeds = golden
      .map((g) => decodeMessage(g))
      .filter((m) => m.payloads.length > 1)
      .map((m) => encodePayloadChain(m.payloads.filter((p) => p.type !== PAYLOAD.SK)));
    const stats: Stats = { decoded: 0, rejected: 0 };
    for (let i = 0; i < Math.floor(CASES * 0.2); i++) {
      const seed = seeds[i % seeds.length];
      if (!seed) break;
      if (i % 4 === 0) {
        checkChain(rng.bytes(rng.int(100)), [33, 35, 39, 41, 42, 44, 47, rng.int(256)][rng.int(8)] ?? 0, stats);
      } else {
        const padded = Buffer.concat([Buffer.alloc(IKE_HEADER_LENGTH), seed.bytes]);
        const m = mutate(rng, padded).subarray(IKE_HEADER_LENGTH);
        checkChain(Buffer.from(m), seed.firstType, stats);
      }
    }
    expect(stats.decoded).toBeGreaterThan(0);
    expect(stats.rejected).toBeGreaterThan(0);
  });

  it('the reassembler never throws and never exceeds its byte limit', () => {
    const rng = prng(SEED ^ 0x33333333);
    const maxBytes = 2000;
    for (let round = 0; round < Math.max(50, Math.floor(CASES / 200)); round++) {
      const r = new FragmentReassembler({ maxFragments: 16, maxBytes });
      for (let k = 0; k < 40; k++) {
        const res = r.add({
          fragmentNumber: rng.int(20),
          totalFragments: rng.int(20),
          innerFirstPayload: rng.int(3) === 0 ? 0 : 35,
          plaintext: rng.bytes(rng.int(300)),
        });
        expect(r.receivedBytes).toBeLessThanOrEqual(maxBytes);
        if (res.status === 'complete') expect(res.bytes.length).toBeLessThanOrEqual(maxBytes);
      }
    }
  });
});
