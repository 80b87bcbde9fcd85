import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { parseAlgorithmIdentifier } from '../../src/crypto/asn1.js';
import {
  AuthMethod,
  chooseScheme,
  HashAlgorithm,
  type SignatureScheme,
  schemeAlgorithmIdentifier,
  schemeHashAlgorithm,
  signAuth,
  verifyAuth,
} from '../../src/crypto/signatures.js';

const rsa = () => generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = (namedCurve: string) => generateKeyPairSync('ec', { namedCurve });
const ed = () => generateKeyPairSync('ed25519');
const keys = {
  rsa: rsa(),
  rsa2: rsa(),
  p256: ec('prime256v1'),
  p256b: ec('prime256v1'),
  p384: ec('secp384r1'),
  p521: ec('secp521r1'),
  ed: ed(),
  ed2: ed(),
};
const octets = Buffer.from('InitiatorSignedOctets: message | nonce | prf(SK_pi, IDi)');

test('AlgorithmIdentifier encodings are the RFC 7427 / RFC 8420 bytes', () => {
  const hex = (s: SignatureScheme) => schemeAlgorithmIdentifier(s).toString('hex');
  expect(hex('rsa-pkcs1-sha256')).toBe('300d06092a864886f70d01010b0500');
  expect(hex('rsa-pkcs1-sha384')).toBe('300d06092a864886f70d01010c0500');
  expect(hex('rsa-pkcs1-sha512')).toBe('300d06092a864886f70d01010d0500');
  expect(hex('ecdsa-sha256')).toBe('300a06082a8648ce3d040302');
  expect(hex('ecdsa-sha384')).toBe('300a06082a8648ce3d040303');
  expect(hex('ecdsa-sha512')).toBe('300a06082a8648ce3d040304');
  expect(hex('ed25519')).toBe('300506032b6570');
  // RSASSA-PSS, SHA-256, MGF1-SHA-256, salt 32 (DER: default trailerField omitted).
  expect(hex('rsa-pss-sha256')).toBe(
    '304106092a864886f70d01010a3034a00f300d06096086480165030402010500a11c301a06092a864886f70d010108300d06096086480165030402010500a203020120',
  );
  // The RFC 7427 A.4.3 form with an explicit trailerField parses to the same parameters.
  const rfc = Buffer.from(
    '304606092a864886f70d01010a3039a00f300d06096086480165030402010500a11c301a06092a864886f70d010108300d06096086480165030402010500a203020120a303020101',
    'hex',
  );
  expect(parseAlgorithmIdentifier(rfc)).toEqual({
    oid: '1.2.840.113549.1.1.10',
    pss: { hashOid: '2.16.840.1.101.3.4.2.1', mgfHashOid: '2.16.840.1.101.3.4.2.1', saltLength: 32 },
  });
  expect(parseAlgorithmIdentifier(rfc.subarray(0, 20))).toBeUndefined();
});

const method14: [SignatureScheme, KeyObject, KeyObject, KeyObject][] = [
  ['rsa-pkcs1-sha256', keys.rsa.privateKey, keys.rsa.publicKey, keys.rsa2.publicKey],
  ['rsa-pkcs1-sha384', keys.rsa.privateKey, keys.rsa.publicKey, keys.rsa2.publicKey],
  ['rsa-pkcs1-sha512', keys.rsa.privateKey, keys.rsa.publicKey, keys.rsa2.publicKey],
  ['rsa-pss-sha256', keys.rsa.privateKey, keys.rsa.publicKey, keys.rsa2.publicKey],
  ['ecdsa-sha256', keys.p256.privateKey, keys.p256.publicKey, keys.p256b.publicKey],
  ['ecdsa-sha384', keys.p384.privateKey, keys.p384.publicKey, keys.p256.publicKey],
  ['ecdsa-sha512', keys.p521.privateKey, keys.p521.publicKey, keys.p256.publicKey],
  ['ed25519', keys.ed.privateKey, keys.ed.publicKey, keys.ed2.publicKey],
];

describe.each(method14)('Digital Signature (14) %s', (scheme, priv, pub, wrong) => {
  const authData = signAuth({ method: AuthMethod.DIGITAL_SIGNATURE, scheme, privateKey: priv, octets });
  test('round trip', () => {
    expect(verifyAuth({ method: 14, publicKey: pub, octets, authData })).toEqual({ ok: true, scheme });
    expect(authData.subarray(1, 1 + (authData[0] ?? 0))).toEqual(schemeAlgorithmIdentifier(scheme));
  });
  test('wrong key, changed octets, corrupted data fail', () => {
    expect(verifyAuth({ method: 14, publicKey: wrong, octets, authData }).ok).toBe(false);
    expect(verifyAuth({ method: 14, publicKey: pub, octets: Buffer.concat([octets, Buffer.of(0)]), authData }).ok).toBe(
      false,
    );
    const bad = Buffer.from(authData);
    bad[bad.length - 3] = (bad[bad.length - 3] ?? 0) ^ 0x10;
    expect(verifyAuth({ method: 14, publicKey: pub, octets, authData: bad }).ok).toBe(false);
    expect(verifyAuth({ method: 14, publicKey: pub, octets, authData: authData.subarray(0, 5) }).ok).toBe(false);
    expect(verifyAuth({ method: 14, publicKey: pub, octets, authData: Buffer.alloc(0) }).ok).toBe(false);
  });
});

const classic: [number, KeyObject, KeyObject, KeyObject, number][] = [
  [AuthMethod.RSA_SIGNATURE, keys.rsa.privateKey, keys.rsa.publicKey, keys.rsa2.publicKey, 256],
  [AuthMethod.ECDSA_SHA256_P256, keys.p256.privateKey, keys.p256.publicKey, keys.p256b.publicKey, 64],
  [AuthMethod.ECDSA_SHA384_P384, keys.p384.privateKey, keys.p384.publicKey, keys.p256.publicKey, 96],
  [AuthMethod.ECDSA_SHA512_P521, keys.p521.privateKey, keys.p521.publicKey, keys.p256.publicKey, 132],
];

describe.each(classic)('classic auth method %i', (method, priv, pub, wrong, sigLen) => {
  const authData = signAuth({ method, privateKey: priv, octets });
  test('round trip with the raw signature format', () => {
    expect(authData.length).toBe(sigLen);
    expect(verifyAuth({ method, publicKey: pub, octets, authData }).ok).toBe(true);
  });
  test('wrong key fails', () => {
    expect(verifyAuth({ method, publicKey: wrong, octets, authData }).ok).toBe(false);
  });
});

test('method/key mismatches are refused', () => {
  expect(() => signAuth({ method: 9, privateKey: keys.p384.privateKey, octets })).toThrow(/prime256v1/);
  expect(() => signAuth({ method: 14, scheme: 'ed25519', privateKey: keys.rsa.privateKey, octets })).toThrow(
    /cannot sign/,
  );
  expect(() => signAuth({ method: 2, privateKey: keys.rsa.privateKey, octets })).toThrow(/not a signature/);
  const data = signAuth({ method: 14, scheme: 'ecdsa-sha256', privateKey: keys.p256.privateKey, octets });
  expect(verifyAuth({ method: 14, publicKey: keys.ed.publicKey, octets, authData: data })).toMatchObject({
    ok: false,
    reason: expect.stringMatching(/does not match/),
  });
});

test('SIGNATURE_HASH_ALGORITHMS values and scheme choice', () => {
  expect(HashAlgorithm).toEqual({ SHA1: 1, SHA2_256: 2, SHA2_384: 3, SHA2_512: 4, IDENTITY: 5 });
  expect(schemeHashAlgorithm('ed25519')).toBe(5);
  expect(schemeHashAlgorithm('ecdsa-sha384')).toBe(3);
  expect(chooseScheme(keys.p256.privateKey, [2, 3])).toBe('ecdsa-sha384');
  expect(chooseScheme(keys.rsa.privateKey, [2])).toBe('rsa-pkcs1-sha256');
  expect(chooseScheme(keys.ed.privateKey, [2, 3, 4])).toBeUndefined();
  expect(chooseScheme(keys.ed.privateKey, [5])).toBe('ed25519');
});
