import { describe, expect, it } from 'vitest';
import {
  checkExchangeRules,
  decodeMessage,
  EXCHANGE,
  NOTIFY,
  PAYLOAD,
  type Payload,
  PROTOCOL,
} from '../../src/wire/ikev2/index.js';
import { goldenCaptures, goldenIke, ikeMajorVersion } from '../helpers/golden.js';

const sa: Payload = {
  type: PAYLOAD.SA,
  critical: false,
  proposals: [
    { num: 1, protocolId: PROTOCOL.ESP, spi: Buffer.alloc(4, 1), transforms: [{ type: 1, id: 20, attributes: [] }] },
  ],
};
const ke: Payload = { type: PAYLOAD.KE, critical: false, group: 31, data: Buffer.alloc(32) };
const nonce: Payload = { type: PAYLOAD.NONCE, critical: false, data: Buffer.alloc(32) };
const idi: Payload = { type: PAYLOAD.IDi, critical: false, idType: 2, data: Buffer.from('left') };
const idr: Payload = { type: PAYLOAD.IDr, critical: false, idType: 2, data: Buffer.from('right') };
const auth: Payload = { type: PAYLOAD.AUTH, critical: false, method: 2, data: Buffer.alloc(32) };
const selectors = [
  {
    tsType: 7 as const,
    ipProto: 0,
    startPort: 0,
    endPort: 65535,
    startAddr: Buffer.alloc(4),
    endAddr: Buffer.alloc(4, 255),
  },
];
const ts = (type: typeof PAYLOAD.TSi | typeof PAYLOAD.TSr): Payload =>
  type === PAYLOAD.TSi ? { type, critical: false, selectors } : { type, critical: false, selectors };
const notify = (notifyType: number): Payload => ({
  type: PAYLOAD.NOTIFY,
  critical: false,
  protocolId: 0,
  spi: Buffer.alloc(0),
  notifyType,
  data: Buffer.alloc(0),
});
const sk: Payload = { type: PAYLOAD.SK, critical: false, innerFirstPayload: PAYLOAD.IDi, body: Buffer.alloc(32) };
const del: Payload = { type: PAYLOAD.DELETE, critical: false, protocolId: PROTOCOL.IKE, spiSize: 0, spis: [] };
const unknown: Payload = { type: 250, critical: false, unknown: true, data: Buffer.alloc(1) };

const authRequest = [idi, idr, auth, sa, ts(PAYLOAD.TSi), ts(PAYLOAD.TSr), notify(NOTIFY.INITIAL_CONTACT)];

describe('IKEv2 exchange payload rules', () => {
  it('accepts a full IKE_AUTH request inside SK, and the envelope alone before decryption', () => {
    expect(checkExchangeRules(EXCHANGE.IKE_AUTH, false, [sk], authRequest)).toEqual({ ok: true });
    expect(checkExchangeRules(EXCHANGE.IKE_AUTH, false, [sk])).toEqual({ ok: true });
    expect(
      checkExchangeRules(EXCHANGE.IKE_AUTH, true, [sk], [idr, auth, sa, ts(PAYLOAD.TSi), ts(PAYLOAD.TSr)]),
    ).toEqual({ ok: true });
  });

  it('rejects plaintext payloads in encrypted exchanges', () => {
    const r = checkExchangeRules(EXCHANGE.IKE_AUTH, false, [notify(NOTIFY.INITIAL_CONTACT), sk], authRequest);
    expect(r).toMatchObject({ ok: false, notify: NOTIFY.INVALID_SYNTAX });
    expect(!r.ok && r.reason).toMatch(/NOTIFY outside the encrypted payload/);
    expect(checkExchangeRules(EXCHANGE.INFORMATIONAL, false, [])).toMatchObject({ ok: false });
    expect(checkExchangeRules(EXCHANGE.IKE_AUTH, false, authRequest)).toMatchObject({ ok: false });
  });

  it('rejects SK in IKE_SA_INIT and inner payloads where nothing is encrypted', () => {
    expect(checkExchangeRules(EXCHANGE.IKE_SA_INIT, false, [sa, ke, nonce, sk])).toMatchObject({ ok: false });
    expect(checkExchangeRules(EXCHANGE.IKE_SA_INIT, false, [sa, ke, nonce], [])).toMatchObject({ ok: false });
  });

  it('counts payloads: two KE, a missing nonce, a forbidden payload', () => {
    expect(checkExchangeRules(EXCHANGE.IKE_SA_INIT, false, [sa, ke, nonce])).toEqual({ ok: true });
    const two = checkExchangeRules(EXCHANGE.CREATE_CHILD_SA, false, [sk], [sa, nonce, ke, ke]);
    expect(!two.ok && two.reason).toMatch(/2 KE payloads, at most 1/);
    const missing = checkExchangeRules(EXCHANGE.IKE_SA_INIT, false, [sa, ke]);
    expect(!missing.ok && missing.reason).toMatch(/lacks NONCE/);
    const forbidden = checkExchangeRules(EXCHANGE.INFORMATIONAL, false, [sk], [auth]);
    expect(!forbidden.ok && forbidden.reason).toMatch(/AUTH not allowed in INFORMATIONAL request/);
    expect(checkExchangeRules(EXCHANGE.IKE_SA_INIT, false, [sa, ke, nonce, { ...nonce }])).toMatchObject({ ok: false });
  });

  it('requires SA/TSi/TSr together in IKE_AUTH and TSi/TSr together in CREATE_CHILD_SA', () => {
    const r = checkExchangeRules(EXCHANGE.IKE_AUTH, false, [sk], [idi, auth, sa, ts(PAYLOAD.TSi)]);
    expect(!r.ok && r.reason).toMatch(/SA\/TSi\/TSr/);
    expect(checkExchangeRules(EXCHANGE.IKE_AUTH, false, [sk], [idi, auth])).toEqual({ ok: true });
    expect(checkExchangeRules(EXCHANGE.CREATE_CHILD_SA, false, [sk], [sa, nonce, ke])).toEqual({ ok: true });
    expect(checkExchangeRules(EXCHANGE.CREATE_CHILD_SA, true, [sk], [sa, nonce, ts(PAYLOAD.TSr)])).toMatchObject({
      ok: false,
    });
    expect(checkExchangeRules(EXCHANGE.IKE_AUTH, false, [sk], [notify(NOTIFY.INITIAL_CONTACT)])).toMatchObject({
      ok: false,
    });
  });

  it('accepts error responses in every exchange, and COOKIE-only IKE_SA_INIT responses', () => {
    const err = [notify(NOTIFY.NO_PROPOSAL_CHOSEN)];
    expect(checkExchangeRules(EXCHANGE.IKE_SA_INIT, true, err)).toEqual({ ok: true });
    expect(checkExchangeRules(EXCHANGE.IKE_SA_INIT, true, [notify(NOTIFY.INVALID_KE_PAYLOAD)])).toEqual({ ok: true });
    expect(checkExchangeRules(EXCHANGE.IKE_SA_INIT, true, [notify(NOTIFY.COOKIE)])).toEqual({ ok: true });
    expect(checkExchangeRules(EXCHANGE.IKE_AUTH, true, [sk], [notify(NOTIFY.AUTHENTICATION_FAILED)])).toEqual({
      ok: true,
    });
    expect(checkExchangeRules(EXCHANGE.CREATE_CHILD_SA, true, [sk], [notify(NOTIFY.TS_UNACCEPTABLE)])).toEqual({
      ok: true,
    });
    // A status notify alone is not an error response, and a request is never one.
    expect(checkExchangeRules(EXCHANGE.IKE_SA_INIT, true, [notify(NOTIFY.NAT_DETECTION_SOURCE_IP)])).toMatchObject({
      ok: false,
    });
    expect(checkExchangeRules(EXCHANGE.CREATE_CHILD_SA, true, [sk], [notify(NOTIFY.COOKIE)])).toMatchObject({
      ok: false,
    });
    expect(checkExchangeRules(EXCHANGE.CREATE_CHILD_SA, false, [sk], err)).toMatchObject({ ok: false });
  });

  it('INFORMATIONAL may be empty or carry deletes; unknown non-critical payloads are ignored', () => {
    expect(checkExchangeRules(EXCHANGE.INFORMATIONAL, false, [sk], [])).toEqual({ ok: true });
    expect(checkExchangeRules(EXCHANGE.INFORMATIONAL, false, [sk], [del, unknown])).toEqual({ ok: true });
    expect(checkExchangeRules(EXCHANGE.INFORMATIONAL, true, [sk], [])).toEqual({ ok: true });
  });

  it('has no rules for exchanges it does not implement', () => {
    const r = checkExchangeRules(EXCHANGE.IKE_SESSION_RESUME, false, [sk], []);
    expect(r).toMatchObject({ ok: false, notify: NOTIFY.INVALID_SYNTAX });
  });

  it('every golden IKEv2 message passes the outer rules', () => {
    let checked = 0;
    for (const c of goldenCaptures()) {
      for (const m of goldenIke(c)) {
        if (ikeMajorVersion(m.ike) !== 2) continue;
        const msg = decodeMessage(m.ike);
        const r = checkExchangeRules(msg.header.exchangeType, msg.header.flags.response, msg.payloads);
        expect(r, `${c}#${m.index}`).toEqual({ ok: true });
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(40);
  });
});
