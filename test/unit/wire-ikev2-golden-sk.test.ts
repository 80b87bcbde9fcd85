/**
 * Golden test of the encrypted part: decrypt every SK payload of the golden
 * captures with the keys in tshark-keys/ikev2_decryption_table, then check that
 * (1) encodeSkPrefix rebuilt from the decoded message is the integrity/AAD
 * range the peer used (the ICV verifies), (2) the inner payload chain decodes
 * and re-encodes byte for byte, and (3) it passes the exchange rules.
 */
import { type CipherGCMTypes, createDecipheriv, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  checkExchangeRules,
  decodeMessage,
  decodePayloadChain,
  EXCHANGE,
  encodePayloadChain,
  encodeSkPrefix,
  findPayload,
  ID_TYPE,
  isSk,
  PAYLOAD,
  type Payload,
} from '../../src/wire/ikev2/index.js';
import { GOLDEN_DIR, goldenCaptures, goldenIke, ikeMajorVersion } from '../helpers/golden.js';

interface SaKeys {
  ei: Buffer;
  er: Buffer;
  gcm: boolean;
  ai: Buffer;
  ar: Buffer;
}

function loadKeys(): Map<string, SaKeys> {
  const text = readFileSync(join(GOLDEN_DIR, 'tshark-keys', 'ikev2_decryption_table'), 'utf8');
  const keys = new Map<string, SaKeys>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const f = line.split(',');
    const [spiI, spiR, ei, er, alg, ai, ar] = f;
    if (!spiI || !spiR || !ei || !er || !alg) continue;
    const gcm = alg.includes('GCM');
    if (!gcm && !alg.includes('AES-CBC')) continue;
    keys.set(`${spiI}${spiR}`, {
      ei: Buffer.from(ei, 'hex'),
      er: Buffer.from(er, 'hex'),
      gcm,
      ai: Buffer.from(ai ?? '', 'hex'),
      ar: Buffer.from(ar ?? '', 'hex'),
    });
  }
  return keys;
}

/** Decrypt an SK body given the prefix the wire layer rebuilt; returns the unpadded inner chain. */
function open(k: SaKeys, fromInitiator: boolean, prefix: Buffer, body: Buffer): Buffer {
  const key = fromInitiator ? k.ei : k.er;
  let plain: Buffer;
  if (k.gcm) {
    const salt = key.subarray(key.length - 4);
    const iv = body.subarray(0, 8);
    const ct = body.subarray(8, body.length - 16);
    const d = createDecipheriv(
      `aes-${(key.length - 4) * 8}-gcm` as CipherGCMTypes,
      key.subarray(0, key.length - 4),
      Buffer.concat([salt, iv]),
    );
    d.setAAD(prefix);
    d.setAuthTag(body.subarray(body.length - 16));
    plain = Buffer.concat([d.update(ct), d.final()]);
  } else {
    const icv = body.subarray(body.length - 16);
    const mac = createHmac('sha256', fromInitiator ? k.ai : k.ar)
      .update(prefix)
      .update(body.subarray(0, body.length - 16))
      .digest()
      .subarray(0, 16);
    expect(mac.equals(icv), 'ICV over encodeSkPrefix || IV || ciphertext').toBe(true);
    const d = createDecipheriv(`aes-${key.length * 8}-cbc`, key, body.subarray(0, 16));
    d.setAutoPadding(false);
    plain = Buffer.concat([d.update(body.subarray(16, body.length - 16)), d.final()]);
  }
  const padLen = plain[plain.length - 1] ?? 0;
  return plain.subarray(0, plain.length - padLen - 1);
}

describe('IKEv2 golden SK payloads', () => {
  const keys = loadKeys();
  const decrypted: { capture: string; exchange: number; response: boolean; inner: Payload[] }[] = [];

  it('decrypts, decodes and re-encodes every SK payload we have keys for', () => {
    expect(keys.size).toBeGreaterThan(3);
    for (const capture of goldenCaptures()) {
      for (const m of goldenIke(capture)) {
        if (ikeMajorVersion(m.ike) !== 2) continue;
        const msg = decodeMessage(m.ike);
        const sk = msg.payloads.find(isSk);
        const k = keys.get(msg.header.spiI.toString('hex') + msg.header.spiR.toString('hex'));
        if (!sk || !k) continue;
        const outer = msg.payloads.slice(0, -1);
        const prefix = encodeSkPrefix(msg.header, outer, sk.innerFirstPayload, sk.body.length);
        expect(prefix.equals(m.ike.subarray(0, prefix.length))).toBe(true);
        const innerBytes = open(k, msg.header.flags.initiator, prefix, sk.body);
        const inner = decodePayloadChain(innerBytes, sk.innerFirstPayload);
        const again = encodePayloadChain(inner);
        expect(again.firstType).toBe(sk.innerFirstPayload);
        expect(again.bytes.toString('hex'), `${capture}#${m.index}`).toBe(innerBytes.toString('hex'));
        const rules = checkExchangeRules(msg.header.exchangeType, msg.header.flags.response, msg.payloads, inner);
        expect(rules, `${capture}#${m.index} ${inner.map((p) => p.type).join(',')}`).toEqual({ ok: true });
        decrypted.push({ capture, exchange: msg.header.exchangeType, response: msg.header.flags.response, inner });
      }
    }
    expect(decrypted.length).toBeGreaterThan(10);
    expect(decrypted.some((d) => d.capture.includes('v2-cert'))).toBe(true);
  });

  it('finds the configured identities and traffic selectors in IKE_AUTH', () => {
    const auth = decrypted.filter((d) => d.exchange === EXCHANGE.IKE_AUTH && d.capture === 'basic-netlink-v2-psk');
    const req = auth.find((d) => !d.response);
    expect(req).toBeDefined();
    const idi = findPayload(req!.inner, PAYLOAD.IDi);
    expect(idi?.idType).toBe(ID_TYPE.FQDN);
    expect(idi?.data.toString()).toBe('left.psk.rig.test');
    expect(findPayload(req!.inner, PAYLOAD.AUTH)?.method).toBe(2);
    const tsi = findPayload(req!.inner, PAYLOAD.TSi);
    const sel = tsi?.selectors[0];
    expect(sel && 'startAddr' in sel && [sel.startAddr.toString('hex'), sel.endAddr.toString('hex')]).toEqual([
      '0a010000',
      '0a0100ff',
    ]);
    const cert = decrypted.find((d) => d.capture === 'basic-netlink-v2-cert' && d.exchange === EXCHANGE.IKE_AUTH);
    expect(findPayload(cert!.inner, PAYLOAD.CERT)?.data[0]).toBe(0x30);
  });
});
