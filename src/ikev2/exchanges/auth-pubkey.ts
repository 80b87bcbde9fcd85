/**
 * Public-key authentication for IKE_AUTH (RFC 7296 2.15, RFC 7427, RFC 4945):
 * which CERT and CERTREQ payloads we send, which AUTH method we sign with, and
 * the checks a peer's certificate and signature must pass. Failures are
 * values (a reason string) that the exchange turns into AUTHENTICATION_FAILED.
 */
import type { KeyObject } from 'node:crypto';
import { AuthMethod, chooseScheme, signAuth, verifyAuth } from '../../crypto/signatures.js';
import {
  type CertificateInfo,
  certIdentity,
  certreqHashes,
  identityMatchesCert,
  parseCertificate,
  validateChain,
} from '../../sa/certs.js';
import type { Identity } from '../../sa/identity.js';
import type { AuthPolicy, PeerPolicy } from '../../sa/policy.js';
import { CERT_ENCODING, isCert, isCertReq, PAYLOAD, type Payload } from '../../wire/ikev2/index.js';
import type { IkeSa } from '../ike-sa.js';

export type PubkeyAuth = Extract<AuthPolicy, { kind: 'pubkey' }>;

/** RFC 7427 hash algorithms we announce: SHA2-256, SHA2-384, SHA2-512, Identity (Ed25519). */
export const OUR_SIGNATURE_HASHES: readonly number[] = [2, 3, 4, 5];

const SIGNATURE_METHODS: ReadonlySet<number> = new Set([
  AuthMethod.RSA_SIGNATURE,
  AuthMethod.ECDSA_SHA256_P256,
  AuthMethod.ECDSA_SHA384_P384,
  AuthMethod.ECDSA_SHA512_P521,
  AuthMethod.DIGITAL_SIGNATURE,
]);

const CLASSIC_EC_METHOD: Record<string, number> = {
  prime256v1: AuthMethod.ECDSA_SHA256_P256,
  secp384r1: AuthMethod.ECDSA_SHA384_P384,
  secp521r1: AuthMethod.ECDSA_SHA512_P521,
};

// Configured certificates are parsed once per buffer (policies are immutable once set).
const parsed = new WeakMap<Buffer, CertificateInfo>();
function info(der: Buffer): CertificateInfo {
  let c = parsed.get(der);
  if (!c) {
    c = parseCertificate(der);
    parsed.set(der, c);
  }
  return c;
}

function parsedCas(auth: PubkeyAuth): CertificateInfo[] {
  return auth.cas.map(info);
}

export function isPubkey(auth: AuthPolicy): auth is PubkeyAuth {
  return auth.kind === 'pubkey';
}

/**
 * The identity we send: as configured, except that a DN identity without data
 * stands for our certificate's subject (the default for certificate auth).
 */
export function localIdentity(peer: PeerPolicy): Identity {
  const auth = peer.auth;
  const leaf = isPubkey(auth) ? auth.certs[0] : undefined;
  if (leaf && peer.localId.kind === 'dn' && peer.localId.data.length === 0) return certIdentity(info(leaf));
  return peer.localId;
}

/** CERT payloads for our chain: leaf first, then intermediates (X.509 Certificate - Signature). */
export function certPayloads(auth: PubkeyAuth): Payload[] {
  return auth.certs.map((data) => ({
    type: PAYLOAD.CERT,
    critical: false,
    encoding: CERT_ENCODING.X509_SIGNATURE,
    data,
  }));
}

/** One CERTREQ naming the given CAs by SHA-1 SPKI hash; none when there is no CA. */
export function certReqPayloads(cas: readonly Buffer[]): Payload[] {
  const seen = new Set<string>();
  const unique: CertificateInfo[] = [];
  for (const der of cas) {
    const c = info(der);
    const k = c.spkiSha1.toString('hex');
    if (!seen.has(k)) {
      seen.add(k);
      unique.push(c);
    }
  }
  if (unique.length === 0) return [];
  return [
    { type: PAYLOAD.CERTREQ, critical: false, encoding: CERT_ENCODING.X509_SIGNATURE, data: certreqHashes(unique) },
  ];
}

/** CERTREQ of one peer policy (initiator in IKE_AUTH), if it authenticates with certificates. */
export function certReqFor(peer: PeerPolicy): Payload[] {
  if (!isPubkey(peer.auth) || peer.sendCertReq === false) return [];
  return certReqPayloads(peer.auth.cas);
}

/** The peer policies an IKE_SA_INIT from `addr` may turn out to be for (as the manager picks proposals). */
export function responderCandidates(sa: IkeSa): PeerPolicy[] {
  const host = sa.host;
  if (sa.peer) return [sa.peer];
  if (host.candidatesFor) return host.candidatesFor(sa.remote.addr);
  if (!host.peerNames || !host.peer) return [];
  const all: PeerPolicy[] = [];
  for (const name of host.peerNames()) {
    const p = host.peer(name)?.policy;
    if (p && p.version === 2) all.push(p);
  }
  const exact = all.filter((p) => p.remoteAddress === sa.remote.addr);
  return exact.length > 0 ? exact : all;
}

/**
 * CAs to name in a responder's CERTREQ, per candidate list. The manager hands
 * out the same list until its configuration changes, so a herd of IKE_SA_INITs
 * from one address (hundreds of peers behind it) does not scan every peer each time.
 */
const certReqCas = new WeakMap<readonly PeerPolicy[], Buffer[]>();

/** Responder's IKE_SA_INIT CERTREQ: the CAs of every candidate peer that uses certificates. */
export function responderCertReq(sa: IkeSa): Payload[] {
  const candidates = responderCandidates(sa);
  let cas = certReqCas.get(candidates);
  if (!cas) {
    cas = [];
    for (const p of candidates) if (isPubkey(p.auth) && p.sendCertReq !== false) cas.push(...p.auth.cas);
    certReqCas.set(candidates, cas);
  }
  return cas.length === 0 ? [] : certReqPayloads(cas);
}

/** Whether to announce SIGNATURE_HASH_ALGORITHMS: unless every candidate peer turned it off. */
export function announceSignatureHashes(sa: IkeSa): boolean {
  const peers = sa.isInitiator ? (sa.peer ? [sa.peer] : []) : responderCandidates(sa);
  return peers.length === 0 || peers.some((p) => p.signatureHashes !== false);
}

/** Parses SIGNATURE_HASH_ALGORITHMS notify data (a list of 16-bit values); odd trailing bytes are ignored. */
export function parseSignatureHashes(data: Buffer): number[] {
  const out: number[] = [];
  for (let off = 0; off + 2 <= data.length; off += 2) out.push(data.readUInt16BE(off));
  return out;
}

export function encodeSignatureHashes(list: readonly number[]): Buffer {
  const b = Buffer.alloc(2 * list.length);
  for (const [i, v] of list.entries()) b.writeUInt16BE(v, 2 * i);
  return b;
}

/** Records the X.509 CERTREQ data of a peer's message on the SA. */
export function recordCertReq(sa: IkeSa, payloads: readonly Payload[]): void {
  const reqs = payloads.filter(isCertReq).filter((p) => p.encoding === CERT_ENCODING.X509_SIGNATURE);
  if (reqs.length > 0) sa.peerCertReq = Buffer.concat(reqs.map((p) => p.data));
}

/** The AUTH method (and RFC 7427 scheme) our key signs with, given what the peer announced. */
export function chooseMethod(
  key: KeyObject,
  peerHashes: readonly number[],
): { method: number; scheme?: ReturnType<typeof chooseScheme> } | { error: string } {
  if (peerHashes.length > 0) {
    const scheme = chooseScheme(key, peerHashes);
    if (scheme) return { method: AuthMethod.DIGITAL_SIGNATURE, scheme };
  }
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return { method: AuthMethod.RSA_SIGNATURE };
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve ?? '';
      const method = CLASSIC_EC_METHOD[curve];
      return method !== undefined ? { method } : { error: `no classic AUTH method for ECDSA curve ${curve}` };
    }
    case 'ed25519':
      return {
        error:
          'an Ed25519 key signs only with RFC 7427 Digital Signature and hash algorithm Identity (5), which the peer did not announce',
      };
    default:
      return { error: `no AUTH method for a ${key.asymmetricKeyType} key` };
  }
}

/** Whether our credentials can produce AUTH for this SA (checked once the peer's hash list is known). */
export function localAuthProblem(sa: IkeSa): string | undefined {
  const auth = sa.peer?.auth;
  if (!auth || !isPubkey(auth)) return undefined;
  const leaf = auth.certs[0];
  if (!leaf) return 'no local certificate configured';
  let ours: CertificateInfo;
  try {
    ours = info(leaf);
  } catch (err) {
    return `our certificate is unusable: ${err instanceof Error ? err.message : String(err)}`;
  }
  const id = localIdentity(sa.peer as PeerPolicy);
  if (!identityMatchesCert(id, ours)) {
    return `our identity ${id.text} is not bound to our certificate "${ours.subjectText}" (SANs: ${describeSans(ours)})`;
  }
  const choice = chooseMethod(auth.privateKey, sa.peerSignatureHashes);
  return 'error' in choice ? choice.error : undefined;
}

/** Our AUTH payload body (method and data) over `octets`. */
export function signLocal(sa: IkeSa, auth: PubkeyAuth, octets: Buffer): { method: number; data: Buffer } {
  const choice = chooseMethod(auth.privateKey, sa.peerSignatureHashes);
  if ('error' in choice) throw new Error(choice.error);
  const data = signAuth({
    method: choice.method,
    ...(choice.scheme ? { scheme: choice.scheme } : {}),
    privateKey: auth.privateKey,
    octets,
  });
  sa.authUsed.local = choice.method;
  return { method: choice.method, data };
}

function describeSans(c: CertificateInfo): string {
  const parts = [
    ...c.san.dns.map((d) => `dns:${d}`),
    ...c.san.email.map((e) => `email:${e}`),
    ...c.san.ip.map((i) => `ip:${i}`),
  ];
  return parts.length > 0 ? parts.join(', ') : 'none';
}

function describeId(id: Identity): string {
  return id.kind === 'dn' ? `DN ${id.text.slice(0, 40)}…` : id.text;
}

/**
 * Verifies a peer's public-key AUTH: its CERT chain against our trust anchors
 * (at the SA's clock), its identity against the leaf (RFC 4945), then the
 * signature over `octets` with the leaf's key. Returns the reason on failure.
 */
export function verifyPeerSignature(
  sa: IkeSa,
  auth: PubkeyAuth,
  id: Identity,
  msgPayloads: readonly Payload[],
  authPayload: { method: number; data: Buffer },
  octets: Buffer,
): string | undefined {
  if (!SIGNATURE_METHODS.has(authPayload.method)) {
    return authPayload.method === AuthMethod.SHARED_KEY
      ? 'peer used a shared key (auth method 2), we expect a certificate signature'
      : `peer used auth method ${authPayload.method}, we expect a certificate signature`;
  }
  const sent = msgPayloads.filter(isCert);
  const x509 = sent.filter((c) => c.encoding === CERT_ENCODING.X509_SIGNATURE);
  let anchors: CertificateInfo[];
  try {
    anchors = parsedCas(auth);
  } catch (err) {
    return `a configured CA certificate is unusable: ${err instanceof Error ? err.message : String(err)}`;
  }
  if (x509.length === 0) {
    return sent.length > 0
      ? `peer sent certificates only in unsupported encodings (${sent.map((c) => c.encoding).join(', ')})`
      : 'peer sent no certificate';
  }
  const certs: CertificateInfo[] = [];
  for (const [i, c] of x509.entries()) {
    try {
      certs.push(parseCertificate(c.data));
    } catch (err) {
      return `certificate ${i + 1} from the peer is malformed: ${err instanceof Error ? err.message : String(err)}`;
    }
  }
  const [leaf, ...intermediates] = certs as [CertificateInfo, ...CertificateInfo[]];
  const chain = validateChain({ leaf, intermediates, trustAnchors: anchors, now: sa.env.clock.now() });
  if (!chain.ok) return `${chain.code}: ${chain.message}`;
  if (!identityMatchesCert(id, leaf)) {
    return id.kind === 'dn'
      ? `identity ${describeId(id)} is not the subject of certificate "${leaf.subjectText}"`
      : `identity ${id.text} not in certificate "${leaf.subjectText}" SANs (${describeSans(leaf)})`;
  }
  if (leaf.keyUsage && !leaf.keyUsage.digitalSignature && !leaf.keyUsage.nonRepudiation) {
    return `certificate "${leaf.subjectText}" keyUsage does not allow digital signatures`;
  }
  const res = verifyAuth({ method: authPayload.method, publicKey: leaf.publicKey, octets, authData: authPayload.data });
  if (!res.ok) {
    return `signature does not verify with the key of "${leaf.subjectText}" (auth method ${authPayload.method}${res.scheme ? ` ${res.scheme}` : ''}: ${res.reason ?? 'mismatch'})`;
  }
  sa.authUsed.remote = authPayload.method;
  sa.authUsed.remoteSubject = leaf.subjectText;
  return undefined;
}
