/**
 * IKEv1 key schedule, IV chaining, hashes and KEYMAT against the golden
 * strongSwan 5.9.8 v1-psk runs: inputs from the captures and charon's key
 * logs, outputs compared with what charon logged and sent.
 */
import { describe, expect, it } from 'vitest';
import {
  derivePhase1Keys,
  hashI,
  hashR,
  hmacPrf,
  informationalHash,
  natdHash,
  nodeHash,
  Phase1Crypto,
  type Phase1HashInput,
  payloadChainLength,
  phase1Iv,
  phase2Iv,
  quickModeHash1,
  quickModeHash2,
  quickModeHash3,
  quickModeKeymat,
} from '../../src/crypto/ikev1/index.js';
import { goldenIke, ikeMajorVersion } from '../helpers/golden.js';
import { readEspSaTable, readIkev1DecryptionTable, readKeylogV1 } from '../helpers/keylog-v1.js';

const PSK = Buffer.from('rig-test-psk-v1-NOT-A-SECRET');
const AES128 = { nodeName: 'aes-128-cbc', keyLen: 16, blockSize: 16 } as const;
const prf = hmacPrf('sha256');
const hash = nodeHash('sha256');

// ISAKMP payload types used here (RFC 2408 / RFC 3947).
const SA = 1;
const KE = 4;
const ID = 5;
const HASH = 8;
const NONCE = 10;
const N = 11;
const D = 12;
const NAT_D = 20;
const PROTO_ESP = 3;

interface Payload {
  type: number;
  /** The payload with its generic header. */
  raw: Buffer;
  body: Buffer;
}

interface Message {
  src: string;
  cookieI: Buffer;
  cookieR: Buffer;
  firstPayload: number;
  exchange: number;
  encrypted: boolean;
  mid: number;
  body: Buffer;
}

function parseHeader(ike: Buffer, src: string): Message {
  expect(ike.length).toBeGreaterThanOrEqual(28);
  expect(ike.readUInt32BE(24)).toBe(ike.length);
  return {
    src,
    cookieI: ike.subarray(0, 8),
    cookieR: ike.subarray(8, 16),
    firstPayload: ike[16] ?? 0,
    exchange: ike[18] ?? 0,
    encrypted: ((ike[19] ?? 0) & 1) === 1,
    mid: ike.readUInt32BE(20),
    body: ike.subarray(28),
  };
}

function parseChain(body: Buffer, first: number): Payload[] {
  const out: Payload[] = [];
  let offset = 0;
  let type = first;
  while (type !== 0) {
    const len = body.readUInt16BE(offset + 2);
    expect(len).toBeGreaterThanOrEqual(4);
    expect(offset + len).toBeLessThanOrEqual(body.length);
    const raw = body.subarray(offset, offset + len);
    out.push({ type, raw, body: raw.subarray(4) });
    type = body[offset] ?? 0;
    offset += len;
  }
  return out;
}

function only(payloads: Payload[], type: number): Payload {
  const found = payloads.filter((p) => p.type === type);
  expect(found).toHaveLength(1);
  return found[0]!;
}

/** The payloads after the leading HASH payload, with their headers, padding excluded. */
function afterHash(plain: Buffer, first: number): Buffer {
  expect(first).toBe(HASH);
  const end = payloadChainLength(plain, first);
  return plain.subarray(plain.readUInt16BE(2), end);
}

const RUNS = [
  { capture: 'basic-netlink-v1-psk', log: 'netlink-left-keys.log', peerLog: 'netlink-right-keys.log' },
  { capture: 'basic-libipsec-v1-psk', log: 'libipsec-left-keys.log', peerLog: 'libipsec-right-keys.log' },
];

describe.each(RUNS)('golden IKEv1 $capture', ({ capture, log, peerLog }) => {
  const keylog = readKeylogV1(log);
  const peerKeylog = readKeylogV1(peerLog);
  const messages = goldenIke(capture)
    .filter((d) => ikeMajorVersion(d.ike) === 1)
    .map((d) => parseHeader(d.ike, d.src));
  const [mm1, , mm3, mm4] = messages;
  const initiator = mm1!.src;
  const { cookieI, cookieR } = messages[1]!;
  const mm1Payloads = parseChain(mm1!.body, mm1!.firstPayload);
  const mm3Payloads = parseChain(mm3!.body, mm3!.firstPayload);
  const mm4Payloads = parseChain(mm4!.body, mm4!.firstPayload);
  const saiB = only(mm1Payloads, SA).body;
  const gxi = only(mm3Payloads, KE).body;
  const gxr = only(mm4Payloads, KE).body;
  const ni = only(mm3Payloads, NONCE).body;
  const nr = only(mm4Payloads, NONCE).body;
  const gxy = keylog.first('shared Diffie Hellman secret');
  const keys = derivePhase1Keys({
    prf,
    auth: { kind: 'psk', psk: PSK },
    ni,
    nr,
    sharedSecret: gxy,
    cookieI,
    cookieR,
    encKeyLen: AES128.keyLen,
  });

  /** Replays every encrypted message of the capture through one Phase1Crypto, in capture order. */
  function replay() {
    const crypto = new Phase1Crypto({ cipher: AES128, key: keys.encKey, hash, gxi, gxr });
    return messages
      .filter((m) => m.encrypted)
      .map((m) => {
        const ivBefore = crypto.nextIv(m.mid);
        const plain = crypto.decrypt(m.mid, m.body);
        return { ...m, ivBefore, plain, payloads: parseChain(plain, m.firstPayload), ivAfter: crypto.nextIv(m.mid) };
      });
  }
  const decrypted = replay();
  const hashInput: Phase1HashInput = { prf, skeyid: keys.skeyid, gxi, gxr, cookieI, cookieR, saiB };

  it('is a Main Mode with the expected cleartext inputs', () => {
    expect(messages.slice(0, 6).map((m) => m.exchange)).toEqual([2, 2, 2, 2, 2, 2]);
    expect(messages.slice(0, 4).every((m) => !m.encrypted)).toBe(true);
    expect(gxi).toHaveLength(256);
    expect(gxr).toHaveLength(256);
    expect(gxy).toHaveLength(256);
  });

  it('derives SKEYID, SKEYID_d/_a/_e and Ka as charon logged them', () => {
    expect(keys.skeyid.toString('hex')).toBe(keylog.first('SKEYID').toString('hex'));
    expect(keys.skeyidD.toString('hex')).toBe(keylog.first('SKEYID_d').toString('hex'));
    expect(keys.skeyidA.toString('hex')).toBe(keylog.first('SKEYID_a').toString('hex'));
    expect(keys.skeyidE.toString('hex')).toBe(keylog.first('SKEYID_e').toString('hex'));
    expect(keys.encKey.toString('hex')).toBe(keylog.first('encryption key Ka').toString('hex'));
  });

  it('matches the tshark IKEv1 decryption table (cookie -> Ka)', () => {
    const table = readIkev1DecryptionTable();
    expect(table.get(cookieI.toString('hex'))?.toString('hex')).toBe(keys.encKey.toString('hex'));
  });

  it('derives the phase-1 IV from g^xi | g^xr', () => {
    expect(phase1Iv(hash, gxi, gxr, 16).toString('hex')).toBe(keylog.first('initial IV').toString('hex'));
  });

  it('computes the NAT-D hashes charon logged and sent', () => {
    const chunks = keylog.all('natd_chunk');
    const hashes = keylog.all('natd_hash');
    expect(chunks.length).toBeGreaterThanOrEqual(2);
    chunks.forEach((chunk, i) => {
      expect(chunk.subarray(0, 16).equals(Buffer.concat([cookieI, cookieR]))).toBe(true);
      const port = chunk.readUInt16BE(20);
      expect(natdHash(hash, cookieI, cookieR, chunk.subarray(16, 20), port).toString('hex')).toBe(
        hashes[i]?.toString('hex'),
      );
    });
    const ours = (ip: string) => natdHash(hash, cookieI, cookieR, Buffer.from(ip.split('.').map(Number)), 500);
    const responder = messages[1]!.src;
    // The responder's NAT-D payloads: destination (the initiator) first, then its own source.
    const sent = mm4Payloads.filter((p) => p.type === NAT_D).map((p) => p.body.toString('hex'));
    expect(sent[0]).toBe(ours(initiator).toString('hex'));
    if (capture.includes('netlink')) expect(sent[1]).toBe(ours(responder).toString('hex'));
  });

  it('decrypts Main Mode 5/6 into ID then HASH and verifies HASH_I / HASH_R', () => {
    const [mm5, mm6] = decrypted;
    expect(mm5?.src).toBe(initiator);
    expect(mm5?.mid).toBe(0);
    expect(mm6?.mid).toBe(0);
    expect(mm5!.payloads.slice(0, 2).map((p) => p.type)).toEqual([ID, HASH]);
    expect(mm6!.payloads.slice(0, 2).map((p) => p.type)).toEqual([ID, HASH]);
    const idii = only(mm5!.payloads, ID).body;
    const idir = only(mm6!.payloads, ID).body;
    expect(idii.subarray(4).equals(Buffer.from([198, 51, 100, 1]))).toBe(true);
    expect(idir.subarray(4).equals(Buffer.from([198, 51, 100, 2]))).toBe(true);
    const hI = hashI(hashInput, idii);
    const hR = hashR(hashInput, idir);
    expect(only(mm5!.payloads, HASH).body.toString('hex')).toBe(hI.toString('hex'));
    expect(only(mm6!.payloads, HASH).body.toString('hex')).toBe(hR.toString('hex'));
    expect(hI.toString('hex')).toBe(keylog.first('HASH_I').toString('hex'));
    expect(hR.toString('hex')).toBe(peerKeylog.first('HASH_R').toString('hex'));
    // The logged HASH_I input is exactly g^xi | g^xr | CKY-I | CKY-R | SAi_b | IDii_b.
    expect(keylog.first('HASH_I data').equals(Buffer.concat([gxi, gxr, cookieI, cookieR, saiB, idii]))).toBe(true);
  });

  it('chains IVs: each message starts at the last block of the previous one of its exchange', () => {
    const [mm5, mm6] = decrypted;
    expect(mm5!.ivBefore.toString('hex')).toBe(keylog.first('initial IV').toString('hex'));
    expect(mm6!.ivBefore.equals(mm5!.body.subarray(-16))).toBe(true);
    const mid0 = keylog.all('next IV for MID 0').map((b) => b.toString('hex'));
    expect(mid0).toEqual([mm5!.ivAfter.toString('hex'), mm6!.ivAfter.toString('hex')]);
    for (const m of decrypted.filter((d) => d.mid !== 0)) {
      const first = decrypted.find((d) => d.mid === m.mid)!;
      if (first === m) {
        expect(m.ivBefore.equals(phase2Iv(hash, mm6!.ivAfter, m.mid, 16))).toBe(true);
      }
      // Every IV charon logged for this message ID is one our chaining produced.
      const ours = new Set(
        decrypted.filter((d) => d.mid === m.mid).flatMap((d) => [d.ivBefore, d.ivAfter].map((b) => b.toString('hex'))),
      );
      for (const logged of keylog.all(`next IV for MID ${m.mid}`)) {
        expect(ours.has(logged.toString('hex'))).toBe(true);
      }
    }
  });

  it('verifies Quick Mode HASH(1), HASH(2) and HASH(3)', () => {
    const qm = decrypted.filter((d) => d.exchange === 32);
    expect(qm.length).toBeGreaterThanOrEqual(2);
    const [qm1, qm2, qm3] = qm;
    expect(qm1!.payloads.map((p) => p.type)).toEqual([HASH, SA, NONCE, KE, ID, ID]);
    expect(qm2!.payloads.map((p) => p.type)).toEqual([HASH, SA, NONCE, KE, ID, ID]);
    const niB = only(qm1!.payloads, NONCE).body;
    const nrB = only(qm2!.payloads, NONCE).body;
    const h1 = quickModeHash1(prf, keys.skeyidA, qm1!.mid, afterHash(qm1!.plain, HASH));
    const h2 = quickModeHash2(prf, keys.skeyidA, qm2!.mid, niB, afterHash(qm2!.plain, HASH));
    expect(only(qm1!.payloads, HASH).body.toString('hex')).toBe(h1.toString('hex'));
    expect(only(qm2!.payloads, HASH).body.toString('hex')).toBe(h2.toString('hex'));
    expect(h1.toString('hex')).toBe(keylog.first('Hash(1)').toString('hex'));
    expect(h2.toString('hex')).toBe(peerKeylog.first('Hash(2)').toString('hex'));
    if (qm3) {
      expect(qm3.payloads.map((p) => p.type)).toEqual([HASH]);
      const h3 = quickModeHash3(prf, keys.skeyidA, qm3.mid, niB, nrB);
      expect(qm3.payloads[0]!.body.toString('hex')).toBe(h3.toString('hex'));
      expect(h3.toString('hex')).toBe(keylog.first('Hash(3)').toString('hex'));
    } else {
      expect(capture).toContain('netlink');
    }
  });

  it('recomputes the ESP KEYMAT of both SPIs', () => {
    const [qm1, qm2] = decrypted.filter((d) => d.exchange === 32);
    const niB = only(qm1!.payloads, NONCE).body;
    const nrB = only(qm2!.payloads, NONCE).body;
    const sharedSecret = keylog.first('DH secret');
    const keymat = (spi: number) =>
      quickModeKeymat({
        prf,
        skeyidD: keys.skeyidD,
        protocol: PROTO_ESP,
        spi,
        ni: niB,
        nr: nrB,
        sharedSecret,
        length: 48,
      });
    // The initiator (left) sends on its outbound SPI: "initiator" keys; it receives on its inbound SPI.
    const outbound = keylog.outboundSpis[0]!;
    const inbound = keylog.inboundSpis[0]!;
    const out = keymat(outbound);
    const inb = keymat(inbound);
    expect(out.subarray(0, 16).toString('hex')).toBe(keylog.first('encryption initiator key').toString('hex'));
    expect(out.subarray(16).toString('hex')).toBe(keylog.first('integrity initiator key').toString('hex'));
    expect(inb.subarray(0, 16).toString('hex')).toBe(keylog.first('encryption responder key').toString('hex'));
    expect(inb.subarray(16).toString('hex')).toBe(keylog.first('integrity responder key').toString('hex'));
    // Both SPIs appear in the SA payloads that QM1/QM2 carried.
    expect(only(qm1!.payloads, SA).body.includes(Buffer.from(inbound.toString(16).padStart(8, '0'), 'hex'))).toBe(true);
    expect(only(qm2!.payloads, SA).body.includes(Buffer.from(outbound.toString(16).padStart(8, '0'), 'hex'))).toBe(
      true,
    );
    if (capture.includes('libipsec')) {
      const table = readEspSaTable();
      for (const [spi, km] of [
        [outbound, out],
        [inbound, inb],
      ] as const) {
        expect(table.get(spi)?.encKey.toString('hex')).toBe(km.subarray(0, 16).toString('hex'));
        expect(table.get(spi)?.integKey.toString('hex')).toBe(km.subarray(16).toString('hex'));
      }
    }
  });

  it('decrypts the informational exchanges and verifies their HASH(1)', () => {
    const info = decrypted.filter((d) => d.exchange === 5);
    expect(info.length).toBeGreaterThanOrEqual(2);
    const logged = [...keylog.all('Hash'), ...peerKeylog.all('Hash')].map((b) => b.toString('hex'));
    for (const m of info) {
      expect(m.payloads[0]?.type).toBe(HASH);
      expect(m.payloads.slice(1).every((p) => p.type === N || p.type === D)).toBe(true);
      const h = informationalHash(prf, keys.skeyidA, m.mid, afterHash(m.plain, HASH));
      expect(m.payloads[0]!.body.toString('hex')).toBe(h.toString('hex'));
      expect(logged).toContain(h.toString('hex'));
    }
  });
});
