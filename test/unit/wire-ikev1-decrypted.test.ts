/**
 * Real decrypted IKEv1 bodies: the encrypted messages of basic-netlink-v1-psk
 * decrypted with charon's logged Ka and IV chain (RFC 2409 appendix B, done
 * here with plain AES-128-CBC), then parsed with decodeV1PayloadChain, which
 * must accept strongSwan's CBC padding and reproduce the plaintext exactly.
 */
import { createDecipheriv, createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  checkV1Rules,
  decodeIsakmpMessage,
  decodeV1PayloadChain,
  encodeV1PayloadChain,
  findV1AttributeNumber,
  formatV1IdData,
  type IsakmpEncryptedMessage,
  V1PayloadType as P,
  V1EncapsulationMode,
  V1NotifyType,
  V1P2Attr,
  V1ProtocolId,
  V1ExchangeType as X,
} from '../../src/wire/ikev1/index.js';
import { goldenIke, ikeMajorVersion } from '../helpers/golden.js';
import { readKeylogV1 } from '../helpers/keylog-v1.js';

const lastBlock = (b: Buffer) => b.subarray(b.length - 16);
const phase2Iv = (p1Last: Buffer, mid: number) => {
  const m = Buffer.alloc(4);
  m.writeUInt32BE(mid);
  return createHash('sha256').update(p1Last).update(m).digest().subarray(0, 16);
};

interface Decrypted {
  msg: IsakmpEncryptedMessage;
  plain: Buffer;
}

/** Decrypts every E-flag message of a capture, following the RFC 2409 IV chain. */
function plaintexts(capture: string, keylog: string): Decrypted[] {
  const keys = readKeylogV1(keylog);
  const ka = keys.first('encryption key Ka');
  const decrypt = (ct: Buffer, iv: Buffer) => {
    const d = createDecipheriv('aes-128-cbc', ka, iv);
    d.setAutoPadding(false);
    return Buffer.concat([d.update(ct), d.final()]);
  };
  const msgs = goldenIke(capture)
    .filter((m) => ikeMajorVersion(m.ike) === 1)
    .map((m) => decodeIsakmpMessage(m.ike))
    .filter((m): m is IsakmpEncryptedMessage => m.encrypted !== undefined);
  const [mm5, mm6, ...rest] = msgs;
  const out = [
    { msg: mm5!, plain: decrypt(mm5!.encrypted, keys.first('initial IV')) },
    { msg: mm6!, plain: decrypt(mm6!.encrypted, lastBlock(mm5!.encrypted)) },
  ];
  const p1Last = lastBlock(mm6!.encrypted);
  const lastByMid = new Map<number, Buffer>();
  for (const msg of rest) {
    const mid = msg.header.messageId;
    out.push({ msg, plain: decrypt(msg.encrypted, lastByMid.get(mid) ?? phase2Iv(p1Last, mid)) });
    lastByMid.set(mid, lastBlock(msg.encrypted));
  }
  return out;
}

const decode = ({ msg, plain }: Decrypted) =>
  decodeV1PayloadChain(plain, msg.header.nextPayload, 'decrypted', { allowTrailingPadding: true }).payloads;

describe('decrypted IKEv1 bodies from basic-libipsec-v1-psk (NAT-T forced)', () => {
  const all = plaintexts('basic-libipsec-v1-psk', 'libipsec-left-keys.log');

  it('every body parses, Quick Mode uses UDP-encapsulated tunnel mode and ends with a bare HASH(3)', () => {
    expect(all).toHaveLength(7);
    for (const d of all) {
      const { bytes } = encodeV1PayloadChain(decode(d));
      expect(d.plain.subarray(0, bytes.length).equals(bytes)).toBe(true);
    }
    const qm = all.filter((d) => d.msg.header.exchangeType === X.QUICK_MODE).map(decode);
    expect(qm).toHaveLength(3);
    qm.forEach((payloads, i) => {
      expect(checkV1Rules(X.QUICK_MODE, i + 1, payloads, { encrypted: true })).toEqual({ ok: true });
    });
    for (const payloads of qm.slice(0, 2)) {
      const sa = payloads.find((p) => p.type === P.SA);
      if (sa?.type !== P.SA) throw new Error('SA');
      const attrs = sa.proposals[0]!.transforms[0]!.attributes;
      expect(findV1AttributeNumber(attrs, V1P2Attr.ENCAPSULATION_MODE)).toBe(
        V1EncapsulationMode.UDP_ENCAPSULATED_TUNNEL,
      );
    }
    expect(qm[2]!.map((p) => p.type)).toEqual([P.HASH]);
  });
});

describe('decrypted IKEv1 bodies from basic-netlink-v1-psk', () => {
  const all = plaintexts('basic-netlink-v1-psk', 'netlink-left-keys.log');

  it('every decrypted body parses with its CBC padding and re-encodes to the same plaintext', () => {
    expect(all).toHaveLength(6);
    for (const { msg, plain } of all) {
      const { payloads, trailing } = decodeV1PayloadChain(plain, msg.header.nextPayload, 'decrypted', {
        allowTrailingPadding: true,
      });
      expect(trailing).toBeGreaterThan(0); // charon always pads: 1..16 octets
      expect(trailing).toBeLessThanOrEqual(16);
      const { firstType, bytes } = encodeV1PayloadChain(payloads);
      expect(firstType).toBe(msg.header.nextPayload);
      expect(Buffer.concat([bytes, plain.subarray(plain.length - trailing)]).equals(plain)).toBe(true);
      // Without the padding allowance, padded bodies are refused.
      expect(() => decodeV1PayloadChain(plain, msg.header.nextPayload)).toThrow(/after the last/);
    }
  });

  it('Main Mode 5/6 carry IPv4 IDs and HASH, and pass the rules', () => {
    for (const [i, step] of [
      [0, 5],
      [1, 6],
    ] as const) {
      const { msg, plain } = all[i]!;
      const { payloads } = decodeV1PayloadChain(plain, msg.header.nextPayload, 'MM', { allowTrailingPadding: true });
      expect(checkV1Rules(X.IDENTITY_PROTECTION, step, payloads, { encrypted: true })).toEqual({ ok: true });
      const id = payloads[0];
      if (id?.type !== P.ID) throw new Error('ID first');
      expect(formatV1IdData(id.idType, id.data)).toBe(step === 5 ? '198.51.100.1' : '198.51.100.2');
      expect(payloads.find((p) => p.type === P.HASH && p.data.length === 32)).toBeDefined();
    }
  });

  it('Quick Mode 1/2 offer ESP AES-128 / HMAC-SHA2-256 with PFS between 10.1.0.0/24 and 10.2.0.0/24', () => {
    const qm = all.filter((x) => x.msg.header.exchangeType === X.QUICK_MODE);
    expect(qm).toHaveLength(2);
    qm.forEach(({ msg, plain }, i) => {
      const { payloads } = decodeV1PayloadChain(plain, msg.header.nextPayload, 'QM', { allowTrailingPadding: true });
      expect(checkV1Rules(X.QUICK_MODE, i + 1, payloads, { encrypted: true })).toEqual({ ok: true });
      const sa = payloads.find((p) => p.type === P.SA);
      if (sa?.type !== P.SA) throw new Error('SA');
      const prop = sa.proposals[0]!;
      expect(prop.protocolId).toBe(V1ProtocolId.IPSEC_ESP);
      expect(prop.spi.length).toBe(4);
      const attrs = prop.transforms[0]!.attributes;
      expect(prop.transforms[0]!.transformId).toBe(12);
      expect(findV1AttributeNumber(attrs, V1P2Attr.KEY_LENGTH)).toBe(128);
      expect(findV1AttributeNumber(attrs, V1P2Attr.AUTHENTICATION_ALGORITHM)).toBe(5);
      expect(findV1AttributeNumber(attrs, V1P2Attr.GROUP_DESCRIPTION)).toBe(14);
      expect(findV1AttributeNumber(attrs, V1P2Attr.ENCAPSULATION_MODE)).toBe(V1EncapsulationMode.TUNNEL);
      const ids = payloads.flatMap((p) => (p.type === P.ID ? [formatV1IdData(p.idType, p.data)] : []));
      expect(ids).toEqual(['10.1.0.0/24', '10.2.0.0/24']);
      expect(payloads.some((p) => p.type === P.KE)).toBe(true);
    });
  });

  it('Informational messages are HASH then N or D', () => {
    const info = all.filter((x) => x.msg.header.exchangeType === X.INFORMATIONAL);
    expect(info).toHaveLength(2);
    const kinds: string[] = [];
    for (const { msg, plain } of info) {
      const { payloads } = decodeV1PayloadChain(plain, msg.header.nextPayload, 'INFO', { allowTrailingPadding: true });
      expect(checkV1Rules(X.INFORMATIONAL, 1, payloads, { encrypted: true })).toEqual({ ok: true });
      for (const p of payloads) {
        if (p.type === P.N) kinds.push(`N:${p.notifyType}`);
        if (p.type === P.D) kinds.push(`D:${p.protocolId}/${p.spiSize}x${p.spis.length}`);
      }
    }
    expect(kinds.length).toBeGreaterThan(0);
    expect(kinds.every((k) => k.startsWith('N:') || k.startsWith('D:'))).toBe(true);
    expect(V1NotifyType.INVALID_ID_INFORMATION).toBe(18);
  });
});
