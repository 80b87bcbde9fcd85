/**
 * Crypto bench: ops/s of coati's crypto layer next to the raw node:crypto
 * primitive floor measured in the same run, as a ratio (coati ÷ floor).
 * Build with `npm run build`, run `node dist/bench/crypto.js [seconds per case]`.
 */
import {
  createCipheriv,
  createDecipheriv,
  createECDH,
  createHmac,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  getDiffieHellman,
  type KeyObject,
  randomBytes,
} from 'node:crypto';
import { createKeyExchange } from '../src/crypto/dh.js';
import { deriveIkeSaKeys } from '../src/crypto/ikev2/keys.js';
import { prfPlus } from '../src/crypto/prf.js';
import { createSkCipher } from '../src/crypto/sk.js';
import { EncrId, IntegId, KeGroup, PrfId } from '../src/crypto/transforms.js';

const seconds = Number(process.argv[2] ?? '0.5');

function measure(fn: () => void): number {
  for (let i = 0; i < 50; i++) fn(); // warm-up
  let n = 0;
  const start = process.hrtime.bigint();
  const budget = BigInt(Math.round(seconds * 1e9));
  let elapsed = 0n;
  while (elapsed < budget) {
    for (let i = 0; i < 20; i++) fn();
    n += 20;
    elapsed = process.hrtime.bigint() - start;
  }
  return n / (Number(elapsed) / 1e9);
}

const rows: { name: string; ops: number; floorName: string; floor: number }[] = [];
function bench(name: string, fn: () => void, floorName: string, floorFn: () => void): void {
  const ops = measure(fn);
  const floor = measure(floorFn);
  rows.push({ name, ops, floorName, floor });
}

const key32 = randomBytes(32);
const ni = randomBytes(32);
const nr = randomBytes(32);
const spiI = randomBytes(8);
const spiR = randomBytes(8);
const g = randomBytes(32);
const seed = Buffer.concat([ni, nr, spiI, spiR]);

bench(
  'prf+ SHA-256, 224 B',
  () => prfPlus(PrfId.HMAC_SHA2_256, key32, seed, 224),
  '7 x createHmac',
  () => {
    for (let i = 0; i < 7; i++) createHmac('sha256', key32).update(seed).digest();
  },
);

bench(
  'IKEv2 keys (SKEYSEED + 7), CBC/SHA256',
  () =>
    deriveIkeSaKeys({
      prf: PrfId.HMAC_SHA2_256,
      encr: EncrId.AES_CBC,
      keyLen: 128,
      integ: IntegId.HMAC_SHA2_256_128,
      ni,
      nr,
      sharedSecret: g,
      spiI,
      spiR,
    }),
  '1 + 7 x createHmac',
  () => {
    for (let i = 0; i < 8; i++) createHmac('sha256', key32).update(seed).digest();
  },
);

const aad = randomBytes(32);
const payload = randomBytes(300);
const gcmKey = randomBytes(36);
const gcm = createSkCipher({ encr: EncrId.AES_GCM_16, keyLen: 256, encKey: gcmKey });
bench(
  'SK seal+open AES-256-GCM 300 B',
  () => {
    gcm.open(aad, gcm.seal(aad, payload));
  },
  'raw GCM enc+dec',
  () => {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', gcmKey.subarray(0, 32), iv);
    c.setAAD(aad);
    const ct = Buffer.concat([c.update(payload), c.final()]);
    const tag = c.getAuthTag();
    const d = createDecipheriv('aes-256-gcm', gcmKey.subarray(0, 32), iv);
    d.setAAD(aad);
    d.setAuthTag(tag);
    Buffer.concat([d.update(ct), d.final()]);
  },
);

const cbcKey = randomBytes(16);
const integKey = randomBytes(32);
const cbc = createSkCipher({
  encr: EncrId.AES_CBC,
  keyLen: 128,
  integ: IntegId.HMAC_SHA2_256_128,
  encKey: cbcKey,
  integKey,
});
const padded = randomBytes(304);
bench(
  'SK seal+open AES-128-CBC+SHA256 300 B',
  () => {
    cbc.open(aad, cbc.seal(aad, payload));
  },
  'raw CBC enc+dec + 2 HMAC',
  () => {
    const iv = randomBytes(16);
    const c = createCipheriv('aes-128-cbc', cbcKey, iv).setAutoPadding(false);
    const ct = Buffer.concat([c.update(padded), c.final()]);
    createHmac('sha256', integKey).update(aad).update(iv).update(ct).digest();
    createHmac('sha256', integKey).update(aad).update(iv).update(ct).digest();
    const d = createDecipheriv('aes-128-cbc', cbcKey, iv).setAutoPadding(false);
    Buffer.concat([d.update(ct), d.final()]);
  },
);

const peer = (group: number) => createKeyExchange(group).publicValue;
const x25519Peer = peer(KeGroup.CURVE25519);
const x25519Jwk = { kty: 'OKP', crv: 'X25519', x: x25519Peer.toString('base64url') };
bench(
  'X25519 keygen + shared',
  () => createKeyExchange(KeGroup.CURVE25519).computeShared(x25519Peer),
  'raw keygen(jwk) + JWK import + derive',
  () => {
    const pair = generateKeyPairSync('x25519', {
      publicKeyEncoding: { format: 'jwk' },
    } as unknown as undefined) as unknown as { privateKey: KeyObject };
    const publicKey = createPublicKey({ key: x25519Jwk, format: 'jwk' });
    diffieHellman({ privateKey: pair.privateKey, publicKey });
  },
);
const p256Peer = Buffer.concat([Buffer.of(4), peer(KeGroup.ECP_256)]);
bench(
  'P-256 keygen + shared',
  () => createKeyExchange(KeGroup.ECP_256).computeShared(p256Peer.subarray(1)),
  'raw createECDH',
  () => {
    const e = createECDH('prime256v1');
    e.generateKeys();
    e.computeSecret(p256Peer);
  },
);
const modpPeer = peer(KeGroup.MODP_2048);
bench(
  'MODP-2048 keygen + shared',
  () => createKeyExchange(KeGroup.MODP_2048).computeShared(modpPeer),
  'raw getDiffieHellman',
  () => {
    const d = getDiffieHellman('modp14');
    d.generateKeys();
    d.computeSecret(modpPeer);
  },
);

const fmt = (n: number) => (n >= 1000 ? `${(n / 1000).toFixed(1)}k` : n.toFixed(0));
console.log(`node ${process.version}, ${seconds}s per case`);
console.log(`${'operation'.padEnd(40)} ${'ops/s'.padStart(8)}   ${'floor'.padEnd(42)} ${'ops/s'.padStart(8)}  ratio`);
for (const r of rows) {
  console.log(
    `${r.name.padEnd(40)} ${fmt(r.ops).padStart(8)}   ${r.floorName.padEnd(42)} ${fmt(r.floor).padStart(8)}  ${(r.ops / r.floor).toFixed(2)}`,
  );
}
