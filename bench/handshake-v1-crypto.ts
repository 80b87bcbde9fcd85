/**
 * Crypto-only ceiling of one IKEv1 handshake: Main Mode with PSK
 * (aes128-sha256-modp2048) and one Quick Mode without PFS (ESP aes128-sha256),
 * BOTH peers' share, through coati's own IKEv1 crypto layer
 * (src/crypto/ikev1): no parsing, state, kernel or I/O.
 *
 * Per handshake, what coati's engine computes (src/ikev1/main-mode.ts,
 * phase1-common.ts, quick-mode.ts):
 * - MM3/MM4: MODP-2048 keygen + shared secret x2; NAT-D hashes: each side sends
 *   2 and checks the peer's 2 (8 SHA-256);
 * - SKEYID, SKEYID_d/a/e and Ka x2 (derivePhase1Keys), message crypto setup x2
 *   (phase-1 IV = hash(g^xi | g^xr));
 * - MM5/MM6: HASH_I and HASH_R, each computed by its sender and recomputed by
 *   the receiver (4 HMAC); AES-128-CBC encrypt x2 + decrypt x2;
 * - Quick Mode: phase-2 IV x2 (both sides derive it for the message ID);
 *   HASH(1), HASH(2), HASH(3) each computed by the sender and checked by the
 *   receiver (6 HMAC); 3 messages encrypted + decrypted; KEYMAT for both SPIs on
 *   both sides (4 x quickModeKeymat, 48 bytes = 2 HMAC blocks each);
 * - nonces (4 x 32 bytes), cookies, message ID.
 */
import { randomBytes } from 'node:crypto';
import { createKeyExchange } from '../src/crypto/dh.js';
import {
  derivePhase1Keys,
  hashesEqual,
  hashI,
  hashR,
  hmacPrf,
  natdHash,
  nodeHash,
  Phase1Crypto,
  type Phase1HashInput,
  quickModeHash1,
  quickModeHash2,
  quickModeHash3,
  quickModeKeymat,
} from '../src/crypto/ikev1/index.js';
import { KeGroup } from '../src/crypto/transforms.js';

const PRF = hmacPrf('sha256');
const HASH = nodeHash('sha256');
const CIPHER = { nodeName: 'aes-128-cbc', keyLen: 16, blockSize: 16 };
const PSK = Buffer.from('bench-psk-0123456789abcdef0123456789');
const ESP_KEYMAT = 16 + 32; // AES-128 key + HMAC-SHA-256 key
const ADDR_I = Buffer.from([198, 51, 100, 1]);
const ADDR_R = Buffer.from([198, 51, 100, 2]);
// Payload bytes of coati's messages for this suite (sizes as on the wire, approximately).
const SAI_B = randomBytes(52);
const ID_I = Buffer.from('\x02\x00\x00\x00i1.bench', 'latin1');
const ID_R = Buffer.from('\x02\x00\x00\x00r.bench', 'latin1');
const MM5_REST = randomBytes(28); // ID + HASH + INITIAL-CONTACT headers
const QM1_AFTER_HASH = randomBytes(136); // SA + Nonce + IDci + IDcr
const QM2_AFTER_HASH = randomBytes(136);

function natd(cookieI: Buffer, cookieR: Buffer): void {
  // The sender's two, then the receiver's check of both.
  for (let i = 0; i < 2; i++) {
    natdHash(HASH, cookieI, cookieR, ADDR_R, 500);
    natdHash(HASH, cookieI, cookieR, ADDR_I, 500);
  }
}

/** Sender encrypts, receiver decrypts, as the next message of exchange `mid`. Throws if they disagree. */
function carry(from: Phase1Crypto, to: Phase1Crypto, mid: number, plain: Buffer): void {
  const c = from.encrypt(mid, plain);
  const p = to.decrypt(mid, c);
  if (p[0] !== plain[0] || p[plain.length - 1] !== plain[plain.length - 1]) throw new Error('CBC mismatch');
}

/** One Main Mode + Quick Mode's crypto for both peers. Throws if the peers disagree (guards against dead code). */
export function v1HandshakeCrypto(): void {
  const cookieI = randomBytes(8);
  // MM1/MM2: no crypto beyond the cookies.
  const cookieR = randomBytes(8);
  // MM3: initiator's KE, nonce, NAT-D.
  const keI = createKeyExchange(KeGroup.MODP_2048);
  const ni = randomBytes(32);
  // MM4: responder's KE, nonce, NAT-D; it has the shared secret now.
  const keR = createKeyExchange(KeGroup.MODP_2048);
  const gR = keR.computeShared(keI.publicValue);
  const nr = randomBytes(32);
  natd(cookieI, cookieR);
  natd(cookieI, cookieR);
  const gI = keI.computeShared(keR.publicValue);
  const gxi = keI.publicValue;
  const gxr = keR.publicValue;
  const keys = (shared: Buffer) =>
    derivePhase1Keys({
      prf: PRF,
      auth: { kind: 'psk', psk: PSK },
      ni,
      nr,
      sharedSecret: shared,
      cookieI,
      cookieR,
      encKeyLen: 16,
    });
  const kI = keys(gI);
  const kR = keys(gR);
  const cI = new Phase1Crypto({ cipher: CIPHER, key: kI.encKey, hash: HASH, gxi, gxr });
  const cR = new Phase1Crypto({ cipher: CIPHER, key: kR.encKey, hash: HASH, gxi, gxr });
  const hin = (skeyid: Buffer): Phase1HashInput => ({ prf: PRF, skeyid, gxi, gxr, cookieI, cookieR, saiB: SAI_B });
  // MM5: HASH_I, encrypted; responder decrypts and checks.
  const hI = hashI(hin(kI.skeyid), ID_I);
  carry(cI, cR, 0, Buffer.concat([ID_I, hI, MM5_REST]));
  if (!hashesEqual(hI, hashI(hin(kR.skeyid), ID_I))) throw new Error('HASH_I mismatch');
  // MM6: HASH_R, the other way.
  const hR = hashR(hin(kR.skeyid), ID_R);
  carry(cR, cI, 0, Buffer.concat([ID_R, hR, MM5_REST]));
  if (!hashesEqual(hR, hashR(hin(kI.skeyid), ID_R))) throw new Error('HASH_R mismatch');
  // Quick Mode (new message ID: both sides derive its IV from the phase-1 IV state).
  const mid = randomBytes(4).readUInt32BE(0) | 1;
  const qni = randomBytes(32);
  const qnr = randomBytes(32);
  const h1 = quickModeHash1(PRF, kI.skeyidA, mid, QM1_AFTER_HASH);
  carry(cI, cR, mid, Buffer.concat([h1, QM1_AFTER_HASH]));
  if (!hashesEqual(h1, quickModeHash1(PRF, kR.skeyidA, mid, QM1_AFTER_HASH))) throw new Error('HASH(1) mismatch');
  const h2 = quickModeHash2(PRF, kR.skeyidA, mid, qni, QM2_AFTER_HASH);
  carry(cR, cI, mid, Buffer.concat([h2, QM2_AFTER_HASH]));
  if (!hashesEqual(h2, quickModeHash2(PRF, kI.skeyidA, mid, qni, QM2_AFTER_HASH))) throw new Error('HASH(2) mismatch');
  const h3 = quickModeHash3(PRF, kI.skeyidA, mid, qni, qnr);
  carry(cI, cR, mid, Buffer.concat([h3, Buffer.alloc(4)]));
  if (!hashesEqual(h3, quickModeHash3(PRF, kR.skeyidA, mid, qni, qnr))) throw new Error('HASH(3) mismatch');
  // KEYMAT: each side derives both directions (its SPI and the peer's).
  const spiI = randomBytes(4);
  const spiR = randomBytes(4);
  const km = (skeyidD: Buffer, spi: Buffer) =>
    quickModeKeymat({ prf: PRF, skeyidD, protocol: 3, spi, ni: qni, nr: qnr, length: ESP_KEYMAT });
  const inI = km(kI.skeyidD, spiI);
  km(kI.skeyidD, spiR);
  km(kR.skeyidD, spiR);
  const outR = km(kR.skeyidD, spiI);
  if (!inI.equals(outR)) throw new Error('KEYMAT mismatch');
  cI.destroy();
  cR.destroy();
  kI.destroy();
  kR.destroy();
}

const cpuMs = () => {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
};

/**
 * Handshakes per CPU-second (both peers' crypto) on this thread, best of `rounds`,
 * each running for `seconds / rounds` of CPU time. CPU time, not wall time: the
 * handshake figures it is compared with are per CPU-second, and on a loaded
 * machine a wall-clock ceiling would only measure the other jobs (`wallRounds`
 * shows the wall-clock rate of the same rounds).
 */
export function v1CryptoCeiling(
  seconds: number,
  rounds = 3,
): { perSecond: number; rounds: number[]; wallRounds: number[] } {
  for (let i = 0; i < 50; i++) v1HandshakeCrypto(); // warm-up
  const results: number[] = [];
  const wall: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const budget = (seconds / rounds) * 1000;
    const start = cpuMs();
    const wallStart = performance.now();
    let n = 0;
    let elapsed = 0;
    while (elapsed < budget) {
      for (let i = 0; i < 5; i++) v1HandshakeCrypto();
      n += 5;
      elapsed = cpuMs() - start;
    }
    results.push(n / (elapsed / 1000));
    wall.push(n / ((performance.now() - wallStart) / 1000));
  }
  return { perSecond: Math.max(...results), rounds: results, wallRounds: wall };
}
