/**
 * Pieces shared by Main Mode and Aggressive Mode: vendor IDs, NAT-D, the
 * key schedule hookup, and authentication (PSK hash or signature + CERT).
 * Failures are values (a reason), never exceptions.
 */
import {
  derivePhase1Keys,
  hashesEqual,
  hashI,
  hashR,
  hmacPrf,
  natdHash,
  nodeHash,
  type Phase1Auth,
  Phase1Crypto,
  type Phase1HashInput,
  signPhase1Hash,
  verifyPhase1Hash,
} from '../crypto/ikev1/index.js';
import type { Endpoint } from '../ikev2/env.js';
import { localIdentity } from '../ikev2/exchanges/auth-pubkey.js';
import { identityMatchesCert, parseCertificate, validateChain } from '../sa/certs.js';
import { type Identity, sameIdentity } from '../sa/identity.js';
import type { PeerPolicy } from '../sa/policy.js';
import { ipToBytes } from '../util/ip.js';
import {
  encodeV1PayloadChain,
  type IdV1Payload,
  type NatDV1Payload,
  type NotifyV1Payload,
  V1CertEncoding,
  V1Doi,
  V1NotifyType,
  type V1Payload,
  V1PayloadType,
  V1ProtocolId,
  V1VendorId,
  vendorIdName,
} from '../wire/ikev1/index.js';
import { idBody, identityOf, identityPayload } from './ids.js';
import type { IsakmpSa } from './isakmp-sa.js';
import type { Phase1Suite } from './proposals.js';

export const NONCE_BYTES = 32;

/** The body of a payload as it is encoded (no generic header). */
export function payloadBody(p: V1Payload): Buffer {
  return encodeV1PayloadChain([p]).bytes.subarray(4);
}

/**
 * The raw body of the first payload of `type` in an unencrypted message,
 * exactly as received (hashes cover the sender's bytes, not our re-encoding).
 */
export function rawPayloadBody(raw: Buffer, firstType: number, type: number, start = 28): Buffer | undefined {
  let off = start;
  let next = firstType;
  while (next !== 0 && off + 4 <= raw.length) {
    const len = raw.readUInt16BE(off + 2);
    if (len < 4 || off + len > raw.length) return undefined;
    if (next === type) return Buffer.from(raw.subarray(off + 4, off + len));
    next = raw[off] ?? 0;
    off += len;
  }
  return undefined;
}

export function vendorPayloads(): V1Payload[] {
  return [V1VendorId.NAT_T_RFC3947, V1VendorId.DPD].map((hex) => ({
    type: V1PayloadType.VID,
    data: Buffer.from(hex, 'hex'),
  }));
}

export function noteVendorIds(sa: IsakmpSa, payloads: readonly V1Payload[]): void {
  for (const p of payloads) {
    if (p.type !== V1PayloadType.VID) continue;
    const n = vendorIdName(p.data);
    if (n === 'NAT_T_RFC3947') sa.peerNatT = true;
    if (n === 'DPD') sa.peerDpd = true;
  }
}

export function setSuite(sa: IsakmpSa, suite: Phase1Suite): void {
  sa.suite = suite;
  sa.prf = hmacPrf(suite.hash);
  sa.hash = nodeHash(suite.hash);
}

function natd(sa: IsakmpSa, ep: Endpoint): Buffer {
  return natdHash(sa.hash as (d: Buffer) => Buffer, sa.cookieI, sa.cookieR, ipToBytes(ep.addr), ep.port);
}

/** NAT-D payloads (RFC 3947 3.2): the peer's address first, then ours. */
export function natdPayloads(sa: IsakmpSa): NatDV1Payload[] {
  if (!sa.peerNatT) return [];
  return [
    { type: V1PayloadType.NAT_D, hash: natd(sa, sa.remote) },
    { type: V1PayloadType.NAT_D, hash: natd(sa, sa.local) },
  ];
}

/** Evaluates the peer's NAT-D payloads against the addresses this message travelled between. */
export function detectNat(sa: IsakmpSa, payloads: readonly V1Payload[], from: Endpoint, to: Endpoint): void {
  const hashes = payloads.filter((p): p is NatDV1Payload => p.type === 20 || p.type === 130).map((p) => p.hash);
  const [dest, ...sources] = hashes;
  if (!dest || sources.length === 0) return;
  const local = !dest.equals(natd(sa, to));
  const remote = !sources.some((h) => h.equals(natd(sa, from)));
  sa.nat = { local: sa.nat.local || local, remote: sa.nat.remote || remote };
  if (local || remote) sa.env.emit({ type: 'nat.detected', version: 1, peer: sa.peerName, local, remote });
}

function cipherFor(suite: Phase1Suite) {
  return { nodeName: `aes-${suite.keyLen}-cbc`, keyLen: suite.keyLen / 8, blockSize: 16 };
}

/** Derives SKEYID.. and Ka for the given authentication and installs the message crypto. */
export function deriveKeys(sa: IsakmpSa, auth: Phase1Auth): void {
  const suite = sa.suite as Phase1Suite;
  const hs = sa.hs;
  sa.keys?.destroy();
  sa.crypto?.destroy();
  sa.keys = derivePhase1Keys({
    prf: sa.prf as Phase1HashInput['prf'],
    auth,
    ni: hs.ni as Buffer,
    nr: hs.nr as Buffer,
    sharedSecret: hs.shared as Buffer,
    cookieI: sa.cookieI,
    cookieR: sa.cookieR,
    encKeyLen: suite.keyLen / 8,
  });
  sa.crypto = new Phase1Crypto({
    cipher: cipherFor(suite),
    key: sa.keys.encKey,
    hash: sa.hash as (d: Buffer) => Buffer,
    gxi: hs.gxi as Buffer,
    gxr: hs.gxr as Buffer,
  });
}

export function emitKeylog(sa: IsakmpSa): void {
  if (sa.keys)
    sa.env.keylog?.('ikev1_decryption_table', `${sa.cookieI.toString('hex')},${sa.keys.encKey.toString('hex')}`);
}

export function authOf(peer: PeerPolicy): Phase1Auth {
  return peer.auth.kind === 'psk' ? { kind: 'psk', psk: peer.auth.secret } : { kind: 'signature' };
}

function hashInput(sa: IsakmpSa): Phase1HashInput {
  const hs = sa.hs;
  return {
    prf: sa.prf as Phase1HashInput['prf'],
    skeyid: sa.keys?.skeyid as Buffer,
    gxi: hs.gxi as Buffer,
    gxr: hs.gxr as Buffer,
    cookieI: sa.cookieI,
    cookieR: sa.cookieR,
    saiB: hs.saiB as Buffer,
  };
}

/** Our ID plus HASH_I/HASH_R (PSK) or SIG with CERT payloads (signatures). */
export function authPayloads(sa: IsakmpSa, peer: PeerPolicy): { id: IdV1Payload; rest: V1Payload[] } {
  const id = identityPayload(localIdentity(peer));
  const body = idBody(id);
  const h = sa.isInitiator ? hashI(hashInput(sa), body) : hashR(hashInput(sa), body);
  if (peer.auth.kind === 'psk') return { id, rest: [{ type: V1PayloadType.HASH, data: h }] };
  const certs: V1Payload[] = peer.auth.certs.map((data) => ({
    type: V1PayloadType.CERT,
    encoding: V1CertEncoding.X509_SIGNATURE,
    data,
  }));
  return { id, rest: [...certs, { type: V1PayloadType.SIG, data: signPhase1Hash(peer.auth.privateKey, h) }] };
}

/**
 * Checks the peer's ID and HASH/SIG (`fromInitiator`: HASH_I, else HASH_R)
 * against the policy; the reason on failure.
 */
export function verifyPeerAuth(
  sa: IsakmpSa,
  peer: PeerPolicy,
  payloads: readonly V1Payload[],
  fromInitiator: boolean,
): { ok: true; id: Identity } | { ok: false; reason: string } {
  const idp = payloads.find((p): p is IdV1Payload => p.type === V1PayloadType.ID);
  const id = idp ? identityOf(idp) : undefined;
  if (!idp || !id) return { ok: false, reason: 'missing or unsupported ID' };
  // Computed only once the identity matches: a responder tries every peer sharing the key (MM5).
  const expectedHash = () => (fromInitiator ? hashI : hashR)(hashInput(sa), idBody(idp));
  if (peer.auth.kind === 'psk') {
    if (!sameIdentity(id, peer.remoteId))
      return { ok: false, reason: `peer ID ${id.text} is not ${peer.remoteId.text}` };
    const hp = payloads.find((p) => p.type === V1PayloadType.HASH);
    if (!hp || hp.type !== V1PayloadType.HASH || !hashesEqual(hp.data, expectedHash()))
      return { ok: false, reason: 'HASH mismatch (pre-shared key?)' };
    return { ok: true, id };
  }
  const sig = payloads.find((p) => p.type === V1PayloadType.SIG);
  const certs = payloads.filter((p) => p.type === V1PayloadType.CERT && p.encoding === V1CertEncoding.X509_SIGNATURE);
  if (!sig || sig.type !== V1PayloadType.SIG || certs.length === 0) return { ok: false, reason: 'missing SIG or CERT' };
  try {
    const [leaf, ...rest] = certs.map((c) => parseCertificate((c as { data: Buffer }).data));
    if (!leaf) return { ok: false, reason: 'no certificate' };
    const chain = validateChain({
      leaf,
      intermediates: rest,
      trustAnchors: peer.auth.cas.map((d) => parseCertificate(d)),
      now: sa.env.clock.now(),
    });
    if (!chain.ok) return { ok: false, reason: `certificate: ${chain.message}` };
    if (!identityMatchesCert(id, leaf)) return { ok: false, reason: `ID ${id.text} not in certificate` };
    if (peer.remoteId.kind !== 'dn' || peer.remoteId.data.length > 0) {
      if (!sameIdentity(id, peer.remoteId))
        return { ok: false, reason: `peer ID ${id.text} is not ${peer.remoteId.text}` };
    }
    if (!verifyPhase1Hash(leaf.publicKey, expectedHash(), sig.data)) return { ok: false, reason: 'signature mismatch' };
    return { ok: true, id };
  } catch (err) {
    return { ok: false, reason: `certificate: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/**
 * CERTREQ payloads (RFC 2408 3.10) for signature authentication: one per trust anchor,
 * naming its subject DN, so the peer sends its certificate (strongSwan, like most IKEv1
 * implementations, sends CERT only when asked). The responder does not know the peer
 * before MM5, so it asks for the anchors of every certificate peer that may be behind the
 * source address. Without anchors: one CERTREQ with an empty authority (any CA).
 */
export function certRequests(peers: readonly PeerPolicy[]): V1Payload[] {
  const seen = new Set<string>();
  const out: V1Payload[] = [];
  let wanted = false;
  for (const p of peers) {
    if (p.auth.kind !== 'pubkey') continue;
    wanted = true;
    for (const der of p.auth.cas) {
      let dn: Buffer;
      try {
        dn = parseCertificate(der).subjectDer;
      } catch {
        continue; // a CA that does not parse cannot anchor a chain either
      }
      const k = dn.toString('hex');
      if (seen.has(k) || out.length >= 16) continue;
      seen.add(k);
      out.push({ type: V1PayloadType.CR, encoding: V1CertEncoding.X509_SIGNATURE, data: Buffer.from(dn) });
    }
  }
  if (wanted && out.length === 0)
    out.push({ type: V1PayloadType.CR, encoding: V1CertEncoding.X509_SIGNATURE, data: Buffer.alloc(0) });
  return out;
}

/** INITIAL-CONTACT (RFC 2407 4.6.3.3): protocol ISAKMP, SPI = both cookies. */
export function initialContact(sa: IsakmpSa): NotifyV1Payload {
  return {
    type: V1PayloadType.N,
    doi: V1Doi.IPSEC,
    protocolId: V1ProtocolId.ISAKMP,
    spi: Buffer.concat([sa.cookieI, sa.cookieR]),
    notifyType: V1NotifyType.INITIAL_CONTACT,
    data: Buffer.alloc(0),
  };
}

export function hasInitialContact(payloads: readonly V1Payload[]): boolean {
  return payloads.some((p) => p.type === V1PayloadType.N && p.notifyType === V1NotifyType.INITIAL_CONTACT);
}

/** An error notify for an unprotected Informational exchange (before keys). */
export function errorNotify(type: number, protocolId: number = V1ProtocolId.ISAKMP): NotifyV1Payload {
  return {
    type: V1PayloadType.N,
    doi: V1Doi.IPSEC,
    protocolId,
    spi: Buffer.alloc(0),
    notifyType: type,
    data: Buffer.alloc(0),
  };
}
