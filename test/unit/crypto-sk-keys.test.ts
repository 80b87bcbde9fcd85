/**
 * SK payload ciphers (round trips, tamper and malformed input), the key
 * schedule's shapes (rekey, child keys with and without PFS), key-material
 * hygiene and the ESP algorithm mapping.
 */
import { createCipheriv, createHmac } from 'node:crypto';
import { inspect } from 'node:util';
import { describe, expect, test } from 'vitest';
import { deriveChildKeys, deriveIkeSaKeys, deriveRekeyedIkeSaKeys } from '../../src/crypto/ikev2/keys.js';
import { prf, prfPlus } from '../../src/crypto/prf.js';
import { counterRandom } from '../../src/crypto/random.js';
import { SecretBuffer } from '../../src/crypto/secrets.js';
import { createSkCipher } from '../../src/crypto/sk.js';
import {
  EncrId,
  encrById,
  encrKeyMaterialSize,
  espSaAlgorithms,
  IntegId,
  integKeyMaterialSize,
  PrfId,
} from '../../src/crypto/transforms.js';

const aad = Buffer.from('00112233445566778899aabbccddeeff2e202300000000010000012c2b000110', 'hex');

const suites = [
  { name: 'AES-CBC-128/SHA1-96', encr: EncrId.AES_CBC, keyLen: 128, integ: IntegId.HMAC_SHA1_96 },
  { name: 'AES-CBC-192/SHA256-128', encr: EncrId.AES_CBC, keyLen: 192, integ: IntegId.HMAC_SHA2_256_128 },
  { name: 'AES-CBC-256/SHA384-192', encr: EncrId.AES_CBC, keyLen: 256, integ: IntegId.HMAC_SHA2_384_192 },
  { name: 'AES-CBC-256/SHA512-256', encr: EncrId.AES_CBC, keyLen: 256, integ: IntegId.HMAC_SHA2_512_256 },
  { name: 'AES-GCM-16-128', encr: EncrId.AES_GCM_16, keyLen: 128 },
  { name: 'AES-GCM-16-256', encr: EncrId.AES_GCM_16, keyLen: 256 },
  { name: 'AES-GCM-8-256', encr: EncrId.AES_GCM_8, keyLen: 256 },
  { name: 'ChaCha20-Poly1305', encr: EncrId.CHACHA20_POLY1305 },
] as const;

describe.each(suites)('SK cipher $name', (s) => {
  const rnd = counterRandom(7);
  const encKey = rnd(encrKeyMaterialSize(s.encr, 'keyLen' in s ? s.keyLen : undefined));
  const integ = 'integ' in s ? s.integ : undefined;
  const integKey = integ ? rnd(integKeyMaterialSize(integ)) : undefined;
  const mk = () =>
    createSkCipher({
      encr: s.encr,
      keyLen: 'keyLen' in s ? s.keyLen : undefined,
      integ,
      encKey,
      integKey,
      randomBytes: counterRandom(1),
    });

  test('round trip for 0..70 bytes, length as announced', () => {
    const c = mk();
    for (let n = 0; n <= 70; n++) {
      const pt = Buffer.alloc(n, n);
      const body = c.seal(aad, pt);
      expect(body.length).toBe(c.sealedLength(n));
      if (encrById(s.encr).kind === 'cbc') expect((body.length - c.overhead) % 16).toBe(0);
      expect(c.open(aad, body)).toEqual(pt);
    }
  });

  test('IVs come from the injected source; a given IV is used as is', () => {
    const ivLen = encrById(s.encr).ivSize;
    const body = mk().seal(aad, Buffer.from('x'));
    expect(body.subarray(0, ivLen)).toEqual(counterRandom(1)(ivLen));
    const iv = Buffer.alloc(ivLen, 0x5a);
    expect(mk().seal(aad, Buffer.from('x'), iv).subarray(0, ivLen)).toEqual(iv);
    expect(() => mk().seal(aad, Buffer.from('x'), Buffer.alloc(ivLen + 1))).toThrow(/IV/);
  });

  test('every single-bit flip of body or AAD is rejected; malformed bodies give null', () => {
    const c = mk();
    const body = c.seal(aad, Buffer.from('inner payload chain'));
    for (let i = 0; i < body.length; i++) {
      const bad = Buffer.from(body);
      bad[i] = (bad[i] ?? 0) ^ (1 << (i % 8));
      expect(c.open(aad, bad), `byte ${i}`).toBeNull();
    }
    for (let i = 0; i < aad.length; i++) {
      const bad = Buffer.from(aad);
      bad[i] = (bad[i] ?? 0) ^ 0x01;
      expect(c.open(bad, body)).toBeNull();
    }
    for (const len of [0, 1, 8, c.overhead - 1, c.overhead, body.length - 1]) {
      expect(c.open(aad, body.subarray(0, len))).toBeNull();
    }
    expect(c.open(aad, Buffer.concat([body, Buffer.alloc(1)]))).toBeNull();
  });

  test('a different key does not open', () => {
    const other = createSkCipher({
      encr: s.encr,
      keyLen: 'keyLen' in s ? s.keyLen : undefined,
      integ,
      encKey: Buffer.alloc(encKey.length, 1),
      integKey,
    });
    expect(other.open(aad, mk().seal(aad, Buffer.from('secret')))).toBeNull();
  });
});

test('CBC: a pad length larger than the plaintext is rejected even with a valid ICV', () => {
  const encKey = Buffer.alloc(16, 1);
  const integKey = Buffer.alloc(32, 2);
  const c = createSkCipher({ encr: EncrId.AES_CBC, keyLen: 128, integ: IntegId.HMAC_SHA2_256_128, encKey, integKey });
  // Build a body whose decrypted last byte claims 200 bytes of padding.
  const iv = Buffer.alloc(16, 3);
  const block = Buffer.alloc(16, 0);
  block[15] = 200;
  const e = createCipheriv('aes-128-cbc', encKey, iv).setAutoPadding(false);
  const ct = Buffer.concat([e.update(block), e.final()]);
  const icv = createHmac('sha256', integKey).update(aad).update(iv).update(ct).digest().subarray(0, 16);
  expect(c.open(aad, Buffer.concat([iv, ct, icv]))).toBeNull();
});

test('SK cipher option errors are typed', () => {
  expect(() => createSkCipher({ encr: EncrId.AES_CBC, keyLen: 128, encKey: Buffer.alloc(16) })).toThrow(
    expect.objectContaining({ code: 'UNSUPPORTED_TRANSFORM' }),
  );
  expect(() => createSkCipher({ encr: EncrId.AES_GCM_16, keyLen: 128, encKey: Buffer.alloc(16) })).toThrow(
    expect.objectContaining({ code: 'INVALID_KEY_LENGTH' }),
  );
  expect(() => createSkCipher({ encr: EncrId.AES_CBC, keyLen: 100, encKey: Buffer.alloc(16) })).toThrow(
    expect.objectContaining({ code: 'INVALID_KEY_LENGTH' }),
  );
  expect(() => createSkCipher({ encr: 3, encKey: Buffer.alloc(16) })).toThrow(
    expect.objectContaining({ code: 'UNSUPPORTED_TRANSFORM' }),
  );
  const c = createSkCipher({ encr: EncrId.AES_GCM_16, keyLen: 128, encKey: Buffer.alloc(16), salt: Buffer.alloc(4) });
  expect(c.open(aad, c.seal(aad, Buffer.from('ok')))).toEqual(Buffer.from('ok'));
});

describe('key schedule', () => {
  const ni = Buffer.alloc(32, 0x11);
  const nr = Buffer.alloc(32, 0x22);
  const spiI = Buffer.from('0102030405060708', 'hex');
  const spiR = Buffer.from('1112131415161718', 'hex');
  const g = Buffer.alloc(32, 0x33);

  test('sizes follow the transforms; SK_e carries the salt for AEAD', () => {
    const k = deriveIkeSaKeys({
      prf: PrfId.HMAC_SHA2_384,
      encr: EncrId.AES_GCM_16,
      keyLen: 256,
      ni,
      nr,
      sharedSecret: g,
      spiI,
      spiR,
    });
    expect([k.skD, k.skAi, k.skEi, k.skPi].map((b) => b.length)).toEqual([48, 0, 36, 48]);
    const c = deriveIkeSaKeys({
      prf: PrfId.HMAC_SHA1,
      encr: EncrId.AES_CBC,
      keyLen: 192,
      integ: IntegId.HMAC_SHA2_512_256,
      ni,
      nr,
      sharedSecret: g,
      spiI,
      spiR,
    });
    expect([c.skD, c.skAi, c.skAr, c.skEi, c.skEr, c.skPi, c.skPr].map((b) => b.length)).toEqual([
      20, 64, 64, 24, 24, 20, 20,
    ]);
    expect(c.skeyseed).toEqual(prf(PrfId.HMAC_SHA1, Buffer.concat([ni, nr]), g));
    expect(() =>
      deriveIkeSaKeys({
        prf: 5,
        encr: 12,
        keyLen: 128,
        integ: 12,
        ni,
        nr,
        sharedSecret: g,
        spiI: Buffer.alloc(4),
        spiR,
      }),
    ).toThrow(/SPIs/);
  });

  test('rekey: SKEYSEED = prf_old(SK_d, g^ir | Ni | Nr), then prf+ with the new PRF', () => {
    const old = deriveIkeSaKeys({ prf: 5, encr: 12, keyLen: 128, integ: 12, ni, nr, sharedSecret: g, spiI, spiR });
    const g2 = Buffer.alloc(56, 0x44);
    const n = deriveRekeyedIkeSaKeys({
      oldPrf: 5,
      oldSkD: old.skD,
      prf: 7,
      encr: 20,
      keyLen: 256,
      ni: nr,
      nr: ni,
      sharedSecret: g2,
      spiI: spiR,
      spiR: spiI,
    });
    const want = createHmac('sha256', old.skD).update(g2).update(nr).update(ni).digest();
    expect(n.skeyseed).toEqual(want);
    const stream = prfPlus(7, want, Buffer.concat([nr, ni, spiR, spiI]), 64 + 36);
    expect(n.skD).toEqual(stream.subarray(0, 64));
    expect(n.skEi).toEqual(stream.subarray(64, 100));
  });

  test('child keys: order encr i->r, integ i->r, encr r->i, integ r->i; PFS secret goes first', () => {
    const skD = Buffer.alloc(32, 0x55);
    const k = deriveChildKeys({ prf: 5, skD, ni, nr, encrKeyLen: 16, integKeyLen: 32 });
    const stream = prfPlus(5, skD, Buffer.concat([ni, nr]), 96);
    expect(k.initiatorToResponder.encKey).toEqual(stream.subarray(0, 16));
    expect(k.initiatorToResponder.integKey).toEqual(stream.subarray(16, 48));
    expect(k.responderToInitiator.encKey).toEqual(stream.subarray(48, 64));
    expect(k.responderToInitiator.integKey).toEqual(stream.subarray(64, 96));
    const pfs = deriveChildKeys({ prf: 5, skD, ni, nr, sharedSecret: g, encrKeyLen: 36, integKeyLen: 0 });
    expect(Buffer.concat([pfs.initiatorToResponder.encKey, pfs.responderToInitiator.encKey])).toEqual(
      prfPlus(5, skD, Buffer.concat([g, ni, nr]), 72),
    );
    expect(pfs.initiatorToResponder.integKey.length).toBe(0);
  });

  test('destroy() zeroes every buffer; logs never show key bytes', () => {
    const k = deriveIkeSaKeys({ prf: 5, encr: 12, keyLen: 128, integ: 12, ni, nr, sharedSecret: g, spiI, spiR });
    const hex = k.skD.toString('hex');
    expect(JSON.stringify(k)).not.toContain(hex);
    expect(inspect(k)).not.toContain(hex.slice(0, 8));
    expect(JSON.parse(JSON.stringify(k)).skD).toBe('[32 bytes]');
    k.destroy();
    for (const b of [k.skeyseed, k.skD, k.skAi, k.skAr, k.skEi, k.skEr, k.skPi, k.skPr]) {
      expect(b.every((x) => x === 0)).toBe(true);
    }
    expect(k.destroyed).toBe(true);
  });

  test('SecretBuffer: redacted, zeroed, loud after destroy', () => {
    const raw = Buffer.from('super secret psk');
    const s = SecretBuffer.copyOf(raw);
    expect(JSON.stringify({ s })).toBe('{"s":"[secret 16 bytes]"}');
    expect(inspect(s)).not.toContain('super');
    expect(`${s}`).not.toContain('super');
    expect(s.bytes.toString()).toBe('super secret psk');
    s.destroy();
    expect(raw.toString()).toBe('super secret psk');
    expect(() => s.bytes).toThrow(/after destroy/);
  });
});

describe('ESP algorithm mapping', () => {
  test('AEAD: rfc4106 / rfc7539esp with salt in the key', () => {
    expect(espSaAlgorithms({ encr: EncrId.AES_GCM_16, keyBits: 256, encKey: Buffer.alloc(36) })).toEqual({
      aead: { name: 'rfc4106(gcm(aes))', key: Buffer.alloc(36), icvBits: 128 },
    });
    expect(espSaAlgorithms({ encr: EncrId.AES_GCM_12, keyBits: 128, encKey: Buffer.alloc(20) })).toMatchObject({
      aead: { icvBits: 96 },
    });
    expect(espSaAlgorithms({ encr: EncrId.CHACHA20_POLY1305, encKey: Buffer.alloc(36) })).toMatchObject({
      aead: { name: 'rfc7539esp(chacha20,poly1305)', icvBits: 128 },
    });
    expect(() => espSaAlgorithms({ encr: EncrId.AES_GCM_16, keyBits: 256, encKey: Buffer.alloc(32) })).toThrow(
      expect.objectContaining({ code: 'INVALID_KEY_LENGTH' }),
    );
  });

  test('CBC + HMAC with truncation bits', () => {
    for (const [integ, name, bits, keyLen] of [
      [IntegId.HMAC_SHA1_96, 'hmac(sha1)', 96, 20],
      [IntegId.HMAC_SHA2_256_128, 'hmac(sha256)', 128, 32],
      [IntegId.HMAC_SHA2_384_192, 'hmac(sha384)', 192, 48],
      [IntegId.HMAC_SHA2_512_256, 'hmac(sha512)', 256, 64],
    ] as const) {
      expect(
        espSaAlgorithms({
          encr: EncrId.AES_CBC,
          keyBits: 128,
          integ,
          encKey: Buffer.alloc(16),
          integKey: Buffer.alloc(keyLen),
        }),
      ).toEqual({
        crypt: { name: 'cbc(aes)', key: Buffer.alloc(16) },
        auth: { name, key: Buffer.alloc(keyLen), truncBits: bits },
      });
    }
    expect(() => espSaAlgorithms({ encr: EncrId.AES_CBC, keyBits: 128, encKey: Buffer.alloc(16) })).toThrow(
      expect.objectContaining({ code: 'UNSUPPORTED_TRANSFORM' }),
    );
  });
});
