import { describe, expect, it } from 'vitest';
import { MalformedMessageError } from '../../src/wire/errors.js';
import {
  AUTH_METHOD,
  CFG_ATTR,
  CFG_TYPE,
  decodeHeader,
  decodeMessage,
  decodePayloadChain,
  ENCR,
  EXCHANGE,
  encodeHeader,
  encodeMessage,
  encodePayloadChain,
  encodeSkfPrefix,
  encodeSkPrefix,
  findNotify,
  ID_TYPE,
  type IkeHeader,
  isNotify,
  isSa,
  NOTIFY,
  name,
  PAYLOAD,
  type Payload,
  PROTOCOL,
  TRANSFORM_TYPE,
  UnsupportedCriticalPayloadError,
  WireEncodeError,
} from '../../src/wire/ikev2/index.js';

const header = (over: Partial<IkeHeader> = {}): IkeHeader => ({
  spiI: Buffer.from('0102030405060708', 'hex'),
  spiR: Buffer.from('1112131415161718', 'hex'),
  nextPayload: 0,
  majorVersion: 2,
  minorVersion: 0,
  exchangeType: EXCHANGE.IKE_SA_INIT,
  flags: { initiator: true, response: false, higherVersion: false },
  messageId: 7,
  length: 0,
  ...over,
});

const b = (hex: string) => Buffer.from(hex.replace(/\s+/g, ''), 'hex');
const nonce = Buffer.alloc(32, 0xab);

function roundTrip(payloads: Payload[], h = header()): Payload[] {
  const wire = encodeMessage(h, payloads);
  const msg = decodeMessage(wire);
  expect(msg.payloads).toEqual(payloads);
  expect(msg.header.length).toBe(wire.length);
  expect(encodeMessage(msg.header, msg.payloads).equals(wire)).toBe(true);
  return msg.payloads;
}

function malformed(buf: Buffer): MalformedMessageError {
  try {
    decodeMessage(buf);
  } catch (err) {
    expect(err).toBeInstanceOf(MalformedMessageError);
    return err as MalformedMessageError;
  }
  throw new Error('decoded without error');
}

describe('IKEv2 header', () => {
  it('encodes every field at its RFC 7296 position', () => {
    const h = header({
      exchangeType: EXCHANGE.IKE_AUTH,
      flags: { initiator: false, response: true, higherVersion: true },
      messageId: 0x01020304,
      nextPayload: PAYLOAD.SK,
    });
    const wire = encodeHeader(h, 0x1234);
    expect(wire.toString('hex')).toBe('010203040506070811121314151617182e2023300102030400001234');
    const d = decodeHeader(wire);
    expect(d).toEqual({ ...h, length: 0x1234 });
  });

  it('rejects a short header, a length mismatch and IKEv1', () => {
    expect(() => decodeHeader(Buffer.alloc(27))).toThrow(MalformedMessageError);
    const ok = encodeMessage(header(), [{ type: PAYLOAD.NONCE, critical: false, data: nonce }]);
    expect(malformed(Buffer.concat([ok, Buffer.of(0)])).offset).toBe(24);
    const v1 = Buffer.from(ok);
    v1[17] = 0x10;
    expect(malformed(v1).message).toMatch(/major version 1/);
  });

  it('computes nextPayload and length instead of trusting them', () => {
    const wire = encodeMessage(header({ nextPayload: 99, length: 5 }), [
      { type: PAYLOAD.NONCE, critical: false, data: nonce },
    ]);
    expect(wire[16]).toBe(PAYLOAD.NONCE);
    expect(wire.readUInt32BE(24)).toBe(wire.length);
  });
});

describe('IKEv2 payload round trips', () => {
  it('SA with IKE and ESP proposals, TV and TLV attributes, empty and 4-byte SPIs', () => {
    const [sa] = roundTrip([
      {
        type: PAYLOAD.SA,
        critical: false,
        proposals: [
          {
            num: 1,
            protocolId: PROTOCOL.IKE,
            spi: Buffer.alloc(0),
            transforms: [
              { type: TRANSFORM_TYPE.ENCR, id: ENCR.AES_CBC, attributes: [{ type: 14, value: 256, tv: true }] },
              { type: TRANSFORM_TYPE.PRF, id: 5, attributes: [] },
              { type: TRANSFORM_TYPE.INTEG, id: 12, attributes: [{ type: 200, value: b('deadbeef'), tv: false }] },
              { type: TRANSFORM_TYPE.KE, id: 31, attributes: [] },
            ],
          },
          {
            num: 2,
            protocolId: PROTOCOL.ESP,
            spi: b('c0ffee01'),
            transforms: [{ type: TRANSFORM_TYPE.ESN, id: 0, attributes: [] }],
          },
        ],
      },
    ]);
    expect(sa && isSa(sa) && sa.proposals[1]?.spi.toString('hex')).toBe('c0ffee01');
  });

  it('KE, IDi, IDr, CERT, CERTREQ, AUTH, Nonce, Vendor, EAP', () => {
    roundTrip([
      { type: PAYLOAD.KE, critical: false, group: 31, data: Buffer.alloc(32, 1) },
      { type: PAYLOAD.IDi, critical: false, idType: ID_TYPE.FQDN, data: Buffer.from('left.psk.rig.test') },
      { type: PAYLOAD.IDr, critical: false, idType: ID_TYPE.NULL, data: Buffer.alloc(0) },
      { type: PAYLOAD.CERT, critical: false, encoding: 4, data: Buffer.alloc(300, 2) },
      { type: PAYLOAD.CERTREQ, critical: false, encoding: 4, data: Buffer.alloc(0) },
      { type: PAYLOAD.AUTH, critical: false, method: AUTH_METHOD.SHARED_KEY_MIC, data: Buffer.alloc(32, 3) },
      { type: PAYLOAD.NONCE, critical: false, data: nonce },
      { type: PAYLOAD.VENDOR, critical: false, data: Buffer.from('coati') },
      { type: PAYLOAD.EAP, critical: false, data: b('0101000501') },
    ]);
  });

  it('Notify with and without SPI, Delete for IKE and ESP', () => {
    const ps = roundTrip([
      {
        type: PAYLOAD.NOTIFY,
        critical: false,
        protocolId: 0,
        spi: Buffer.alloc(0),
        notifyType: NOTIFY.COOKIE,
        data: b('00112233'),
      },
      {
        type: PAYLOAD.NOTIFY,
        critical: false,
        protocolId: PROTOCOL.ESP,
        spi: b('01020304'),
        notifyType: NOTIFY.REKEY_SA,
        data: Buffer.alloc(0),
      },
      { type: PAYLOAD.DELETE, critical: false, protocolId: PROTOCOL.IKE, spiSize: 0, spis: [] },
      {
        type: PAYLOAD.DELETE,
        critical: false,
        protocolId: PROTOCOL.ESP,
        spiSize: 4,
        spis: [b('aabbccdd'), b('01020304')],
      },
    ]);
    expect(findNotify(ps, NOTIFY.REKEY_SA)?.spi.toString('hex')).toBe('01020304');
    expect(ps.filter(isNotify)).toHaveLength(2);
  });

  it('TSi/TSr with IPv4, IPv6 and an opaque selector type', () => {
    roundTrip([
      {
        type: PAYLOAD.TSi,
        critical: false,
        selectors: [
          { tsType: 7, ipProto: 0, startPort: 0, endPort: 65535, startAddr: b('0a010000'), endAddr: b('0a0100ff') },
          {
            tsType: 8,
            ipProto: 17,
            startPort: 500,
            endPort: 500,
            startAddr: Buffer.alloc(16, 0x20),
            endAddr: Buffer.alloc(16, 0x21),
          },
        ],
      },
      { type: PAYLOAD.TSr, critical: false, selectors: [{ tsType: 10, ipProto: 0, data: Buffer.from('label') }] },
    ]);
  });

  it('CP with attributes including an empty one', () => {
    roundTrip(
      [
        {
          type: PAYLOAD.CP,
          critical: false,
          cfgType: CFG_TYPE.REQUEST,
          attributes: [
            { type: CFG_ATTR.INTERNAL_IP4_ADDRESS, value: Buffer.alloc(0) },
            { type: CFG_ATTR.INTERNAL_IP4_DNS, value: b('08080808') },
          ],
        },
      ],
      header({ exchangeType: EXCHANGE.INFORMATIONAL }),
    );
  });

  it('SK keeps its inner first payload and opaque body; SKF its fragment numbers', () => {
    roundTrip([
      {
        type: PAYLOAD.NOTIFY,
        critical: false,
        protocolId: 0,
        spi: Buffer.alloc(0),
        notifyType: NOTIFY.COOKIE,
        data: b('01'),
      },
      { type: PAYLOAD.SK, critical: false, innerFirstPayload: PAYLOAD.IDi, body: Buffer.alloc(48, 9) },
    ]);
    roundTrip([
      {
        type: PAYLOAD.SKF,
        critical: false,
        fragmentNumber: 2,
        totalFragments: 3,
        innerFirstPayload: 0,
        body: Buffer.alloc(40, 7),
      },
    ]);
  });

  it('preserves the critical bit on known payloads and unknown non-critical payloads', () => {
    const ps = roundTrip([
      { type: PAYLOAD.NONCE, critical: true, data: nonce },
      { type: 200, critical: false, unknown: true, data: b('cafe') },
      { type: PAYLOAD.GSPM, critical: false, unknown: true, data: Buffer.alloc(0) },
    ]);
    expect(name(PAYLOAD, ps[1]!.type)).toBe('PAYLOAD(200)');
  });
});

describe('IKEv2 decode failures', () => {
  const msg = (payloads: Payload[]) => encodeMessage(header(), payloads);

  it('rejects an unknown critical payload with its type for UNSUPPORTED_CRITICAL_PAYLOAD', () => {
    const wire = msg([
      { type: PAYLOAD.NONCE, critical: false, data: nonce },
      { type: 222, critical: true, unknown: true, data: b('00') },
    ]);
    const err = malformed(wire);
    expect(err).toBeInstanceOf(UnsupportedCriticalPayloadError);
    expect((err as UnsupportedCriticalPayloadError).unsupportedCritical).toBe(222);
    expect(err.offset).toBe(28 + 4 + 32);
  });

  it('rejects payload lengths below 4 or past the end, naming payload and offset', () => {
    const wire = msg([{ type: PAYLOAD.NONCE, critical: false, data: nonce }]);
    const short = Buffer.from(wire);
    short.writeUInt16BE(3, 30);
    const e1 = malformed(short);
    expect(e1.offset).toBe(28);
    expect(e1.where).toBe('NONCE#1');
    const long = Buffer.from(wire);
    long.writeUInt16BE(37, 30);
    expect(malformed(long).message).toMatch(/exceeds/);
  });

  it('rejects trailing bytes after the last payload and SK that is not last', () => {
    const wire = msg([{ type: PAYLOAD.NONCE, critical: false, data: nonce }]);
    const padded = Buffer.concat([wire, Buffer.alloc(4)]);
    padded.writeUInt32BE(padded.length, 24);
    expect(malformed(padded).message).toMatch(/trailing/);
    const sk = msg([{ type: PAYLOAD.SK, critical: false, innerFirstPayload: 35, body: Buffer.alloc(16) }]);
    const grown = Buffer.concat([sk, Buffer.alloc(4)]);
    grown.writeUInt32BE(grown.length, 24);
    expect(malformed(grown).message).toMatch(/must be the last payload/);
  });

  const saWire = () =>
    msg([
      {
        type: PAYLOAD.SA,
        critical: false,
        proposals: [
          {
            num: 1,
            protocolId: PROTOCOL.IKE,
            spi: Buffer.alloc(0),
            transforms: [
              { type: 1, id: 12, attributes: [] },
              { type: 4, id: 31, attributes: [] },
            ],
          },
          { num: 2, protocolId: PROTOCOL.ESP, spi: b('01020304'), transforms: [{ type: 1, id: 20, attributes: [] }] },
        ],
      },
    ]);
  // offsets: SA body at 32; proposal 1 at 32 (8 hdr + 2*8 transforms = 24 bytes); proposal 2 at 56.

  it('rejects bad proposal markers, numbering and transform counts', () => {
    const base = saWire();
    expect(decodeMessage(base).payloads[0]).toMatchObject({ type: PAYLOAD.SA });
    const m1 = Buffer.from(base);
    m1[32] = 1; // proposal marker must be 0 or 2
    expect(malformed(m1).where).toBe('SA#1');
    const m2 = Buffer.from(base);
    m2[56 + 4] = 3; // second proposal numbered 3
    expect(malformed(m2).message).toMatch(/does not follow/);
    const m3 = Buffer.from(base);
    m3[32 + 7] = 3; // announces 3 transforms, carries 2
    expect(malformed(m3).message).toMatch(/announces 3 transform/);
    const m4 = Buffer.from(base);
    m4[32 + 8] = 0; // first transform marked last
    expect(malformed(m4).message).toMatch(/after the one marked last/);
    const m5 = Buffer.from(base);
    m5[56] = 2; // last proposal marked "more"
    expect(malformed(m5).message).toMatch(/last proposal not marked last/);
    const m6 = Buffer.from(base);
    m6[56 + 6] = 8; // ESP with 8-byte SPI
    expect(malformed(m6).message).toMatch(/SPI size 8 invalid/);
  });

  it('rejects wrong TS lengths, Delete SPI mismatches, small ID/AUTH, short nonces, bad SKF numbers', () => {
    const ts = msg([
      {
        type: PAYLOAD.TSi,
        critical: false,
        selectors: [
          { tsType: 7, ipProto: 0, startPort: 0, endPort: 1, startAddr: b('00000000'), endAddr: b('00000001') },
        ],
      },
    ]);
    const t1 = Buffer.from(ts);
    t1.writeUInt16BE(40, 28 + 8 + 2);
    expect(malformed(t1).message).toMatch(/selector length 40, expected 16/);

    const del = msg([
      { type: PAYLOAD.DELETE, critical: false, protocolId: PROTOCOL.ESP, spiSize: 4, spis: [b('01020304')] },
    ]);
    const d1 = Buffer.from(del);
    d1.writeUInt16BE(2, 28 + 6);
    expect(malformed(d1).message).toMatch(/2 SPI\(s\) of 4 bytes/);

    const raw = (type: number, body: Buffer) => {
      const w = Buffer.concat([
        encodeHeader(header({ nextPayload: type }), 32 + body.length),
        Buffer.from([0, 0, 0, 4 + body.length]),
        body,
      ]);
      return w;
    };
    expect(malformed(raw(PAYLOAD.IDi, b('020000'))).message).toMatch(/truncated/);
    expect(malformed(raw(PAYLOAD.AUTH, b('02000000'))).message).toMatch(/without authentication data/);
    expect(malformed(raw(PAYLOAD.KE, b('001f0000'))).message).toMatch(/without key exchange data/);
    expect(malformed(raw(PAYLOAD.NONCE, Buffer.alloc(15))).message).toMatch(/nonce of 15 bytes/);
    expect(malformed(raw(PAYLOAD.SKF, b('00030002'))).message).toMatch(/fragment number 3 outside 1..2/);
    expect(malformed(raw(PAYLOAD.EAP, b('01010009'))).message).toMatch(/EAP length 9/);
    expect(malformed(raw(PAYLOAD.SA, Buffer.alloc(0))).message).toMatch(/without proposals/);
  });

  it('decodePayloadChain rejects SK inside SK and reports the container', () => {
    const inner = encodePayloadChain([
      { type: PAYLOAD.SK, critical: false, innerFirstPayload: 0, body: Buffer.alloc(4) },
    ]);
    expect(() => decodePayloadChain(inner.bytes, inner.firstType)).toThrow(/SK\/SK#1.*inside an encrypted payload/);
    const ok = encodePayloadChain([
      { type: PAYLOAD.IDi, critical: false, idType: ID_TYPE.FQDN, data: Buffer.from('a') },
      { type: PAYLOAD.AUTH, critical: false, method: 2, data: Buffer.alloc(32) },
    ]);
    expect(ok.firstType).toBe(PAYLOAD.IDi);
    expect(decodePayloadChain(ok.bytes, ok.firstType).map((p) => p.type)).toEqual([PAYLOAD.IDi, PAYLOAD.AUTH]);
    expect(() => decodePayloadChain(ok.bytes, PAYLOAD.NONE)).toThrow(/trailing/);
  });
});

describe('IKEv2 encoders', () => {
  it('encodeSkPrefix is the message up to the SK body', () => {
    const plain: Payload[] = [
      {
        type: PAYLOAD.NOTIFY,
        critical: false,
        protocolId: 0,
        spi: Buffer.alloc(0),
        notifyType: NOTIFY.COOKIE,
        data: b('01'),
      },
    ];
    const body = Buffer.alloc(64, 5);
    const full = encodeMessage(header(), [
      ...plain,
      { type: PAYLOAD.SK, critical: false, innerFirstPayload: PAYLOAD.IDi, body },
    ]);
    const prefix = encodeSkPrefix(header(), plain, PAYLOAD.IDi, body.length);
    expect(Buffer.concat([prefix, body]).equals(full)).toBe(true);
    expect(encodeSkPrefix(header(), [], PAYLOAD.NOTIFY, 10).length).toBe(32);
  });

  it('encodeSkfPrefix is the message up to the SKF body, next payload only in fragment 1', () => {
    const body = Buffer.alloc(20, 1);
    for (const n of [1, 2]) {
      const inner = n === 1 ? PAYLOAD.IDi : 0;
      const full = encodeMessage(header(), [
        { type: PAYLOAD.SKF, critical: false, fragmentNumber: n, totalFragments: 2, innerFirstPayload: inner, body },
      ]);
      expect(Buffer.concat([encodeSkfPrefix(header(), n, 2, PAYLOAD.IDi, body.length), body]).equals(full)).toBe(true);
    }
    expect(() => encodeSkfPrefix(header(), 3, 2, PAYLOAD.IDi, 1)).toThrow(WireEncodeError);
  });

  it('refuses what the wire cannot carry', () => {
    const sk: Payload = { type: PAYLOAD.SK, critical: false, innerFirstPayload: 35, body: Buffer.alloc(1) };
    expect(() => encodePayloadChain([sk, { type: PAYLOAD.NONCE, critical: false, data: nonce }])).toThrow(
      /must be last/,
    );
    expect(() => encodeMessage(header({ spiI: Buffer.alloc(4) }), [])).toThrow(WireEncodeError);
    expect(() => encodePayloadChain([{ type: PAYLOAD.KE, critical: false, group: 70000, data: b('00') }])).toThrow(
      WireEncodeError,
    );
    expect(() =>
      encodePayloadChain([{ type: PAYLOAD.DELETE, critical: false, protocolId: 3, spiSize: 4, spis: [b('01')] }]),
    ).toThrow(/SPI size is 4/);
    expect(() => encodePayloadChain([{ type: PAYLOAD.VENDOR, critical: false, data: Buffer.alloc(65532) }])).toThrow(
      /exceeds 65535/,
    );
  });

  it('names constants and unknown values for logs', () => {
    expect(name(NOTIFY, 16430)).toBe('IKEV2_FRAGMENTATION_SUPPORTED');
    expect(name(NOTIFY, 16500)).toBe('NOTIFY(16500)');
    expect(name(EXCHANGE, 43)).toBe('IKE_INTERMEDIATE');
    expect(name(PAYLOAD, 53)).toBe('SKF');
  });
});

describe('IKEv2 payload typing', () => {
  it('narrows on p.type without guards, unknown payloads included', () => {
    const wire = encodeMessage(header(), [
      {
        type: PAYLOAD.NOTIFY,
        critical: false,
        protocolId: 0,
        spi: Buffer.alloc(0),
        notifyType: NOTIFY.COOKIE,
        data: b('01'),
      },
      { type: 201, critical: false, unknown: true, data: b('02') },
      { type: PAYLOAD.KE, critical: false, group: 19, data: Buffer.alloc(64) },
    ]);
    const seen: string[] = [];
    for (const p of decodeMessage(wire).payloads) {
      switch (p.type) {
        case PAYLOAD.NOTIFY:
          seen.push(`N(${name(NOTIFY, p.notifyType)})`);
          break;
        case PAYLOAD.KE:
          seen.push(`KE(${p.group},${p.data.length})`);
          break;
        default:
          seen.push('unknown' in p ? `U(${p.type},${p.data.toString('hex')})` : 'other');
      }
    }
    expect(seen).toEqual(['N(COOKIE)', 'U(201,02)', 'KE(19,64)']);
  });
});
