/**
 * IKEv2 AUTH payload octets (RFC 7296 2.15) and shared-key authentication.
 */
import { timingSafeEqual } from 'node:crypto';
import { prf } from '../prf.js';
import { type PrfSpec, resolvePrf } from '../transforms.js';

const KEY_PAD = Buffer.from('Key Pad for IKEv2', 'ascii');

/**
 * InitiatorSignedOctets = RealMessage1 | NonceRData | MACedIDForI, and the
 * responder's mirror image, where MACedID = prf(SK_p, IDType | RESERVED | ID data)
 * i.e. prf over the ID payload body (the ID payload without its generic header).
 * `skP` is SK_pi for the initiator's octets and SK_pr for the responder's.
 */
export function signedOctets(p: {
  realMessage: Buffer;
  peerNonce: Buffer;
  prf: PrfSpec;
  skP: Buffer;
  idPayloadBody: Buffer;
}): Buffer {
  return Buffer.concat([p.realMessage, p.peerNonce, prf(p.prf, p.skP, p.idPayloadBody)]);
}

/**
 * prf(Shared Secret, "Key Pad for IKEv2") per secret and PRF. It is constant
 * for a peer: each side used it twice per IKE_AUTH (its own AUTH and the
 * check of the peer's). Keyed by the secret Buffer, which configuration makes
 * once per peer and never changes (a reload makes new Buffers); the pad lives
 * no longer than the secret it is derived from.
 */
const padCache = new WeakMap<Buffer, Map<string, Buffer>>();

function keyPad(alg: PrfSpec, secret: Buffer): Buffer {
  const hash = resolvePrf(alg).hash;
  let byPrf = padCache.get(secret);
  if (!byPrf) {
    byPrf = new Map();
    padCache.set(secret, byPrf);
  }
  let pad = byPrf.get(hash);
  if (!pad) {
    pad = prf(alg, secret, KEY_PAD);
    byPrf.set(hash, pad);
  }
  return pad;
}

/** AUTH = prf(prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>) (auth method 2). */
export function pskAuth(alg: PrfSpec, secret: Buffer, octets: Buffer): Buffer {
  return prf(alg, keyPad(alg, secret), octets);
}

/** Constant-time check of a received PSK AUTH value. */
export function verifyPskAuth(alg: PrfSpec, secret: Buffer, octets: Buffer, received: Buffer): boolean {
  if (received.length !== resolvePrf(alg).outputSize) return false;
  return timingSafeEqual(pskAuth(alg, secret, octets), received);
}
