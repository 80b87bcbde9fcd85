/**
 * Published known-answer vectors: RFC 4231 (HMAC-SHA2 through prf), RFC 7539
 * 2.8.2 (ChaCha20-Poly1305), the GCM spec test case 4 in RFC 4106 form
 * (4-byte salt || 8-byte IV), and prf+ against strongSwan's golden keys.
 */
import { describe, expect, test } from 'vitest';
import { aeadDecrypt, aeadEncrypt } from '../../src/crypto/aead.js';
import { prf, prfPlus } from '../../src/crypto/prf.js';
import { createSkCipher } from '../../src/crypto/sk.js';
import { EncrId, PrfId } from '../../src/crypto/transforms.js';
import { goldenIkev2Sas } from '../helpers/keylog.js';

const h = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const rep = (byte: number, n: number) => Buffer.alloc(n, byte);

// RFC 4231 section 4: [key, data, SHA-256, SHA-384, SHA-512]
const RFC4231: [string, Buffer, Buffer, string, string, string][] = [
  [
    '1',
    rep(0x0b, 20),
    Buffer.from('Hi There'),
    'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7',
    'afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6',
    '87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854',
  ],
  [
    '2',
    Buffer.from('Jefe'),
    Buffer.from('what do ya want for nothing?'),
    '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
    'af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649',
    '164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737',
  ],
  [
    '3',
    rep(0xaa, 20),
    rep(0xdd, 50),
    '773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe',
    '88062608d3e6ad8a0aa2ace014c8a86f0aa635d947ac9febe83ef4e55966144b2a5ab39dc13814b94e3ab6e101a34f27',
    'fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb',
  ],
  [
    '4',
    Buffer.from(Array.from({ length: 25 }, (_, i) => i + 1)),
    rep(0xcd, 50),
    '82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b',
    '3e8a69b7783c25851933ab6290af6ca77a9981480850009cc5577c6e1f573b4e6801dd23c4a7d679ccf8a386c674cffb',
    'b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3dba91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd',
  ],
  [
    '6',
    rep(0xaa, 131),
    Buffer.from('Test Using Larger Than Block-Size Key - Hash Key First'),
    '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54',
    '4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c60c2ef6ab4030fe8296248df163f44952',
    '80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f3526b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598',
  ],
  [
    '7',
    rep(0xaa, 131),
    Buffer.from(
      'This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.',
    ),
    '9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2',
    '6617178e941f020d351e2f254e8fd32c602420feb0b8fb9adccebb82461e99c5a678cc31e799176d3860e6110c46523e',
    'e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944b6022cac3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58',
  ],
];

describe.each(RFC4231)('RFC 4231 test case %s', (_n, key, data, s256, s384, s512) => {
  test('PRF_HMAC_SHA2_256/384/512', () => {
    expect(prf(PrfId.HMAC_SHA2_256, key, data).toString('hex')).toBe(s256);
    expect(prf(PrfId.HMAC_SHA2_384, key, data).toString('hex')).toBe(s384);
    expect(prf(PrfId.HMAC_SHA2_512, key, data).toString('hex')).toBe(s512);
    // Data given in parts hashes the same as the concatenation.
    expect(prf(PrfId.HMAC_SHA2_256, key, [data.subarray(0, 3), data.subarray(3)]).toString('hex')).toBe(s256);
  });
});

describe('RFC 7539 2.8.2 ChaCha20-Poly1305 AEAD', () => {
  const key = Buffer.from(Array.from({ length: 32 }, (_, i) => 0x80 + i));
  const salt = h('07000000');
  const iv = h('4041424344454647');
  const aad = h('50515253c0c1c2c3c4c5c6c7');
  const pt = Buffer.from(
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
  );
  const ct = h(`d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b
    1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116`);
  const tag = h('1ae10b594f09e26a7e902ecbd0600691');

  test('encrypt and decrypt with nonce = salt || IV (RFC 7634)', () => {
    const out = aeadEncrypt('chacha20-poly1305', key, Buffer.concat([salt, iv]), aad, pt, 16);
    expect(out.ciphertext).toEqual(ct);
    expect(out.tag).toEqual(tag);
    expect(aeadDecrypt('chacha20-poly1305', key, Buffer.concat([salt, iv]), aad, ct, tag)).toEqual(pt);
    const badTag = Buffer.from(tag);
    badTag[0] = (badTag[0] ?? 0) ^ 1;
    expect(aeadDecrypt('chacha20-poly1305', key, Buffer.concat([salt, iv]), aad, ct, badTag)).toBeNull();
  });

  test('the SK cipher uses the same construction (pad length byte appended)', () => {
    const sk = createSkCipher({ encr: EncrId.CHACHA20_POLY1305, encKey: Buffer.concat([key, salt]) });
    const sealed = sk.seal(aad, pt, iv);
    const ref = aeadEncrypt('chacha20-poly1305', key, Buffer.concat([salt, iv]), aad, Buffer.concat([pt, h('00')]), 16);
    expect(sealed).toEqual(Buffer.concat([iv, ref.ciphertext, ref.tag]));
    // Keystream is shared with the vector: the first bytes equal the published ciphertext.
    expect(sealed.subarray(8, 8 + pt.length)).toEqual(ct);
    expect(sk.open(aad, sealed)).toEqual(pt);
  });
});

describe('AES-GCM (GCM spec test case 4, RFC 4106 nonce form)', () => {
  const key = h('feffe9928665731c6d6a8f9467308308');
  const salt = h('cafebabe');
  const iv = h('facedbaddecaf888');
  const aad = h('feedfacedeadbeeffeedfacedeadbeefabaddad2');
  const pt = h(`d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525
    b16aedf5aa0de657ba637b39`);
  const ct = h(`42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa05
    1ba30b396a0aac973d58e091`);
  const tag = h('5bc94fbc3221a5db94fae95ae7121a47');

  test('encrypt/decrypt', () => {
    const out = aeadEncrypt('aes-128-gcm', key, Buffer.concat([salt, iv]), aad, pt, 16);
    expect(out.ciphertext).toEqual(ct);
    expect(out.tag).toEqual(tag);
    expect(aeadDecrypt('aes-128-gcm', key, Buffer.concat([salt, iv]), aad, ct, tag)).toEqual(pt);
    expect(aeadDecrypt('aes-128-gcm', key, Buffer.concat([salt, iv]), aad.subarray(1), ct, tag)).toBeNull();
  });

  test('SK cipher: salt taken from the end of SK_e; shorter ICVs (GCM-8/12) are truncated tags', () => {
    for (const [encr, icv] of [
      [EncrId.AES_GCM_16, 16],
      [EncrId.AES_GCM_12, 12],
      [EncrId.AES_GCM_8, 8],
    ] as const) {
      const sk = createSkCipher({ encr, keyLen: 128, encKey: Buffer.concat([key, salt]) });
      const sealed = sk.seal(aad, pt, iv);
      expect(sealed.length).toBe(sk.sealedLength(pt.length));
      expect(sealed.subarray(8, 8 + pt.length)).toEqual(ct);
      if (icv === 16) expect(sealed.subarray(-16)).not.toEqual(tag); // tag covers the pad-length byte too
      expect(sealed.length).toBe(8 + pt.length + 1 + icv);
      expect(sk.open(aad, sealed)).toEqual(pt);
    }
  });
});

describe('prf+', () => {
  test('equals T1 | T2 | ... built from prf by hand', () => {
    const key = h('0102030405');
    const seed = Buffer.from('seed');
    const t1 = prf(PrfId.HMAC_SHA2_256, key, Buffer.concat([seed, h('01')]));
    const t2 = prf(PrfId.HMAC_SHA2_256, key, Buffer.concat([t1, seed, h('02')]));
    const t3 = prf(PrfId.HMAC_SHA2_256, key, Buffer.concat([t2, seed, h('03')]));
    expect(prfPlus(PrfId.HMAC_SHA2_256, key, seed, 80)).toEqual(Buffer.concat([t1, t2, t3]).subarray(0, 80));
    expect(prfPlus(PrfId.HMAC_SHA2_256, key, [seed.subarray(0, 1), seed.subarray(1)], 64)).toEqual(
      Buffer.concat([t1, t2]),
    );
  });

  test('is limited to 255 iterations', () => {
    expect(prfPlus(PrfId.HMAC_SHA1, Buffer.alloc(20), Buffer.alloc(1), 255 * 20).length).toBe(5100);
    expect(() => prfPlus(PrfId.HMAC_SHA1, Buffer.alloc(20), Buffer.alloc(1), 255 * 20 + 1)).toThrow(
      expect.objectContaining({ code: 'PRF_PLUS_TOO_LONG' }),
    );
  });

  test('reproduces strongSwan SK_d..SK_pr from the golden SKEYSEED', () => {
    const sa = goldenIkev2Sas('netlink-left-keys').find((s) => s.conn === 'v2-psk');
    if (!sa) throw new Error('no golden v2-psk SA');
    const stream = prfPlus(PrfId.HMAC_SHA2_256, sa.skeyseed, [sa.ni, sa.nr, sa.spiI, sa.spiR], 32 * 5 + 16 * 2);
    const want = ['Sk_d', 'Sk_ai', 'Sk_ar', 'Sk_ei', 'Sk_er', 'Sk_pi', 'Sk_pr'].map((k) => sa.keys.get(k));
    expect(stream).toEqual(Buffer.concat(want.map((b) => b ?? Buffer.alloc(0))));
  });
});
