/**
 * Crypto-only ceiling of one IKEv2 handshake (IKE_SA_INIT + IKE_AUTH with the
 * first Child SA; PSK, X25519, AES-GCM-256, PRF HMAC-SHA-256), BOTH peers'
 * share, through coati's own crypto layer: no parsing, state, kernel or I/O.
 *
 * Per handshake: X25519 keygen + shared secret x2, SKEYSEED + prf+ x2, SK
 * cipher setup x4, PSK AUTH x4 (each side computes its own and checks the
 * peer's: MACedID + prf(prf(PSK, pad), octets)), SK seal x2 + open x2 (the
 * IKE_AUTH request and response), Child SA KEYMAT x2, nonces and SPIs.
 */
import { randomBytes } from 'node:crypto';
import { createKeyExchange } from '../src/crypto/dh.js';
import { pskAuth, signedOctets } from '../src/crypto/ikev2/auth.js';
import { deriveChildKeys, deriveIkeSaKeys, type IkeSaKeys } from '../src/crypto/ikev2/keys.js';
import { createSkCipher } from '../src/crypto/sk.js';
import { EncrId, KeGroup, PrfId } from '../src/crypto/transforms.js';

const PRF = PrfId.HMAC_SHA2_256;
const ENCR = EncrId.AES_GCM_16;
const KEY_BITS = 256;
const GCM_KEYMAT = 36; // 32-byte key + 4-byte salt
const PSK = Buffer.from('bench-psk-0123456789abcdef0123456789');
// Sizes of coati's messages for this suite (approximate, as on the wire).
const INIT_REQ = randomBytes(260);
const INIT_RESP = randomBytes(270);
const AUTH_REQ_PLAIN = randomBytes(250);
const AUTH_RESP_PLAIN = randomBytes(200);
const AAD = randomBytes(32);
const ID_I = Buffer.from('\x02\x00\x00\x00i1.bench', 'latin1');
const ID_R = Buffer.from('\x02\x00\x00\x00r.bench', 'latin1');

function keys(sharedSecret: Buffer, ni: Buffer, nr: Buffer, spiI: Buffer, spiR: Buffer): IkeSaKeys {
  return deriveIkeSaKeys({ prf: PRF, encr: ENCR, keyLen: KEY_BITS, ni, nr, sharedSecret, spiI, spiR });
}

function cipher(encKey: Buffer) {
  return createSkCipher({ encr: ENCR, keyLen: KEY_BITS, encKey });
}

function auth(realMessage: Buffer, peerNonce: Buffer, skP: Buffer, id: Buffer): Buffer {
  return pskAuth(PRF, PSK, signedOctets({ realMessage, peerNonce, prf: PRF, skP, idPayloadBody: id }));
}

/** One full handshake's crypto for both peers. Throws if the peers disagree (guards against dead code). */
export function handshakeCrypto(): void {
  // IKE_SA_INIT
  const spiI = randomBytes(8);
  const ni = randomBytes(32);
  const keI = createKeyExchange(KeGroup.CURVE25519);
  const spiR = randomBytes(8);
  const nr = randomBytes(32);
  const keR = createKeyExchange(KeGroup.CURVE25519);
  const gR = keR.computeShared(keI.publicValue);
  const gI = keI.computeShared(keR.publicValue);
  const kI = keys(gI, ni, nr, spiI, spiR);
  const kR = keys(gR, ni, nr, spiI, spiR);
  const iOut = cipher(kI.skEi);
  const iIn = cipher(kI.skEr);
  const rIn = cipher(kR.skEi);
  const rOut = cipher(kR.skEr);
  // IKE_AUTH request: initiator computes AUTH, seals; responder opens, verifies.
  const authI = auth(INIT_REQ, nr, kI.skPi, ID_I);
  const req = iOut.seal(AAD, Buffer.concat([AUTH_REQ_PLAIN, authI]));
  const reqPlain = rIn.open(AAD, req);
  if (!reqPlain || !auth(INIT_REQ, nr, kR.skPi, ID_I).equals(authI)) throw new Error('AUTH_i mismatch');
  // Responder: its AUTH, Child SA keys, sealed response; initiator opens, verifies, derives.
  const authR = auth(INIT_RESP, ni, kR.skPr, ID_R);
  const childR = deriveChildKeys({ prf: PRF, skD: kR.skD, ni, nr, encrKeyLen: GCM_KEYMAT, integKeyLen: 0 });
  const resp = rOut.seal(AAD, Buffer.concat([AUTH_RESP_PLAIN, authR]));
  const respPlain = iIn.open(AAD, resp);
  if (!respPlain || !auth(INIT_RESP, ni, kI.skPr, ID_R).equals(authR)) throw new Error('AUTH_r mismatch');
  const childI = deriveChildKeys({ prf: PRF, skD: kI.skD, ni, nr, encrKeyLen: GCM_KEYMAT, integKeyLen: 0 });
  if (!childI.initiatorToResponder.encKey.equals(childR.initiatorToResponder.encKey))
    throw new Error('KEYMAT mismatch');
}

/** Handshakes per second (both peers' crypto) on this thread, over `seconds`; best of `rounds`. */
export function cryptoCeiling(seconds: number, rounds = 3): { perSecond: number; rounds: number[] } {
  for (let i = 0; i < 200; i++) handshakeCrypto(); // warm-up
  const results: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const budget = (seconds / rounds) * 1000;
    const start = performance.now();
    let n = 0;
    let elapsed = 0;
    while (elapsed < budget) {
      for (let i = 0; i < 10; i++) handshakeCrypto();
      n += 10;
      elapsed = performance.now() - start;
    }
    results.push(n / (elapsed / 1000));
  }
  return { perSecond: Math.max(...results), rounds: results };
}
