import { describe, expect, it } from 'vitest';
import { MalformedMessageError } from '../../src/wire/errors.js';
import {
  decodeIsakmpHeader,
  decodeIsakmpMessage,
  decodeV1PayloadChain,
  encodeEncryptedIsakmp,
  encodeIsakmpHeader,
  encodeIsakmpMessage,
  encodeV1PayloadChain,
  type IsakmpHeaderFields,
  name,
  V1EncodeError,
  V1InvalidPayloadTypeError,
  type V1Payload,
  V1PayloadType,
  v1Attribute,
  v1AttributeNumber,
} from '../../src/wire/ikev1/index.js';

const hdr: IsakmpHeaderFields = {
  initiatorCookie: Buffer.from('0102030405060708', 'hex'),
  responderCookie: Buffer.from('1112131415161718', 'hex'),
  majorVersion: 1,
  minorVersion: 0,
  exchangeType: 2,
  flags: { encryption: false, commit: true, authOnly: false },
  messageId: 0xdeadbeef,
};

const b = (hex: string) => Buffer.from(hex, 'hex');

const samples: V1Payload[] = [
  {
    type: 1,
    doi: 1,
    situation: b('00000001'),
    proposals: [
      {
        num: 1,
        protocolId: 1,
        spi: Buffer.alloc(0),
        transforms: [
          {
            num: 1,
            transformId: 1,
            attributes: [
              { type: 1, tv: true, value: 7 },
              { type: 14, tv: true, value: 256 },
              { type: 12, tv: false, value: b('00015180') },
              { type: 6, tv: false, value: Buffer.alloc(0) },
            ],
          },
          { num: 2, transformId: 1, attributes: [] },
        ],
      },
      { num: 2, protocolId: 3, spi: b('c0ffee01'), transforms: [{ num: 1, transformId: 12, attributes: [] }] },
    ],
  },
  { type: 4, data: Buffer.alloc(32, 0xaa) },
  { type: 5, idType: 4, protocolId: 17, port: 500, data: b('0a0100 00ffffff00'.replace(' ', '')) },
  { type: 6, encoding: 4, data: b('3082') },
  { type: 7, encoding: 4, data: Buffer.alloc(0) },
  { type: 8, data: Buffer.alloc(20, 1) },
  { type: 9, data: Buffer.alloc(64, 2) },
  { type: 10, data: Buffer.alloc(16, 3) },
  { type: 11, doi: 1, protocolId: 1, spi: Buffer.alloc(16, 4), notifyType: 36136, data: b('00000007') },
  { type: 11, doi: 0, protocolId: 3, spi: Buffer.alloc(0), notifyType: 14, data: Buffer.alloc(0) },
  { type: 12, doi: 1, protocolId: 3, spiSize: 4, spis: [b('01020304'), b('05060708')] },
  { type: 12, doi: 1, protocolId: 1, spiSize: 16, spis: [] },
  { type: 13, data: b('afcad71368a1f1c96b8696fc77570100') },
  { type: 20, hash: Buffer.alloc(32, 5) },
  { type: 130, hash: Buffer.alloc(20, 6) },
  { type: 21, idType: 1, addr: b('c0a80001') },
  { type: 131, idType: 5, addr: Buffer.alloc(16, 7) },
  { type: 14, unknown: true, body: b('0100000c') },
  { type: 132, unknown: true, body: b('00010100') },
];

function errorOf(fn: () => unknown): MalformedMessageError {
  try {
    fn();
  } catch (e) {
    if (e instanceof MalformedMessageError) return e;
    throw e;
  }
  throw new Error('no error thrown');
}

describe('IKEv1 payload codecs', () => {
  for (const p of samples) {
    it(`round-trips ${name(V1PayloadType, p.type)} (${p.type}) alone and in a chain`, () => {
      const { firstType, bytes } = encodeV1PayloadChain([p]);
      expect(firstType).toBe(p.type);
      expect(bytes.readUInt16BE(2)).toBe(bytes.length);
      expect(bytes[0]).toBe(0);
      expect(decodeV1PayloadChain(bytes, firstType).payloads).toEqual([p]);
    });
  }

  it('round-trips all payloads in one message with next-payload links and total length', () => {
    const msg = encodeIsakmpMessage(hdr, samples);
    expect(msg.readUInt32BE(24)).toBe(msg.length);
    expect(msg[16]).toBe(V1PayloadType.SA);
    const d = decodeIsakmpMessage(msg);
    expect(d.payloads).toEqual(samples);
    expect(d.header).toMatchObject({ ...hdr, nextPayload: 1, length: msg.length });
    expect(encodeIsakmpMessage(d.header, d.payloads!).equals(msg)).toBe(true);
  });

  it('encodes TV and TLV attributes in their wire forms', () => {
    const sa = encodeV1PayloadChain([samples[0]!]).bytes;
    // First transform attributes start after: gen hdr 4, DOI 4, sit 4, prop hdr 8, transform hdr 8.
    expect(sa.subarray(28, 32).toString('hex')).toBe('80010007');
    expect(sa.subarray(36, 44).toString('hex')).toBe('000c000400015180');
    expect(v1Attribute(12, 86400)).toEqual({ type: 12, tv: false, value: b('00015180') });
    expect(v1Attribute(14, 128)).toEqual({ type: 14, tv: true, value: 128 });
    expect(v1AttributeNumber(v1Attribute(12, 2 ** 40))).toBe(2 ** 40);
    expect(v1AttributeNumber({ type: 1, tv: false, value: Buffer.alloc(9) })).toBeUndefined();
    expect(v1AttributeNumber({ type: 1, tv: false, value: Buffer.alloc(8, 0xff) })).toBeUndefined();
    expect(v1AttributeNumber({ type: 1, tv: false, value: b('000000000000ff01') })).toBe(0xff01);
  });

  it('accepts CBC padding after a decrypted chain only when asked', () => {
    const { firstType, bytes } = encodeV1PayloadChain([samples[5]!, samples[8]!]);
    const padded = Buffer.concat([bytes, Buffer.alloc(11)]);
    const res = decodeV1PayloadChain(padded, firstType, 'decrypted', { allowTrailingPadding: true });
    expect(res.payloads).toEqual([samples[5], samples[8]]);
    expect(res.trailing).toBe(11);
    const e = errorOf(() => decodeV1PayloadChain(padded, firstType, 'decrypted'));
    expect(e.message).toMatch(/11 octet\(s\) after the last payload/);
    expect(e.offset).toBe(bytes.length);
  });

  it('rejects unassigned payload types with INVALID-PAYLOAD-TYPE, naming type and offset', () => {
    const chain = encodeV1PayloadChain([samples[5]!, { type: 14, unknown: true, body: Buffer.alloc(2) }]).bytes;
    chain[0] = 50; // HASH's next payload now points to unassigned type 50
    const e = errorOf(() => decodeV1PayloadChain(chain, 8));
    expect(e).toBeInstanceOf(V1InvalidPayloadTypeError);
    expect((e as V1InvalidPayloadTypeError).payloadType).toBe(50);
    expect((e as V1InvalidPayloadTypeError).notify).toBe(1);
    expect(e.offset).toBe(24);
    for (const t of [2, 3, 15, 19, 22, 127]) {
      expect(errorOf(() => decodeV1PayloadChain(b('00000004'), t))).toBeInstanceOf(V1InvalidPayloadTypeError);
    }
    expect(() => encodeV1PayloadChain([{ type: 50, unknown: true, body: Buffer.alloc(0) } as never])).toThrow(
      V1EncodeError,
    );
  });

  it('rejects bad generic payload lengths', () => {
    const ok = encodeV1PayloadChain([samples[5]!]).bytes; // HASH, 24 octets
    const short = Buffer.from(ok);
    short.writeUInt16BE(3, 2);
    expect(errorOf(() => decodeV1PayloadChain(short, 8)).message).toMatch(
      /HASH#1: payload length 3 < 4 \(at offset 2\)/,
    );
    const long = Buffer.from(ok);
    long.writeUInt16BE(25, 2);
    expect(errorOf(() => decodeV1PayloadChain(long, 8)).message).toMatch(/exceeds/);
    expect(errorOf(() => decodeV1PayloadChain(ok.subarray(0, 3), 8)).message).toMatch(/truncated/);
  });

  it('rejects malformed SA substructures', () => {
    const sa = encodeV1PayloadChain([samples[0]!]).bytes;
    const mut = (at: number, v: number, size: 1 | 2 | 4 = 1) => {
      const c = Buffer.from(sa);
      c.writeUIntBE(v, at, size);
      return errorOf(() => decodeV1PayloadChain(c, 1));
    };
    expect(mut(4, 2, 4).message).toMatch(/DOI 2 not supported/);
    expect(mut(8, 2, 4).message).toMatch(/situation 0x2 not supported/);
    expect(mut(12, 7).message).toMatch(/proposal next payload 7/);
    expect(mut(14, 7, 2).message).toMatch(/proposal length 7 < 8/);
    expect(mut(19, 3).message).toMatch(/SA#1\/Proposal#1: transform 2\/3 next payload/);
    expect(mut(20, 0).message).toMatch(/transform 1\/2 next payload 0, expected 3/);
    expect(mut(12, 0).message).toMatch(/after last proposal|trailing/);
    const noTransforms = mut(19, 0);
    expect(noTransforms.message).toMatch(/proposal without transforms/);
    // A TLV attribute whose length runs past its transform.
    const c = Buffer.from(sa);
    c.writeUInt16BE(0x0fff, 38);
    expect(errorOf(() => decodeV1PayloadChain(c, 1)).message).toMatch(/Transform#1: truncated/);
  });

  it('rejects malformed D, NAT-D and NAT-OA bodies', () => {
    const d = encodeV1PayloadChain([samples[10]!]).bytes;
    d.writeUInt16BE(3, 10);
    expect(errorOf(() => decodeV1PayloadChain(d, 12)).message).toMatch(/3 SPI\(s\) of 4 octets need 12, body has 8/);
    expect(errorOf(() => decodeV1PayloadChain(b('00000004'), 20)).message).toMatch(/empty NAT-D/);
    expect(errorOf(() => decodeV1PayloadChain(b('0000000c02000000c0a80001'), 21)).message).toMatch(/ID type 2/);
    expect(errorOf(() => decodeV1PayloadChain(b('0000000d01000000c0a8000101'), 21)).message).toMatch(/trailing/);
  });
});

describe('ISAKMP header and message framing', () => {
  it('round-trips the header and its flags', () => {
    const h = encodeIsakmpHeader(
      { ...hdr, nextPayload: 8, flags: { encryption: true, commit: false, authOnly: true } },
      60,
    );
    expect(h.toString('hex')).toBe('0102030405060708111213141516171808100205deadbeef0000003c');
    expect(decodeIsakmpHeader(h)).toEqual({
      ...hdr,
      nextPayload: 8,
      flags: { encryption: true, commit: false, authOnly: true },
      length: 60,
    });
  });

  it('rejects other major versions, short lengths and length/datagram mismatches', () => {
    const msg = encodeIsakmpMessage(hdr, [samples[5]!]);
    const v2 = Buffer.from(msg);
    v2[17] = 0x20;
    expect(errorOf(() => decodeIsakmpMessage(v2)).message).toMatch(/major version 2/);
    const short = Buffer.from(msg);
    short.writeUInt32BE(20, 24);
    expect(errorOf(() => decodeIsakmpMessage(short)).message).toMatch(/shorter than the header/);
    expect(errorOf(() => decodeIsakmpMessage(msg.subarray(0, msg.length - 1))).message).toMatch(/exceeds datagram/);
    const longer = Buffer.concat([msg, Buffer.alloc(3)]);
    expect(errorOf(() => decodeIsakmpMessage(longer)).message).toMatch(/shorter than datagram/);
    expect(decodeIsakmpMessage(longer, { allowTrailingBytes: true }).payloads).toEqual([samples[5]]);
    expect(errorOf(() => decodeIsakmpMessage(msg.subarray(0, 20))).message).toMatch(/truncated/);
  });

  it('keeps E-flag bodies opaque and frames ciphertext', () => {
    const ct = Buffer.alloc(48, 0x5a);
    const msg = encodeEncryptedIsakmp(hdr, V1PayloadType.HASH, ct);
    expect(msg[19]! & 1).toBe(1);
    const d = decodeIsakmpMessage(msg);
    expect(d.encrypted?.equals(ct)).toBe(true);
    expect(d.payloads).toBeUndefined();
    expect(d.header.nextPayload).toBe(8);
    expect(errorOf(() => decodeIsakmpMessage(msg.subarray(0, 28).fill(0x1c, 27))).message).toMatch(/exceeds|without/);
    const empty = encodeIsakmpHeader({ ...hdr, nextPayload: 8, flags: { ...hdr.flags, encryption: true } }, 28);
    expect(errorOf(() => decodeIsakmpMessage(empty)).message).toMatch(/encrypted message without a body/);
    expect(() => encodeIsakmpMessage({ ...hdr, flags: { ...hdr.flags, encryption: true } }, [])).toThrow(V1EncodeError);
  });

  it('decodes an empty unencrypted message', () => {
    const msg = encodeIsakmpMessage(hdr, []);
    expect(msg.length).toBe(28);
    expect(decodeIsakmpMessage(msg).payloads).toEqual([]);
  });
});
