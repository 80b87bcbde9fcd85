import { describe, expect, it } from 'vitest';
import {
  decodeMessage,
  ENCR,
  EXCHANGE,
  encodeMessage,
  filterPayloads,
  findPayload,
  INTEG,
  KE_METHOD,
  NOTIFY,
  PAYLOAD,
  PRF,
  TRANSFORM_ATTR,
  TRANSFORM_TYPE,
} from '../../src/wire/ikev2/index.js';
import { goldenCaptures, goldenIke, ikeMajorVersion } from '../helpers/golden.js';

function v2Messages(name: string) {
  return goldenIke(name).filter((m) => ikeMajorVersion(m.ike) === 2);
}

describe('IKEv2 golden captures', () => {
  const names = goldenCaptures();
  const total = names.reduce((n, c) => n + v2Messages(c).length, 0);

  it('has a useful number of IKEv2 messages', () => {
    expect(total).toBeGreaterThan(40);
  });

  for (const capture of names) {
    const msgs = v2Messages(capture);
    if (msgs.length === 0) continue;
    it(`${capture}: every IKEv2 message decodes and re-encodes byte for byte`, () => {
      for (const m of msgs) {
        const decoded = decodeMessage(m.ike);
        expect(decoded.header.length).toBe(m.ike.length);
        const again = encodeMessage(decoded.header, decoded.payloads);
        expect(again.toString('hex'), `${capture}#${m.index}`).toBe(m.ike.toString('hex'));
      }
    });
  }

  it('basic-netlink-v2-psk IKE_SA_INIT request: aes128-sha256-x25519, KE group 31, NAT-D', () => {
    const first = v2Messages('basic-netlink-v2-psk')[0];
    expect(first).toBeDefined();
    const msg = decodeMessage(first!.ike);
    expect(msg.header.exchangeType).toBe(EXCHANGE.IKE_SA_INIT);
    expect(msg.header.flags).toEqual({ initiator: true, response: false, higherVersion: false });
    expect(msg.header.messageId).toBe(0);
    expect(msg.header.spiR.equals(Buffer.alloc(8))).toBe(true);
    const sa = findPayload(msg.payloads, PAYLOAD.SA);
    expect(sa?.proposals).toHaveLength(1);
    const p = sa!.proposals[0]!;
    expect(p.num).toBe(1);
    expect(p.spi.length).toBe(0);
    const byType = (t: number) => p.transforms.filter((x) => x.type === t);
    const encr = byType(TRANSFORM_TYPE.ENCR);
    expect(encr.map((t) => t.id)).toEqual([ENCR.AES_CBC]);
    expect(encr[0]!.attributes).toEqual([{ type: TRANSFORM_ATTR.KEY_LENGTH, value: 128, tv: true }]);
    expect(byType(TRANSFORM_TYPE.PRF).map((t) => t.id)).toEqual([PRF.HMAC_SHA2_256]);
    expect(byType(TRANSFORM_TYPE.INTEG).map((t) => t.id)).toEqual([INTEG.HMAC_SHA2_256_128]);
    expect(byType(TRANSFORM_TYPE.KE).map((t) => t.id)).toEqual([KE_METHOD.CURVE25519]);
    const ke = findPayload(msg.payloads, PAYLOAD.KE);
    expect(ke?.group).toBe(31);
    expect(ke?.data.length).toBe(32);
    const nonce = findPayload(msg.payloads, PAYLOAD.NONCE);
    expect(nonce!.data.length).toBeGreaterThanOrEqual(16);
    const notifies = filterPayloads(msg.payloads, PAYLOAD.NOTIFY).map((n) => n.notifyType);
    expect(notifies).toContain(NOTIFY.NAT_DETECTION_SOURCE_IP);
    expect(notifies).toContain(NOTIFY.NAT_DETECTION_DESTINATION_IP);
    for (const n of filterPayloads(msg.payloads, PAYLOAD.NOTIFY)) {
      if (n.notifyType === NOTIFY.NAT_DETECTION_SOURCE_IP) expect(n.data.length).toBe(20);
    }
  });

  it('IKE_AUTH messages carry exactly one SK payload and nothing else', () => {
    let seen = 0;
    for (const c of names) {
      for (const m of v2Messages(c)) {
        const msg = decodeMessage(m.ike);
        if (msg.header.exchangeType !== EXCHANGE.IKE_AUTH) continue;
        seen++;
        expect(msg.payloads).toHaveLength(1);
        const sk = findPayload(msg.payloads, PAYLOAD.SK);
        expect(sk).toBeDefined();
        expect([PAYLOAD.IDi, PAYLOAD.IDr]).toContain(sk!.innerFirstPayload);
      }
    }
    expect(seen).toBeGreaterThan(4);
  });

  it('v2-cert IKE_SA_INIT proposes AES-GCM-16-256 with ECP256 and asks for certificates', () => {
    const msgs = v2Messages('basic-netlink-v2-cert').map((m) => decodeMessage(m.ike));
    const resp = msgs.find((m) => m.header.exchangeType === EXCHANGE.IKE_SA_INIT && m.header.flags.response);
    expect(resp).toBeDefined();
    const p = findPayload(resp!.payloads, PAYLOAD.SA)!.proposals[0]!;
    const encr = p.transforms.find((t) => t.type === TRANSFORM_TYPE.ENCR)!;
    expect(encr.id).toBe(ENCR.AES_GCM_16);
    expect(encr.attributes[0]?.value).toBe(256);
    expect(p.transforms.find((t) => t.type === TRANSFORM_TYPE.KE)?.id).toBe(KE_METHOD.ECP256);
    expect(findPayload(resp!.payloads, PAYLOAD.KE)?.data.length).toBe(64);
    expect(findPayload(resp!.payloads, PAYLOAD.CERTREQ)).toBeDefined();
  });
});
