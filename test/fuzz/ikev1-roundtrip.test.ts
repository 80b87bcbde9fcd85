/**
 * Generator-driven property: random well-formed payload lists and headers
 * encode to bytes that decode to the same values, with consistent length and
 * next-payload fields. Complements ikev1-decode.test.ts (which starts from bytes).
 */
import { describe, expect, it } from 'vitest';
import {
  decodeIsakmpMessage,
  decodeV1PayloadChain,
  encodeIsakmpMessage,
  encodeV1PayloadChain,
  type IsakmpHeaderFields,
  type V1Attribute,
  type V1Payload,
  type V1Proposal,
} from '../../src/wire/ikev1/index.js';

const CASES = Math.ceil((Number(process.env.COATI_FUZZ_CASES ?? '') || 1500) / 3);

function prng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    // xorshift32
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}
type Rand = () => number;
const int = (r: Rand, n: number) => Math.floor(r() * n);
const bytes = (r: Rand, n: number) => Buffer.from(Array.from({ length: n }, () => int(r, 256)));

function attr(r: Rand): V1Attribute {
  const type = int(r, 0x8000);
  return r() < 0.6 ? { type, tv: true, value: int(r, 0x10000) } : { type, tv: false, value: bytes(r, int(r, 12)) };
}

function proposal(r: Rand, num: number): V1Proposal {
  return {
    num,
    protocolId: 1 + int(r, 4),
    spi: bytes(r, [0, 4, 8, 16][int(r, 4)] as number),
    transforms: Array.from({ length: 1 + int(r, 4) }, (_, i) => ({
      num: i + 1,
      transformId: int(r, 256),
      attributes: Array.from({ length: int(r, 6) }, () => attr(r)),
    })),
  };
}

function payload(r: Rand): V1Payload {
  switch (int(r, 16)) {
    case 0:
      return {
        type: 1,
        doi: 1,
        situation: Buffer.from('00000001', 'hex'),
        proposals: Array.from({ length: 1 + int(r, 3) }, (_, i) => proposal(r, i + 1)),
      };
    case 1:
      return { type: 4, data: bytes(r, int(r, 300)) };
    case 2:
      return {
        type: 5,
        idType: int(r, 256),
        protocolId: int(r, 256),
        port: int(r, 0x10000),
        data: bytes(r, int(r, 40)),
      };
    case 3:
      return { type: 6, encoding: int(r, 256), data: bytes(r, int(r, 100)) };
    case 4:
      return { type: 7, encoding: int(r, 256), data: bytes(r, int(r, 60)) };
    case 5:
      return { type: 8, data: bytes(r, int(r, 64)) };
    case 6:
      return { type: 9, data: bytes(r, int(r, 128)) };
    case 7:
      return { type: 10, data: bytes(r, int(r, 64)) };
    case 8:
      return {
        type: 11,
        doi: int(r, 2),
        protocolId: int(r, 5),
        spi: bytes(r, [0, 4, 16][int(r, 3)] as number),
        notifyType: int(r, 0x10000),
        data: bytes(r, int(r, 20)),
      };
    case 9: {
      const spiSize = [4, 16, 2][int(r, 3)] as number;
      return {
        type: 12,
        doi: 1,
        protocolId: int(r, 5),
        spiSize,
        spis: Array.from({ length: int(r, 4) }, () => bytes(r, spiSize)),
      };
    }
    case 10:
      return { type: 13, data: bytes(r, int(r, 24)) };
    case 11:
      return { type: r() < 0.5 ? 20 : 130, hash: bytes(r, 1 + int(r, 64)) };
    case 12:
      return r() < 0.5
        ? { type: r() < 0.5 ? 21 : 131, idType: 1, addr: bytes(r, 4) }
        : { type: r() < 0.5 ? 21 : 131, idType: 5, addr: bytes(r, 16) };
    case 13:
      return { type: 14, unknown: true, body: bytes(r, int(r, 30)) };
    default:
      return { type: [128, 129, 132, 200, 255][int(r, 5)] as 128, unknown: true, body: bytes(r, int(r, 30)) };
  }
}

function header(r: Rand): IsakmpHeaderFields {
  return {
    initiatorCookie: bytes(r, 8),
    responderCookie: bytes(r, 8),
    majorVersion: 1,
    minorVersion: int(r, 16),
    exchangeType: int(r, 256),
    flags: { encryption: false, commit: r() < 0.5, authOnly: r() < 0.5 },
    messageId: int(r, 2 ** 32),
  };
}

describe('IKEv1 encode/decode round-trip property', () => {
  it('random payload chains round-trip, with and without padding', () => {
    const r = prng(0xa11ce);
    for (let i = 0; i < CASES; i++) {
      const payloads = Array.from({ length: int(r, 7) }, () => payload(r));
      const { firstType, bytes: chain } = encodeV1PayloadChain(payloads);
      expect(firstType).toBe(payloads[0]?.type ?? 0);
      expect(decodeV1PayloadChain(chain, firstType).payloads).toEqual(payloads);
      const pad = bytes(r, int(r, 17));
      const padded = decodeV1PayloadChain(Buffer.concat([chain, pad]), firstType, 'x', { allowTrailingPadding: true });
      expect(padded.payloads).toEqual(payloads);
      expect(padded.trailing).toBe(pad.length);
    }
  });

  it('random messages round-trip with computed length and next-payload fields', () => {
    const r = prng(0xb0b);
    for (let i = 0; i < CASES; i++) {
      const h = header(r);
      const payloads = Array.from({ length: int(r, 6) }, () => payload(r));
      const msg = encodeIsakmpMessage(h, payloads);
      expect(msg.readUInt32BE(24)).toBe(msg.length);
      const d = decodeIsakmpMessage(msg);
      expect(d.payloads).toEqual(payloads);
      expect(d.header).toEqual({ ...h, nextPayload: payloads[0]?.type ?? 0, length: msg.length });
      // Walk the generic headers independently of the decoder: links and lengths agree.
      let at = 28;
      let type = msg[16] as number;
      for (const p of payloads) {
        expect(type).toBe(p.type);
        type = msg[at] as number;
        at += msg.readUInt16BE(at + 2);
      }
      expect(type).toBe(0);
      expect(at).toBe(msg.length);
    }
  });
});
