import { describe, expect, it } from 'vitest';
import {
  checkV1Rules,
  decodeIsakmpMessage,
  encodeEncryptedIsakmp,
  encodeIsakmpMessage,
  findV1AttributeNumber,
  type IsakmpMessage,
  V1EspTransformId,
  V1ExchangeType,
  V1Group,
  V1IsakmpTransformId,
  V1NotifyType,
  V1P1Attr,
  V1P1AuthMethod,
  V1P1Encryption,
  V1P1Hash,
  type V1Payload,
  V1PayloadType,
  V1ProtocolId,
  V1VendorId,
  vendorIdName,
} from '../../src/wire/ikev1/index.js';
import { goldenCaptures, goldenIke, ikeMajorVersion } from '../helpers/golden.js';

function v1Messages(capture: string): { ike: Buffer; msg: IsakmpMessage }[] {
  return goldenIke(capture)
    .filter((m) => ikeMajorVersion(m.ike) === 1)
    .map((m) => ({ ike: m.ike, msg: decodeIsakmpMessage(m.ike) }));
}

function plain(m: IsakmpMessage): V1Payload[] {
  if (!m.payloads) throw new Error('expected an unencrypted message');
  return m.payloads;
}

describe('IKEv1 golden captures', () => {
  it('every IKEv1 message decodes and re-encodes byte for byte', () => {
    let plainCount = 0;
    let encCount = 0;
    for (const capture of goldenCaptures()) {
      for (const { ike, msg } of v1Messages(capture)) {
        if (msg.encrypted) {
          expect(msg.header.flags.encryption).toBe(true);
          expect(msg.encrypted.length).toBe(ike.length - 28);
          expect(encodeEncryptedIsakmp(msg.header, msg.header.nextPayload, msg.encrypted).equals(ike)).toBe(true);
          encCount++;
        } else {
          expect(encodeIsakmpMessage(msg.header, msg.payloads).equals(ike), capture).toBe(true);
          // A second decode of the re-encoding yields the same structure.
          expect(decodeIsakmpMessage(encodeIsakmpMessage(msg.header, msg.payloads))).toEqual(msg);
          plainCount++;
        }
      }
    }
    expect(plainCount).toBeGreaterThanOrEqual(25);
    expect(encCount).toBeGreaterThanOrEqual(25);
  });

  it('Main Mode 1 of basic-netlink-v1-psk offers aes128-sha256-modp2048 PSK with NAT-T and DPD', () => {
    const [first] = v1Messages('basic-netlink-v1-psk');
    const payloads = plain(first!.msg);
    expect(first!.msg.header.exchangeType).toBe(V1ExchangeType.IDENTITY_PROTECTION);
    expect(first!.msg.header.responderCookie.equals(Buffer.alloc(8))).toBe(true);
    const sa = payloads[0];
    if (sa?.type !== V1PayloadType.SA) throw new Error('SA first');
    expect(sa.proposals).toHaveLength(1);
    const prop = sa.proposals[0]!;
    expect(prop.protocolId).toBe(V1ProtocolId.ISAKMP);
    expect(prop.transforms).toHaveLength(1);
    const t = prop.transforms[0]!;
    expect(t.transformId).toBe(V1IsakmpTransformId.KEY_IKE);
    expect(findV1AttributeNumber(t.attributes, V1P1Attr.ENCRYPTION_ALGORITHM)).toBe(V1P1Encryption.AES_CBC);
    expect(findV1AttributeNumber(t.attributes, V1P1Attr.KEY_LENGTH)).toBe(128);
    expect(findV1AttributeNumber(t.attributes, V1P1Attr.HASH_ALGORITHM)).toBe(V1P1Hash.SHA2_256);
    expect(findV1AttributeNumber(t.attributes, V1P1Attr.GROUP_DESCRIPTION)).toBe(V1Group.MODP_2048);
    expect(findV1AttributeNumber(t.attributes, V1P1Attr.AUTHENTICATION_METHOD)).toBe(V1P1AuthMethod.PRE_SHARED_KEY);
    const vids = payloads.flatMap((p) => (p.type === V1PayloadType.VID ? [p.data.toString('hex')] : []));
    expect(vids).toContain(V1VendorId.NAT_T_RFC3947);
    expect(vids).toContain(V1VendorId.DPD);
    expect(checkV1Rules(V1ExchangeType.IDENTITY_PROTECTION, 1, payloads, { encrypted: false })).toEqual({ ok: true });
  });

  it('Main Mode 2..6 follow the per-message rules', () => {
    const msgs = v1Messages('basic-netlink-v1-psk');
    for (const step of [2, 3, 4]) {
      const payloads = plain(msgs[step - 1]!.msg);
      expect(
        checkV1Rules(V1ExchangeType.IDENTITY_PROTECTION, step, payloads, { encrypted: false }),
        `MM${step}`,
      ).toEqual({ ok: true });
    }
    const mm3 = plain(msgs[2]!.msg);
    const ke = mm3.find((p) => p.type === V1PayloadType.KE);
    expect(ke?.type === V1PayloadType.KE && ke.data.length).toBe(256); // modp2048
    const natd = mm3.filter((p) => p.type === V1PayloadType.NAT_D);
    expect(natd).toHaveLength(2);
    for (const n of natd) expect(n.type === V1PayloadType.NAT_D && n.hash.length).toBe(32); // SHA2-256
    expect(msgs[4]!.msg.encrypted).toBeDefined();
    expect(msgs[5]!.msg.encrypted).toBeDefined();
    // The 2nd response from the responder also selects exactly one transform.
    const mm2 = plain(msgs[1]!.msg);
    expect(mm2[0]?.type === V1PayloadType.SA && mm2[0].proposals[0]?.transforms.length).toBe(1);
  });

  it('Quick Mode and Informational messages carry the E flag and the header fields of the capture', () => {
    const msgs = v1Messages('dpd-v1-restart');
    const qm = msgs.filter((m) => m.msg.header.exchangeType === V1ExchangeType.QUICK_MODE);
    expect(qm.length).toBeGreaterThanOrEqual(3);
    for (const m of qm) {
      expect(m.msg.encrypted).toBeDefined();
      expect(m.msg.header.nextPayload).toBe(V1PayloadType.HASH);
      expect(m.msg.header.messageId).not.toBe(0);
    }
    const info = msgs.filter((m) => m.msg.header.exchangeType === V1ExchangeType.INFORMATIONAL);
    expect(info.length).toBeGreaterThan(0);
    for (const m of [...qm, ...info]) {
      // AES-CBC ciphertext: whole 16-octet blocks, header length = datagram length.
      expect((m.msg.encrypted?.length ?? 1) % 16).toBe(0);
      expect(m.msg.header.length).toBe(m.ike.length);
    }
  });

  it('ike-scan probes and charon answers decode, including unprotected NO-PROPOSAL-CHOSEN', () => {
    const msgs = v1Messages('ike-scan');
    expect(msgs.length).toBeGreaterThanOrEqual(12);
    const multi = msgs.find(
      (m) => m.msg.payloads?.[0]?.type === V1PayloadType.SA && m.msg.payloads[0].proposals[0]!.transforms.length === 8,
    );
    expect(multi).toBeDefined();
    const aggressive = msgs.find((m) => m.msg.header.exchangeType === V1ExchangeType.AGGRESSIVE);
    expect(aggressive).toBeDefined();
    expect(checkV1Rules(V1ExchangeType.AGGRESSIVE, 1, plain(aggressive!.msg), { encrypted: false })).toEqual({
      ok: true,
    });
    const notifies = msgs
      .filter((m) => m.msg.header.exchangeType === V1ExchangeType.INFORMATIONAL)
      .map((m) => plain(m.msg));
    expect(notifies.length).toBe(3);
    for (const n of notifies) {
      expect(checkV1Rules(V1ExchangeType.INFORMATIONAL, 1, n, { encrypted: false })).toEqual({ ok: true });
    }
    const types = notifies.map((n) => (n[0]?.type === V1PayloadType.N ? n[0].notifyType : -1));
    expect(types).toContain(V1NotifyType.NO_PROPOSAL_CHOSEN);
    expect(types).toContain(V1NotifyType.AUTHENTICATION_FAILED);
    const answers = msgs.filter((m) => m.msg.payloads?.some((p) => p.type === V1PayloadType.VID));
    for (const a of answers) {
      const names = plain(a.msg).flatMap((p) => (p.type === V1PayloadType.VID ? [vendorIdName(p.data)] : []));
      expect(names).toEqual(['STRONGSWAN', 'XAUTH', 'DPD']);
    }
    expect(V1EspTransformId.ESP_AES).toBe(12);
  });
});
