/**
 * Key exchange (D-H) for IKEv2 KE payloads, with wire formats per
 * RFC 7296 (MODP: big-endian, zero-padded to the prime length),
 * RFC 5903 (ECP: x || y, no 0x04 prefix; shared secret = x) and
 * RFC 8031 (Curve25519/448: raw little-endian u).
 *
 * Speed and safety notes (see the crypto-performance notes):
 * - ECP: a fresh createECDH() per exchange (faster than KeyObjects).
 * - MODP: a fresh getDiffieHellman() per exchange (a reused object keeps
 *   its old private key on generateKeys()).
 * - X25519/X448: the public key is JWK-encoded inside the keygen job
 *   (`publicKeyEncoding: { format: 'jwk' }`). Never call
 *   `.export({ format: 'jwk' })` on a generated key: under GC pressure that
 *   deadlocks Node 20. The peer value is imported as JWK.
 */
import {
  createDiffieHellman,
  createECDH,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  getDiffieHellman,
  type KeyObject,
} from 'node:crypto';
import { CoatiError } from '../errors.js';
import { type KeDescriptor, keGroupById } from './transforms.js';

export interface KeyExchange {
  readonly group: number;
  /** Our public value in KE payload wire format. */
  readonly publicValue: Buffer;
  /** Validate the peer's KE data and return the shared secret g^ir. Throws CoatiError INVALID_KE. */
  computeShared(peerPublic: Buffer): Buffer;
}

export interface KeyExchangeOptions {
  /**
   * Fixed private value for known-answer tests only: ECP scalar (big-endian),
   * MODP exponent (big-endian), X25519/X448 scalar (RFC 7748 byte order).
   */
  privateKey?: Buffer;
}

function invalid(d: KeDescriptor, why: string, cause?: unknown): CoatiError {
  return new CoatiError('INVALID_KE', `${d.name}: invalid peer KE value: ${why}`, cause ? { cause } : undefined);
}

function checkLength(d: KeDescriptor, peer: Buffer): void {
  if (peer.length !== d.publicSize) throw invalid(d, `length ${peer.length}, expected ${d.publicSize}`);
}

function leftPad(buf: Buffer, size: number): Buffer {
  if (buf.length === size) return buf;
  const out = Buffer.alloc(size);
  buf.copy(out, size - buf.length);
  return out;
}

function modp(d: KeDescriptor, opts: KeyExchangeOptions): KeyExchange {
  let dh: ReturnType<typeof createDiffieHellman>;
  if (opts.privateKey) {
    const group = getDiffieHellman(d.nodeName);
    dh = createDiffieHellman(group.getPrime(), group.getGenerator());
    dh.setPrivateKey(opts.privateKey);
    dh.generateKeys();
  } else {
    dh = getDiffieHellman(d.nodeName) as unknown as ReturnType<typeof createDiffieHellman>;
    dh.generateKeys();
  }
  const publicValue = leftPad(dh.getPublicKey(), d.publicSize);
  return {
    group: d.id,
    publicValue,
    computeShared(peer) {
      checkLength(d, peer);
      const y = BigInt(`0x${peer.toString('hex')}`);
      const p = BigInt(`0x${dh.getPrime('hex')}`);
      if (y <= 1n || y >= p - 1n) throw invalid(d, 'value must satisfy 1 < y < p-1');
      try {
        return leftPad(dh.computeSecret(peer), d.sharedSize);
      } catch (err) {
        throw invalid(d, 'rejected by OpenSSL', err);
      }
    },
  };
}

function ecp(d: KeDescriptor, opts: KeyExchangeOptions): KeyExchange {
  const ecdh = createECDH(d.nodeName);
  if (opts.privateKey) ecdh.setPrivateKey(opts.privateKey);
  else ecdh.generateKeys();
  // Uncompressed SEC1 point 0x04 || x || y; the wire form drops the 0x04.
  const publicValue = ecdh.getPublicKey().subarray(1);
  return {
    group: d.id,
    publicValue,
    computeShared(peer) {
      checkLength(d, peer);
      const point = Buffer.allocUnsafe(peer.length + 1);
      point[0] = 4;
      peer.copy(point, 1);
      try {
        // OpenSSL rejects points off the curve and the point at infinity.
        return leftPad(ecdh.computeSecret(point), d.sharedSize);
      } catch (err) {
        throw invalid(d, 'not a point on the curve', err);
      }
    },
  };
}

const PKCS8_PREFIX: Record<string, string> = {
  x25519: '302e020100300506032b656e04220420',
  x448: '3046020100300506032b656f043a0438',
};

function ecx(d: KeDescriptor, opts: KeyExchangeOptions): KeyExchange {
  const crv = d.nodeName === 'x25519' ? 'X25519' : 'X448';
  let privateKey: KeyObject;
  let publicValue: Buffer;
  if (opts.privateKey) {
    if (opts.privateKey.length !== d.publicSize) {
      throw new CoatiError('INVALID_KEY_LENGTH', `${d.name}: private key must be ${d.publicSize} bytes`);
    }
    const der = Buffer.concat([Buffer.from(PKCS8_PREFIX[d.nodeName] ?? '', 'hex'), opts.privateKey]);
    privateKey = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    // Exporting an *imported* key is not affected by the keygen-job deadlock.
    const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
    publicValue = Buffer.from(jwk.x ?? '', 'base64url');
  } else {
    // @types/node lacks the 'jwk' publicKeyEncoding overload; the private key stays a KeyObject.
    const pair = generateKeyPairSync(
      d.nodeName as 'x25519',
      {
        publicKeyEncoding: { format: 'jwk' },
      } as unknown as undefined,
    ) as unknown as { publicKey: { x: string }; privateKey: KeyObject };
    privateKey = pair.privateKey;
    publicValue = Buffer.from(pair.publicKey.x, 'base64url');
  }
  return {
    group: d.id,
    publicValue,
    computeShared(peer) {
      checkLength(d, peer);
      let shared: Buffer;
      try {
        const publicKey = createPublicKey({ key: { kty: 'OKP', crv, x: peer.toString('base64url') }, format: 'jwk' });
        shared = diffieHellman({ privateKey, publicKey });
      } catch (err) {
        // OpenSSL refuses an all-zero result (low-order peer point).
        throw invalid(d, 'low-order point or unusable value', err);
      }
      let acc = 0;
      for (const b of shared) acc |= b;
      if (acc === 0) throw invalid(d, 'low-order point (all-zero shared secret)');
      return shared;
    },
  };
}

/** Start a key exchange for an IKEv2 KE group (Transform Type 4 ID). */
export function createKeyExchange(group: number, opts: KeyExchangeOptions = {}): KeyExchange {
  const d = keGroupById(group);
  switch (d.kind) {
    case 'modp':
      return modp(d, opts);
    case 'ecp':
      return ecp(d, opts);
    case 'ecx':
      return ecx(d, opts);
  }
}
