import { describe, expect, it } from 'vitest';
import {
  checkV1Rules,
  decodeDpdNotify,
  decodeIsakmpMessage,
  encodeDpdNotify,
  encodeIsakmpMessage,
  type NotifyV1Payload,
  V1NotifyType as NT,
  V1_MESSAGE_RULES,
  type V1Payload,
  V1ExchangeType as X,
} from '../../src/wire/ikev1/index.js';

const buf = (n: number, f = 0) => Buffer.alloc(n, f);
const SA: V1Payload = {
  type: 1,
  doi: 1,
  situation: Buffer.from('00000001', 'hex'),
  proposals: [{ num: 1, protocolId: 1, spi: buf(0), transforms: [{ num: 1, transformId: 1, attributes: [] }] }],
};
const KE: V1Payload = { type: 4, data: buf(256) };
const NONCE: V1Payload = { type: 10, data: buf(32) };
const HASH: V1Payload = { type: 8, data: buf(32) };
const SIG: V1Payload = { type: 9, data: buf(64) };
const ID: V1Payload = { type: 5, idType: 1, protocolId: 0, port: 0, data: buf(4) };
const NATD: V1Payload = { type: 20, hash: buf(32) };
const VID: V1Payload = { type: 13, data: buf(16) };
const CR: V1Payload = { type: 7, encoding: 4, data: buf(0) };
const CERT: V1Payload = { type: 6, encoding: 4, data: buf(10) };
const notify = (t: number): V1Payload => ({
  type: 11,
  doi: 1,
  protocolId: 1,
  spi: buf(16),
  notifyType: t,
  data: buf(0),
});
const DEL: V1Payload = { type: 12, doi: 1, protocolId: 3, spiSize: 4, spis: [buf(4)] };
const NATOA: V1Payload = { type: 21, idType: 1, addr: buf(4) };

describe('IKEv1 per-exchange payload rules', () => {
  const ok = { ok: true };
  it('accepts well-formed Main Mode messages', () => {
    expect(checkV1Rules(X.IDENTITY_PROTECTION, 1, [SA, VID, VID], { encrypted: false })).toEqual(ok);
    expect(checkV1Rules(X.IDENTITY_PROTECTION, 3, [KE, NONCE, NATD, NATD, NATD, CR])).toEqual(ok);
    expect(checkV1Rules(X.IDENTITY_PROTECTION, 4, [KE, NONCE])).toEqual(ok);
    expect(checkV1Rules(X.IDENTITY_PROTECTION, 5, [ID, HASH, notify(NT.INITIAL_CONTACT)], { encrypted: true })).toEqual(
      ok,
    );
    expect(checkV1Rules(X.IDENTITY_PROTECTION, 6, [ID, CERT, SIG])).toEqual(ok);
  });

  it('refuses missing, duplicate and unexpected payloads with the matching notify', () => {
    expect(checkV1Rules(X.IDENTITY_PROTECTION, 1, [VID])).toMatchObject({ ok: false, notify: NT.PAYLOAD_MALFORMED });
    expect(checkV1Rules(X.IDENTITY_PROTECTION, 1, [SA, SA])).toMatchObject({ ok: false, notify: NT.PAYLOAD_MALFORMED });
    expect(checkV1Rules(X.IDENTITY_PROTECTION, 1, [SA, KE])).toMatchObject({
      ok: false,
      notify: NT.INVALID_PAYLOAD_TYPE,
      reason: expect.stringMatching(/unexpected KE/),
    });
    expect(checkV1Rules(X.IDENTITY_PROTECTION, 3, [KE, NONCE, NATD])).toMatchObject({ ok: false });
    expect(checkV1Rules(X.IDENTITY_PROTECTION, 5, [ID, HASH, SIG])).toMatchObject({ notify: NT.PAYLOAD_MALFORMED });
    expect(checkV1Rules(X.IDENTITY_PROTECTION, 5, [ID])).toMatchObject({ ok: false });
    expect(checkV1Rules(X.IDENTITY_PROTECTION, 5, [ID, HASH, notify(NT.INVALID_ID_INFORMATION)])).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/error notify/),
    });
    expect(
      checkV1Rules(X.IDENTITY_PROTECTION, 3, [KE, NONCE, { type: 132, unknown: true, body: buf(4) }]),
    ).toMatchObject({ notify: NT.INVALID_PAYLOAD_TYPE });
  });

  it('checks the E flag against the table', () => {
    expect(checkV1Rules(X.IDENTITY_PROTECTION, 5, [ID, HASH], { encrypted: false })).toMatchObject({
      notify: NT.INVALID_FLAGS,
    });
    expect(checkV1Rules(X.IDENTITY_PROTECTION, 1, [SA], { encrypted: true })).toMatchObject({
      notify: NT.INVALID_FLAGS,
    });
    expect(checkV1Rules(X.AGGRESSIVE, 3, [HASH], { encrypted: false })).toEqual(ok);
    expect(checkV1Rules(X.AGGRESSIVE, 3, [HASH], { encrypted: true })).toEqual(ok);
  });

  it('applies Aggressive Mode rules', () => {
    expect(checkV1Rules(X.AGGRESSIVE, 1, [SA, KE, NONCE, ID, VID])).toEqual(ok);
    expect(checkV1Rules(X.AGGRESSIVE, 2, [SA, KE, NONCE, ID, HASH, NATD, NATD, VID])).toEqual(ok);
    expect(checkV1Rules(X.AGGRESSIVE, 2, [SA, KE, NONCE, ID])).toMatchObject({ ok: false });
    expect(checkV1Rules(X.AGGRESSIVE, 1, [SA, KE, NONCE])).toMatchObject({ ok: false });
  });

  it('applies Quick Mode rules: HASH first, IDci/IDcr as a pair, optional KE and NAT-OA', () => {
    expect(checkV1Rules(X.QUICK_MODE, 1, [HASH, SA, NONCE])).toEqual(ok);
    expect(checkV1Rules(X.QUICK_MODE, 1, [HASH, SA, NONCE, KE, ID, ID, NATOA, NATOA])).toEqual(ok);
    expect(checkV1Rules(X.QUICK_MODE, 2, [HASH, SA, NONCE, ID, ID, notify(NT.RESPONDER_LIFETIME)])).toEqual(ok);
    expect(checkV1Rules(X.QUICK_MODE, 1, [SA, HASH, NONCE])).toMatchObject({ notify: NT.INVALID_HASH_INFORMATION });
    expect(checkV1Rules(X.QUICK_MODE, 1, [HASH, SA, NONCE, ID])).toMatchObject({ notify: NT.PAYLOAD_MALFORMED });
    expect(checkV1Rules(X.QUICK_MODE, 1, [HASH, SA, NONCE, ID, ID, ID])).toMatchObject({ ok: false });
    expect(checkV1Rules(X.QUICK_MODE, 1, [HASH, SA, NONCE, KE, KE])).toMatchObject({ ok: false });
    expect(checkV1Rules(X.QUICK_MODE, 3, [HASH])).toEqual(ok);
    expect(checkV1Rules(X.QUICK_MODE, 3, [HASH, NONCE])).toMatchObject({ notify: NT.INVALID_PAYLOAD_TYPE });
    expect(checkV1Rules(X.QUICK_MODE, 1, [HASH, SA, NONCE], { encrypted: false })).toMatchObject({
      notify: NT.INVALID_FLAGS,
    });
  });

  it('applies Informational rules in protected and unprotected form', () => {
    expect(checkV1Rules(X.INFORMATIONAL, 1, [HASH, notify(NT.R_U_THERE)])).toEqual(ok);
    expect(checkV1Rules(X.INFORMATIONAL, 1, [HASH, DEL], { encrypted: true })).toEqual(ok);
    expect(checkV1Rules(X.INFORMATIONAL, 1, [notify(NT.R_U_THERE)])).toMatchObject({
      notify: NT.INVALID_HASH_INFORMATION,
    });
    expect(checkV1Rules(X.INFORMATIONAL, 1, [HASH])).toMatchObject({ reason: expect.stringMatching(/needs N or D/) });
    expect(checkV1Rules(X.INFORMATIONAL, 1, [notify(NT.NO_PROPOSAL_CHOSEN)], { encrypted: false })).toEqual(ok);
    expect(checkV1Rules(X.INFORMATIONAL, 1, [HASH, notify(14)], { encrypted: false })).toMatchObject({
      notify: NT.INVALID_PAYLOAD_TYPE,
    });
  });

  it('refuses unknown exchanges and steps', () => {
    expect(checkV1Rules(X.IDENTITY_PROTECTION, 7, [])).toMatchObject({ notify: NT.INVALID_EXCHANGE_TYPE });
    expect(checkV1Rules(X.NEW_GROUP_MODE, 1, [])).toMatchObject({ notify: NT.UNSUPPORTED_EXCHANGE_TYPE });
    expect(checkV1Rules(99, 1, [])).toMatchObject({ notify: NT.INVALID_EXCHANGE_TYPE });
  });

  it('has one rule per (exchange, step, encryption) with disjoint slots', () => {
    const keys = V1_MESSAGE_RULES.map((r) => `${r.exchangeType}/${r.step}/${r.encrypted}`);
    expect(new Set(keys).size).toBe(keys.length);
    for (const r of V1_MESSAGE_RULES) {
      const types = r.slots.flatMap((s) => s.types);
      expect(new Set(types).size, keys.join()).toBe(types.length);
    }
  });
});

describe('RFC 3706 DPD notify helper', () => {
  const ic = Buffer.from('0011223344556677', 'hex');
  const rc = Buffer.from('8899aabbccddeeff', 'hex');

  it('encodes R-U-THERE with both cookies as SPI and a 4-octet sequence', () => {
    const n = encodeDpdNotify({ kind: 'r-u-there', initiatorCookie: ic, responderCookie: rc, sequence: 0x01020304 });
    expect(n).toMatchObject({ doi: 1, protocolId: 1, notifyType: NT.R_U_THERE });
    expect(n.spi.toString('hex')).toBe('00112233445566778899aabbccddeeff');
    expect(n.data.toString('hex')).toBe('01020304');
    const msg = encodeIsakmpMessage(
      {
        initiatorCookie: ic,
        responderCookie: rc,
        majorVersion: 1,
        minorVersion: 0,
        exchangeType: X.INFORMATIONAL,
        flags: { encryption: false, commit: false, authOnly: false },
        messageId: 7,
      },
      [n],
    );
    const back = decodeIsakmpMessage(msg).payloads?.[0] as NotifyV1Payload;
    expect(decodeDpdNotify(back)).toEqual({
      ok: true,
      dpd: { kind: 'r-u-there', initiatorCookie: ic, responderCookie: rc, sequence: 0x01020304 },
    });
  });

  it('round-trips ACKs and reports malformed DPD notifies as values', () => {
    const ack = encodeDpdNotify({
      kind: 'r-u-there-ack',
      initiatorCookie: ic,
      responderCookie: rc,
      sequence: 0xffffffff,
    });
    expect(ack.notifyType).toBe(NT.R_U_THERE_ACK);
    expect(decodeDpdNotify(ack)).toMatchObject({ ok: true, dpd: { kind: 'r-u-there-ack', sequence: 0xffffffff } });
    expect(decodeDpdNotify({ ...ack, spi: Buffer.alloc(8) })).toMatchObject({ ok: false, reason: /SPI of 8/ });
    expect(decodeDpdNotify({ ...ack, data: Buffer.alloc(2) })).toMatchObject({ ok: false });
    expect(decodeDpdNotify({ ...ack, protocolId: 3 })).toMatchObject({ ok: false });
    expect(decodeDpdNotify({ ...ack, notifyType: NT.INITIAL_CONTACT })).toMatchObject({ ok: false });
    expect(() =>
      encodeDpdNotify({ kind: 'r-u-there', initiatorCookie: ic, responderCookie: rc, sequence: 2 ** 32 }),
    ).toThrow();
  });
});
