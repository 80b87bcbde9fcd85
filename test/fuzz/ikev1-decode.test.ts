/**
 * Property tests of the ISAKMP decoders: for random and mutated inputs the
 * only outcomes are a decoded message or a MalformedMessageError raised by
 * the decoder itself (never an internal error converted by safeDecode), and
 * anything decoded re-encodes to bytes that decode to the same structure.
 * COATI_FUZZ_CASES sets the case count per property (default keeps CI fast).
 */
import { describe, expect, it } from 'vitest';
import { MalformedMessageError } from '../../src/wire/errors.js';
import {
  decodeIsakmpMessage,
  decodeV1PayloadChain,
  encodeEncryptedIsakmp,
  encodeIsakmpMessage,
  encodeV1PayloadChain,
  type IsakmpMessage,
  type V1Payload,
} from '../../src/wire/ikev1/index.js';
import { goldenCaptures, goldenIke, ikeMajorVersion } from '../helpers/golden.js';

const CASES = Number(process.env.COATI_FUZZ_CASES ?? '') || 1500;

/** mulberry32: small seeded PRNG so failures reproduce. */
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

type Rand = ReturnType<typeof prng>;
const int = (r: Rand, n: number) => Math.floor(r() * n);
const randomBytes = (r: Rand, n: number) => Buffer.from(Array.from({ length: n }, () => int(r, 256)));

function mutate(r: Rand, input: Buffer, lengthFieldAt?: number): Buffer {
  let b = Buffer.from(input);
  const rounds = 1 + int(r, 3);
  for (let i = 0; i < rounds; i++) {
    const at = b.length === 0 ? 0 : int(r, b.length);
    switch (int(r, 6)) {
      case 0: // bit flips
        if (b.length) b[at] = (b[at] as number) ^ (1 << int(r, 8));
        break;
      case 1: // truncation
        b = b.subarray(0, at);
        break;
      case 2: {
        // 16-bit length-style corruption
        if (b.length < 2) break;
        const p = Math.min(at, b.length - 2);
        const old = b.readUInt16BE(p);
        const choices = [0, 1, 3, 4, 5, 8, old - 1, old + 1, 0xffff, int(r, 0x10000)];
        b.writeUInt16BE((choices[int(r, choices.length)] as number) & 0xffff, p);
        break;
      }
      case 3: // insertion
        b = Buffer.concat([b.subarray(0, at), randomBytes(r, 1 + int(r, 8)), b.subarray(at)]);
        break;
      case 4: // deletion
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + int(r, 4))]);
        break;
      default: // overwrite a byte with an interesting value
        if (b.length) b[at] = [0, 1, 2, 3, 0x7f, 0x80, 0xff, 130, 132][int(r, 9)] as number;
    }
  }
  // Usually keep the header length consistent so mutations reach the payloads.
  if (lengthFieldAt !== undefined && b.length >= lengthFieldAt + 4 && r() < 0.7)
    b.writeUInt32BE(b.length, lengthFieldAt);
  return b;
}

function expectOnlyTypedError(e: unknown, input: Buffer): void {
  if (!(e instanceof MalformedMessageError) || e.message.includes('internal decoder error')) {
    throw new Error(`unexpected ${String(e)} for input ${input.toString('hex')}`, { cause: e });
  }
}

function reencode(m: IsakmpMessage): Buffer {
  return m.encrypted
    ? encodeEncryptedIsakmp(m.header, m.header.nextPayload, m.encrypted)
    : encodeIsakmpMessage(m.header, m.payloads);
}

function checkMessage(input: Buffer): 'ok' | 'rejected' {
  let m: IsakmpMessage;
  try {
    m = decodeIsakmpMessage(input);
  } catch (e) {
    expectOnlyTypedError(e, input);
    return 'rejected';
  }
  const again = decodeIsakmpMessage(reencode(m));
  expect(again, input.toString('hex')).toEqual(m);
  return 'ok';
}

function checkChain(input: Buffer, firstType: number): 'ok' | 'rejected' {
  let payloads: V1Payload[];
  try {
    payloads = decodeV1PayloadChain(input, firstType, 'decrypted', { allowTrailingPadding: true }).payloads;
  } catch (e) {
    expectOnlyTypedError(e, input);
    return 'rejected';
  }
  const enc = encodeV1PayloadChain(payloads);
  expect(decodeV1PayloadChain(enc.bytes, enc.firstType).payloads, input.toString('hex')).toEqual(payloads);
  return 'ok';
}

const golden = goldenCaptures().flatMap((c) => goldenIke(c).filter((m) => ikeMajorVersion(m.ike) === 1));

/** Decrypted-body shapes built from the same payload kinds charon sends. */
function syntheticChains(): { firstType: number; bytes: Buffer }[] {
  const sa: V1Payload = {
    type: 1,
    doi: 1,
    situation: Buffer.from('00000001', 'hex'),
    proposals: [
      {
        num: 1,
        protocolId: 3,
        spi: Buffer.from('c1c2c3c4', 'hex'),
        transforms: [
          {
            num: 1,
            transformId: 12,
            attributes: [
              { type: 1, tv: true, value: 1 },
              { type: 2, tv: false, value: Buffer.from('00000e10', 'hex') },
              { type: 4, tv: true, value: 1 },
              { type: 5, tv: true, value: 5 },
              { type: 6, tv: true, value: 128 },
            ],
          },
        ],
      },
    ],
  };
  const hash: V1Payload = { type: 8, data: Buffer.alloc(32, 0x11) };
  const id = (b: number): V1Payload => ({
    type: 5,
    idType: 4,
    protocolId: 0,
    port: 0,
    data: Buffer.from([10, b, 0, 0, 255, 255, 255, 0]),
  });
  const chains: V1Payload[][] = [
    [
      hash,
      sa,
      { type: 10, data: Buffer.alloc(32, 2) },
      id(1),
      id(2),
      { type: 21, idType: 1, addr: Buffer.alloc(4, 9) },
    ],
    [
      { type: 5, idType: 1, protocolId: 17, port: 500, data: Buffer.alloc(4, 1) },
      hash,
      { type: 11, doi: 1, protocolId: 1, spi: Buffer.alloc(16, 3), notifyType: 24578, data: Buffer.alloc(0) },
    ],
    [hash, { type: 12, doi: 1, protocolId: 3, spiSize: 4, spis: [Buffer.alloc(4, 7), Buffer.alloc(4, 8)] }],
    [hash, { type: 11, doi: 1, protocolId: 1, spi: Buffer.alloc(16, 3), notifyType: 36136, data: Buffer.alloc(4, 1) }],
  ];
  return chains.map((c) => {
    const { firstType, bytes } = encodeV1PayloadChain(c);
    const pad = 16 - (bytes.length % 16);
    return { firstType, bytes: Buffer.concat([bytes, Buffer.alloc(pad)]) };
  });
}

describe('IKEv1 decoder fuzz', () => {
  it('has golden IKEv1 messages to mutate', () => {
    expect(golden.length).toBeGreaterThanOrEqual(50);
    for (const g of golden) expect(checkMessage(g.ike)).toBe('ok');
  });

  it('mutated golden messages decode consistently or raise MalformedMessageError', () => {
    const r = prng(0x15a4);
    const outcomes = { ok: 0, rejected: 0 };
    for (let i = 0; i < CASES; i++) {
      const g = golden[int(r, golden.length)]!;
      outcomes[checkMessage(mutate(r, g.ike, 24))]++;
    }
    // Both outcomes occur: the mutations reach past the header and also break things.
    expect(outcomes.ok).toBeGreaterThan(0);
    expect(outcomes.rejected).toBeGreaterThan(0);
  });

  it('random buffers behind a plausible header never crash the decoder', () => {
    const r = prng(0xc0a71);
    for (let i = 0; i < CASES; i++) {
      const body = randomBytes(r, int(r, 200));
      const hdr = Buffer.from(golden[int(r, golden.length)]!.ike.subarray(0, 28));
      hdr[16] = [1, 4, 5, 8, 10, 11, 12, 13, 20, int(r, 256)][int(r, 10)] as number;
      hdr[19] = r() < 0.8 ? 0 : int(r, 8);
      const msg = Buffer.concat([hdr, body]);
      msg.writeUInt32BE(r() < 0.9 ? msg.length : int(r, 400), 24);
      checkMessage(r() < 0.5 ? msg : randomBytes(r, int(r, 64)));
    }
  });

  it('mutated decrypted payload chains (with CBC padding) decode consistently or raise MalformedMessageError', () => {
    const r = prng(0xdec0de);
    const chains = syntheticChains();
    for (const c of chains) expect(checkChain(c.bytes, c.firstType)).toBe('ok');
    const outcomes = { ok: 0, rejected: 0 };
    for (let i = 0; i < CASES; i++) {
      const c = chains[int(r, chains.length)]!;
      const first = r() < 0.9 ? c.firstType : int(r, 256);
      outcomes[checkChain(mutate(r, c.bytes), first)]++;
    }
    expect(outcomes.ok).toBeGreaterThan(0);
    expect(outcomes.rejected).toBeGreaterThan(0);
  });
});
