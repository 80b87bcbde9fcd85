/**
 * Key exchange: RFC 7748 (X25519/X448) and RFC 5903 section 8 (ECP) known
 * answers through createKeyExchange, round trips for every group, and the
 * peer-value validation (INVALID_KE).
 */
import { createPrivateKey, createPublicKey, diffieHellman, getDiffieHellman } from 'node:crypto';
import { x25519 } from '@noble/curves/ed25519.js';
import { describe, expect, test } from 'vitest';
import { createKeyExchange } from '../../src/crypto/dh.js';
import { allTransforms, KeGroup } from '../../src/crypto/transforms.js';

const h = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** Raw RFC 7748 X25519/X448(k, u) through node:crypto. */
function ecxRaw(group: number, k: Buffer, u: Buffer): Buffer {
  return createKeyExchange(group, { privateKey: k }).computeShared(u);
}

describe('RFC 7748 X25519', () => {
  test('section 5.2 single vectors', () => {
    expect(
      ecxRaw(
        31,
        h('a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4'),
        h('e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c'),
      ).toString('hex'),
    ).toBe('c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552');
  });

  test('section 5.2 iterated: 1 and 1000 iterations', () => {
    let k: Buffer = h('0900000000000000000000000000000000000000000000000000000000000000');
    let u: Buffer = Buffer.from(k);
    for (let i = 1; i <= 1000; i++) {
      const r = ecxRaw(31, k, u);
      u = k;
      k = r;
      if (i === 1) expect(k.toString('hex')).toBe('422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079');
    }
    expect(k.toString('hex')).toBe('684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51');
  });

  test('section 6.1 Diffie-Hellman', () => {
    const alice = createKeyExchange(31, {
      privateKey: h('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a'),
    });
    const bob = createKeyExchange(31, {
      privateKey: h('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb'),
    });
    expect(alice.publicValue.toString('hex')).toBe('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
    expect(bob.publicValue.toString('hex')).toBe('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
    const shared = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';
    expect(alice.computeShared(bob.publicValue).toString('hex')).toBe(shared);
    expect(bob.computeShared(alice.publicValue).toString('hex')).toBe(shared);
  });

  test('a generated exchange agrees with @noble/curves', () => {
    const ours = createKeyExchange(31);
    const theirPriv = x25519.utils.randomSecretKey();
    const theirPub = Buffer.from(x25519.getPublicKey(theirPriv));
    const nobleShared = Buffer.from(x25519.getSharedSecret(theirPriv, ours.publicValue));
    expect(ours.computeShared(theirPub)).toEqual(nobleShared);
  });
});

describe('RFC 7748 X448', () => {
  test('section 5.2 single vector', () => {
    expect(
      ecxRaw(
        32,
        h(
          '3d262fddf9ec8e88495266fea19a34d28882acef045104d0d1aae121700a779c984c24f8cdd78fbff44943eba368f54b29259a4f1c600ad3',
        ),
        h(
          '06fce640fa3487bfda5f6cf2d5263f8aad88334cbd07437f020f08f9814dc031ddbdc38c19c6da2583fa5429db94ada18aa7a7fb4ef8a086',
        ),
      ).toString('hex'),
    ).toBe(
      'ce3e4ff95a60dc6697da1db1d85e6afbdf79b50a2412d7546d5f239fe14fbaadeb445fc66a01b0779d98223961111e21766282f73dd96b6f',
    );
  });

  test('section 5.2 iterated: 1 and 1000 iterations', () => {
    let k: Buffer = Buffer.alloc(56);
    k[0] = 5;
    let u: Buffer = Buffer.from(k);
    for (let i = 1; i <= 1000; i++) {
      const r = ecxRaw(32, k, u);
      u = k;
      k = r;
      if (i === 1) {
        expect(k.toString('hex')).toBe(
          '3f482c8a9f19b01e6c46ee9711d9dc14fd4bf67af30765c2ae2b846a4d23a8cd0db897086239492caf350b51f833868b9bc2b3bca9cf4113',
        );
      }
    }
    expect(k.toString('hex')).toBe(
      'aa3b4749d55b9daf1e5b00288826c467274ce3ebbdd5c17b975e09d4af6c67cf10d087202db88286e2b79fceea3ec353ef54faa26e219f38',
    );
  });

  test('section 6.2 Diffie-Hellman', () => {
    const alice = createKeyExchange(32, {
      privateKey: h(
        '9a8f4925d1519f5775cf46b04b5800d4ee9ee8bae8bc5565d498c28dd9c9baf574a9419744897391006382a6f127ab1d9ac2d8c0a598726b',
      ),
    });
    const bob = createKeyExchange(32, {
      privateKey: h(
        '1c306a7ac2a0e2e0990b294470cba339e6453772b075811d8fad0d1d6927c120bb5ee8972b0d3e21374c9c921b09d1b0366f10b65173992d',
      ),
    });
    expect(alice.publicValue.toString('hex')).toBe(
      '9b08f7cc31b7e3e67d22d5aea121074a273bd2b83de09c63faa73d2c22c5d9bbc836647241d953d40c5b12da88120d53177f80e532c41fa0',
    );
    expect(bob.publicValue.toString('hex')).toBe(
      '3eb7a829b0cd20f5bcfc0b599b6feccf6da4627107bdb0d4f345b43027d8b972fc3e34fb4232a13ca706dcb57aec3dae07bdc1c67bf33609',
    );
    const shared =
      '07fff4181ac6cc95ec1c16a94a0f74d12da232ce40a77552281d282bb60c0b56fd2464c335543936521c24403085d59a449a5037514a879d';
    expect(alice.computeShared(bob.publicValue).toString('hex')).toBe(shared);
    expect(bob.computeShared(alice.publicValue).toString('hex')).toBe(shared);
  });
});

// RFC 5903 section 8: [group, i, gi (x||y), r, gr (x||y), girx]
const RFC5903: [number, string, string, string, string, string][] = [
  [
    19,
    'C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433',
    'DAD0B65394221CF9B051E1FECA5787D098DFE637FC90B9EF945D0C3772581180 5271A0461CDB8252D61F1C456FA3E59AB1F45B33ACCF5F58389E0577B8990BB3',
    'C6EF9C5D78AE012A011164ACB397CE2088685D8F06BF9BE0B283AB46476BEE53',
    'D12DFB5289C8D4F81208B70270398C342296970A0BCCB74C736FC7554494BF63 56FBF3CA366CC23E8157854C13C58D6AAC23F046ADA30F8353E74F33039872AB',
    'D6840F6B42F6EDAFD13116E0E12565202FEF8E9ECE7DCE03812464D04B9442DE',
  ],
  [
    20,
    '099F3C7034D4A2C699884D73A375A67F7624EF7C6B3C0F160647B67414DCE655E35B538041E649EE3FAEF896783AB194',
    `667842D7D180AC2CDE6F74F37551F55755C7645C20EF73E31634FE72B4C55EE6DE3AC808ACB4BDB4C88732AEE95F41AA
     9482ED1FC0EEB9CAFC4984625CCFC23F65032149E0E144ADA024181535A0F38EEB9FCFF3C2C947DAE69B4C634573A81C`,
    '41CB0779B4BDB85D47846725FBEC3C9430FAB46CC8DC5060855CC9BDA0AA2942E0308312916B8ED2960E4BD55A7448FC',
    `E558DBEF53EECDE3D3FCCFC1AEA08A89A987475D12FD950D83CFA41732BC509D0D1AC43A0336DEF96FDA41D0774A3571
     DCFBEC7AACF3196472169E838430367F66EEBE3C6E70C416DD5F0C68759DD1FFF83FA40142209DFF5EAAD96DB9E6386C`,
    '11187331C279962D93D604243FD592CB9D0A926F422E47187521287E7156C5C4D603135569B9E9D09CF5D4A270F59746',
  ],
  [
    21,
    `0037ADE9319A89F4DABDB3EF411AACCCA5123C61ACAB57B5393DCE47608172A095AA85A30FE1C2952C6771D937BA9777F5957B2639BAB072462F68C27A57382D4A52`,
    `0015417E84DBF28C0AD3C278713349DC7DF153C897A1891BD98BAB4357C9ECBEE1E3BF42E00B8E380AEAE57C2D107564941885942AF5A7F4601723C4195D176CED3E
     017CAE20B6641D2EEB695786D8C946146239D099E18E1D5A514C739D7CB4A10AD8A788015AC405D7799DC75E7B7D5B6CF2261A6A7F1507438BF01BEB6CA3926F9582`,
    `0145BA99A847AF43793FDD0E872E7CDFA16BE30FDC780F97BCCC3F078380201E9C677D600B343757A3BDBF2A3163E4C2F869CCA7458AA4A4EFFC311F5CB151685EB9`,
    `00D0B3975AC4B799F5BEA16D5E13E9AF971D5E9B984C9F39728B5E5739735A219B97C356436ADC6E95BB0352F6BE64A6C2912D4EF2D0433CED2B6171640012D9460F
     015C68226383956E3BD066E797B623C27CE0EAC2F551A10C2C724D9852077B87220B6536C5C408A1D2AEBB8E86D678AE49CB57091F4732296579AB44FCD17F0FC56A`,
    `01144C7D79AE6956BC8EDB8E7C787C4521CB086FA64407F97894E5E6B2D79B04D1427E73CA4BAA240A34786859810C06B3C715A3A8CC3151F2BEE417996D19F3DDEA`,
  ],
];

describe.each(RFC5903)('RFC 5903 section 8, group %i', (group, i, gi, r, gr, girx) => {
  test('public values in wire format and the shared secret', () => {
    const ini = createKeyExchange(group, { privateKey: h(i) });
    const res = createKeyExchange(group, { privateKey: h(r) });
    expect(ini.publicValue).toEqual(h(gi));
    expect(res.publicValue).toEqual(h(gr));
    expect(ini.computeShared(h(gr))).toEqual(h(girx));
    expect(res.computeShared(h(gi))).toEqual(h(girx));
  });
});

describe.each(allTransforms.ke.map((d) => [d.name, d] as const))('%s round trip', (_n, d) => {
  test('both sides agree; sizes match the registry', () => {
    const a = createKeyExchange(d.id);
    const b = createKeyExchange(d.id);
    expect(a.publicValue.length).toBe(d.publicSize);
    const s = a.computeShared(b.publicValue);
    expect(s.length).toBe(d.sharedSize);
    expect(b.computeShared(a.publicValue)).toEqual(s);
    expect(createKeyExchange(d.id).publicValue).not.toEqual(a.publicValue);
  });
  test('wrong lengths are INVALID_KE', () => {
    const a = createKeyExchange(d.id);
    for (const len of [0, d.publicSize - 1, d.publicSize + 1]) {
      expect(() => a.computeShared(Buffer.alloc(len, 1))).toThrow(expect.objectContaining({ code: 'INVALID_KE' }));
    }
  });
});

describe('invalid peer KE values', () => {
  const invalid = expect.objectContaining({ code: 'INVALID_KE' });

  test('X25519 low-order points (u = 0, u = 1, order-8 points, p, p+1)', () => {
    const a = createKeyExchange(KeGroup.CURVE25519);
    const lowOrder = [
      '0000000000000000000000000000000000000000000000000000000000000000',
      '0100000000000000000000000000000000000000000000000000000000000000',
      'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
      '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
      'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
      'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
      'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
    ];
    for (const u of lowOrder) expect(() => a.computeShared(h(u)), u).toThrow(invalid);
  });

  test('X448 low-order points (u = 0, u = 1)', () => {
    const a = createKeyExchange(KeGroup.CURVE448);
    expect(() => a.computeShared(Buffer.alloc(56))).toThrow(invalid);
    const one = Buffer.alloc(56);
    one[0] = 1;
    expect(() => a.computeShared(one)).toThrow(invalid);
  });

  test('ECP: off-curve point and the all-zero encoding', () => {
    for (const group of [19, 20, 21]) {
      const a = createKeyExchange(group);
      const b = createKeyExchange(group);
      const off = Buffer.from(b.publicValue);
      off[off.length - 1] = (off[off.length - 1] ?? 0) ^ 1; // y changed: not on the curve
      expect(() => a.computeShared(off)).toThrow(invalid);
      expect(() => a.computeShared(Buffer.alloc(off.length))).toThrow(invalid);
      expect(() => a.computeShared(Buffer.alloc(off.length, 0xff))).toThrow(invalid);
    }
  });

  test('MODP: y = 0, 1, p-1, p and above', () => {
    const a = createKeyExchange(KeGroup.MODP_2048);
    const p = BigInt(`0x${getDiffieHellman('modp14').getPrime('hex')}`); // RFC 3526 group 14
    const enc = (v: bigint) => Buffer.from(v.toString(16).padStart(512, '0'), 'hex');
    for (const y of [0n, 1n, p - 1n, p, p + 1n, (1n << 2048n) - 1n]) {
      expect(() => a.computeShared(enc(y)), y.toString(16).slice(0, 8)).toThrow(invalid);
    }
    expect(a.computeShared(enc(2n)).length).toBe(256);
  });

  test('the error message says what was wrong', () => {
    const a = createKeyExchange(KeGroup.ECP_256);
    expect(() => a.computeShared(Buffer.alloc(3))).toThrow(/ECP_256: invalid peer KE value: length 3, expected 64/);
  });
});

test('a JWK-imported X25519 peer equals a DER-imported one (sanity of the fast path)', () => {
  const a = createKeyExchange(31);
  const b = createKeyExchange(31, {
    privateKey: h('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb'),
  });
  const bPriv = createPrivateKey({
    key: Buffer.concat([
      h('302e020100300506032b656e04220420'),
      h('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb'),
    ]),
    format: 'der',
    type: 'pkcs8',
  });
  const aPub = createPublicKey({
    key: Buffer.concat([h('302a300506032b656e032100'), a.publicValue]),
    format: 'der',
    type: 'spki',
  });
  expect(b.computeShared(a.publicValue)).toEqual(diffieHellman({ privateKey: bPriv, publicKey: aPub }));
});
