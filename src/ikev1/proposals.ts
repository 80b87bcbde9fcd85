/**
 * IKEv1 SA payloads from and to the engine's proposal specs (which use IKEv2
 * transform numbers): phase 1 ISAKMP transforms (RFC 2409 appendix A) and
 * phase 2 ESP transforms (RFC 2407 4.4.4 / 4.5), responder selection, and
 * lifetimes. Only what coati implements is offered or accepted: AES-CBC for
 * ISAKMP, AES-CBC/AES-GCM for ESP, HMAC-SHA1/SHA2 and the shared DH groups.
 */
import { isSupported } from '../crypto/transforms.js';
import type { EncrChoice, EspProposalSpec, EspSuite, IkeProposalSpec } from '../sa/proposal.js';
import {
  findV1AttributeNumber,
  type SaV1Payload,
  type V1Attribute,
  V1Doi,
  V1EncapsulationMode,
  V1IsakmpTransformId,
  V1LifeType,
  V1P1Attr,
  V1P1AuthMethod,
  V1P1Encryption,
  V1P1Hash,
  V1P2Attr,
  V1P2AuthAlgorithm,
  V1PayloadType,
  type V1Proposal,
  V1ProtocolId,
  V1Situation,
  type V1Transform,
  v1Attribute,
  v1AttributeNumber,
} from '../wire/ikev1/index.js';

/** A negotiated ISAKMP SA suite. */
export interface Phase1Suite {
  /** AES-CBC key length in bits. */
  keyLen: number;
  /** node:crypto hash name of the negotiated hash (also the HMAC prf). */
  hash: string;
  /** The IKEv1 hash algorithm value. */
  hashId: number;
  group: number;
  authMethod: number;
  /** Negotiated lifetime, ms. */
  lifetimeMs: number;
}

const HASH_OF_PRF: Record<number, number> = {
  2: V1P1Hash.SHA1,
  5: V1P1Hash.SHA2_256,
  6: V1P1Hash.SHA2_384,
  7: V1P1Hash.SHA2_512,
};
const HASH_OF_INTEG: Record<number, number> = {
  2: V1P1Hash.SHA1,
  12: V1P1Hash.SHA2_256,
  13: V1P1Hash.SHA2_384,
  14: V1P1Hash.SHA2_512,
};
const HASH_NAME: Record<number, string> = {
  [V1P1Hash.SHA1]: 'sha1',
  [V1P1Hash.SHA2_256]: 'sha256',
  [V1P1Hash.SHA2_384]: 'sha384',
  [V1P1Hash.SHA2_512]: 'sha512',
};
/** IKEv2 INTEG id <-> IKEv1 ESP authentication algorithm. */
const P2_AUTH_OF_INTEG: Record<number, number> = {
  2: V1P2AuthAlgorithm.HMAC_SHA,
  12: V1P2AuthAlgorithm.HMAC_SHA2_256,
  13: V1P2AuthAlgorithm.HMAC_SHA2_384,
  14: V1P2AuthAlgorithm.HMAC_SHA2_512,
};
const INTEG_OF_P2_AUTH: Record<number, number> = Object.fromEntries(
  Object.entries(P2_AUTH_OF_INTEG).map(([k, v]) => [v, Number(k)]),
);
const AES_CBC = 12;

export function hashName(hashId: number): string | undefined {
  return HASH_NAME[hashId];
}

function specHashes(s: IkeProposalSpec): number[] {
  const out = s.prf.map((p) => HASH_OF_PRF[p]).filter((h): h is number => h !== undefined);
  if (out.length === 0) out.push(...s.integ.map((i) => HASH_OF_INTEG[i]).filter((h): h is number => h !== undefined));
  return [...new Set(out)];
}

function aesLengths(encr: readonly EncrChoice[]): number[] {
  return encr.filter((e) => e.id === AES_CBC).map((e) => e.keyLen ?? 128);
}

function lifeAttrs(lifeType: number, durationType: number, ms: number): V1Attribute[] {
  return [v1Attribute(lifeType, V1LifeType.SECONDS), v1Attribute(durationType, Math.max(1, Math.round(ms / 1000)))];
}

/** The initiator's phase 1 SA payload: one proposal, one transform per suite combination. */
export function phase1Offer(specs: readonly IkeProposalSpec[], authMethod: number, lifetimeMs: number): SaV1Payload {
  const transforms: V1Transform[] = [];
  for (const s of specs) {
    for (const keyLen of aesLengths(s.encr)) {
      for (const hash of specHashes(s)) {
        for (const group of s.ke.filter((g) => isSupported.ke(g))) {
          transforms.push({
            num: transforms.length + 1,
            transformId: V1IsakmpTransformId.KEY_IKE,
            attributes: [
              v1Attribute(V1P1Attr.ENCRYPTION_ALGORITHM, V1P1Encryption.AES_CBC),
              v1Attribute(V1P1Attr.KEY_LENGTH, keyLen),
              v1Attribute(V1P1Attr.HASH_ALGORITHM, hash),
              v1Attribute(V1P1Attr.AUTHENTICATION_METHOD, authMethod),
              v1Attribute(V1P1Attr.GROUP_DESCRIPTION, group),
              ...lifeAttrs(V1P1Attr.LIFE_TYPE, V1P1Attr.LIFE_DURATION, lifetimeMs),
            ],
          });
        }
      }
    }
  }
  return saPayload([{ num: 1, protocolId: V1ProtocolId.ISAKMP, spi: Buffer.alloc(0), transforms }]);
}

export function saPayload(proposals: V1Proposal[]): SaV1Payload {
  const situation = Buffer.alloc(4);
  situation.writeUInt32BE(V1Situation.IDENTITY_ONLY);
  return { type: V1PayloadType.SA, doi: V1Doi.IPSEC, situation, proposals };
}

/** Reads the lifetime (seconds, ms out) of a transform; kilobyte lifetimes are ignored. */
function lifetimeOf(attrs: readonly V1Attribute[], typeAttr: number, durAttr: number): number | undefined {
  let type: number | undefined;
  let seconds: number | undefined;
  for (const a of attrs) {
    if (a.type === typeAttr) type = v1AttributeNumber(a);
    else if (a.type === durAttr && type === V1LifeType.SECONDS) seconds = v1AttributeNumber(a);
  }
  return seconds === undefined ? undefined : seconds * 1000;
}

/** Interprets one phase 1 transform; undefined when it uses anything we do not implement. */
export function parsePhase1Transform(
  t: V1Transform,
): (Omit<Phase1Suite, 'lifetimeMs'> & { lifetimeMs?: number }) | undefined {
  if (t.transformId !== V1IsakmpTransformId.KEY_IKE) return undefined;
  const known = new Set<number>([
    V1P1Attr.ENCRYPTION_ALGORITHM,
    V1P1Attr.KEY_LENGTH,
    V1P1Attr.HASH_ALGORITHM,
    V1P1Attr.AUTHENTICATION_METHOD,
    V1P1Attr.GROUP_DESCRIPTION,
    V1P1Attr.LIFE_TYPE,
    V1P1Attr.LIFE_DURATION,
  ]);
  if (t.attributes.some((a) => !known.has(a.type))) return undefined;
  const num = (type: number) => findV1AttributeNumber(t.attributes, type);
  if (num(V1P1Attr.ENCRYPTION_ALGORITHM) !== V1P1Encryption.AES_CBC) return undefined;
  const keyLen = num(V1P1Attr.KEY_LENGTH) ?? 128;
  const hashId = num(V1P1Attr.HASH_ALGORITHM);
  const group = num(V1P1Attr.GROUP_DESCRIPTION);
  const authMethod = num(V1P1Attr.AUTHENTICATION_METHOD);
  if (![128, 192, 256].includes(keyLen) || hashId === undefined || group === undefined || authMethod === undefined)
    return undefined;
  const hash = HASH_NAME[hashId];
  if (!hash || !isSupported.ke(group)) return undefined;
  const lifetimeMs = lifetimeOf(t.attributes, V1P1Attr.LIFE_TYPE, V1P1Attr.LIFE_DURATION);
  return { keyLen, hash, hashId, group, authMethod, ...(lifetimeMs !== undefined ? { lifetimeMs } : {}) };
}

function acceptablePhase1(specs: readonly IkeProposalSpec[], s: { keyLen: number; hashId: number; group: number }) {
  return specs.some(
    (p) => aesLengths(p.encr).includes(s.keyLen) && specHashes(p).includes(s.hashId) && p.ke.includes(s.group),
  );
}

/**
 * Responder: the first offered transform acceptable under our specs and
 * auth methods. The lifetime is the shorter of the offer and ours.
 */
export function selectPhase1(
  sa: SaV1Payload,
  specs: readonly IkeProposalSpec[],
  authMethods: readonly number[],
  ourLifetimeMs: number,
): { suite: Phase1Suite; transform: V1Transform; proposal: V1Proposal } | undefined {
  for (const p of sa.proposals) {
    if (p.protocolId !== V1ProtocolId.ISAKMP) continue;
    for (const t of p.transforms) {
      const s = parsePhase1Transform(t);
      if (!s || !authMethods.includes(s.authMethod) || !acceptablePhase1(specs, s)) continue;
      const lifetimeMs = Math.min(s.lifetimeMs ?? ourLifetimeMs, ourLifetimeMs);
      return { suite: { ...s, lifetimeMs }, transform: t, proposal: p };
    }
  }
  return undefined;
}

/** Initiator: the responder's single chosen transform must be one we offered, unchanged. */
export function acceptPhase1Answer(
  offer: SaV1Payload,
  answer: SaV1Payload,
  lifetimeMs: number,
): Phase1Suite | undefined {
  const [p] = answer.proposals;
  const [t] = p?.transforms ?? [];
  if (!p || !t || answer.proposals.length !== 1 || p.transforms.length !== 1) return undefined;
  const offered = offer.proposals[0]?.transforms.find((o) => o.num === t.num);
  if (!offered || !sameAttributes(offered.attributes, t.attributes)) return undefined;
  const s = parsePhase1Transform(t);
  if (!s) return undefined;
  return { ...s, lifetimeMs: Math.min(s.lifetimeMs ?? lifetimeMs, lifetimeMs) };
}

function sameAttributes(a: readonly V1Attribute[], b: readonly V1Attribute[]): boolean {
  const norm = (x: readonly V1Attribute[]) =>
    x
      .map((at) => `${at.type}=${v1AttributeNumber(at) ?? (at.tv ? at.value : at.value.toString('hex'))}`)
      .sort()
      .join(',');
  return norm(a) === norm(b);
}

// ---- phase 2 -------------------------------------------------------------

export interface Phase2Offer {
  sa: SaV1Payload;
  /** PFS group, when the offer carries one. */
  pfsGroup: number | undefined;
}

export function encapMode(mode: 'tunnel' | 'transport', udp: boolean): number {
  if (!udp) return mode === 'tunnel' ? V1EncapsulationMode.TUNNEL : V1EncapsulationMode.TRANSPORT;
  return mode === 'tunnel'
    ? V1EncapsulationMode.UDP_ENCAPSULATED_TUNNEL
    : V1EncapsulationMode.UDP_ENCAPSULATED_TRANSPORT;
}

function decodeEncap(v: number | undefined): { mode: 'tunnel' | 'transport'; udp: boolean } | undefined {
  switch (v) {
    case V1EncapsulationMode.TUNNEL:
      return { mode: 'tunnel', udp: false };
    case V1EncapsulationMode.TRANSPORT:
      return { mode: 'transport', udp: false };
    case V1EncapsulationMode.UDP_ENCAPSULATED_TUNNEL:
    case V1EncapsulationMode.UDP_ENCAPSULATED_TUNNEL_DRAFT:
      return { mode: 'tunnel', udp: true };
    case V1EncapsulationMode.UDP_ENCAPSULATED_TRANSPORT:
    case V1EncapsulationMode.UDP_ENCAPSULATED_TRANSPORT_DRAFT:
      return { mode: 'transport', udp: true };
    default:
      return undefined;
  }
}

function espTransformsOf(s: EspProposalSpec): { encr: EncrChoice; integ?: number }[] {
  const out: { encr: EncrChoice; integ?: number }[] = [];
  for (const e of s.encr) {
    if (!isSupported.encr(e.id)) continue;
    if (e.id === AES_CBC)
      for (const i of s.integ) if (P2_AUTH_OF_INTEG[i] !== undefined) out.push({ encr: e, integ: i });
    if (e.id === 18 || e.id === 19 || e.id === 20) out.push({ encr: e });
  }
  return out;
}

/** The Quick Mode initiator's SA: one ESP proposal with our SPI, PFS group from the first spec. */
export function phase2Offer(
  specs: readonly EspProposalSpec[],
  spi: number,
  mode: 'tunnel' | 'transport',
  udp: boolean,
  lifetimeMs: number,
): Phase2Offer {
  const pfsGroup = specs[0]?.ke.find((g) => isSupported.ke(g));
  const transforms: V1Transform[] = [];
  for (const s of specs) {
    if (pfsGroup === undefined ? s.ke.length > 0 : !s.ke.includes(pfsGroup)) continue;
    for (const x of espTransformsOf(s)) {
      const attrs: V1Attribute[] = [
        ...lifeAttrs(V1P2Attr.SA_LIFE_TYPE, V1P2Attr.SA_LIFE_DURATION, lifetimeMs),
        v1Attribute(V1P2Attr.ENCAPSULATION_MODE, encapMode(mode, udp)),
      ];
      if (pfsGroup !== undefined) attrs.push(v1Attribute(V1P2Attr.GROUP_DESCRIPTION, pfsGroup));
      if (x.integ !== undefined)
        attrs.push(v1Attribute(V1P2Attr.AUTHENTICATION_ALGORITHM, P2_AUTH_OF_INTEG[x.integ] as number));
      attrs.push(v1Attribute(V1P2Attr.KEY_LENGTH, x.encr.keyLen ?? 128));
      transforms.push({ num: transforms.length + 1, transformId: x.encr.id, attributes: attrs });
    }
  }
  const spiBuf = Buffer.alloc(4);
  spiBuf.writeUInt32BE(spi >>> 0);
  return { sa: saPayload([{ num: 1, protocolId: V1ProtocolId.IPSEC_ESP, spi: spiBuf, transforms }]), pfsGroup };
}

export interface Phase2Choice {
  suite: EspSuite;
  mode: 'tunnel' | 'transport';
  udp: boolean;
  lifetimeMs: number | undefined;
  group: number | undefined;
}

/** Interprets one ESP transform; undefined when it uses something we do not implement. */
export function parsePhase2Transform(t: V1Transform): Phase2Choice | undefined {
  const known = new Set<number>([
    V1P2Attr.SA_LIFE_TYPE,
    V1P2Attr.SA_LIFE_DURATION,
    V1P2Attr.GROUP_DESCRIPTION,
    V1P2Attr.ENCAPSULATION_MODE,
    V1P2Attr.AUTHENTICATION_ALGORITHM,
    V1P2Attr.KEY_LENGTH,
  ]);
  if (t.attributes.some((a) => !known.has(a.type))) return undefined;
  const num = (type: number) => findV1AttributeNumber(t.attributes, type);
  const enc = decodeEncap(num(V1P2Attr.ENCAPSULATION_MODE));
  if (!enc) return undefined;
  const keyLen = num(V1P2Attr.KEY_LENGTH) ?? 128;
  if (!isSupported.encr(t.transformId, keyLen)) return undefined;
  const auth = num(V1P2Attr.AUTHENTICATION_ALGORITHM);
  const aead = t.transformId !== AES_CBC;
  let integ: number | undefined;
  if (aead) {
    if (auth !== undefined) return undefined;
  } else {
    integ = auth === undefined ? undefined : INTEG_OF_P2_AUTH[auth];
    if (integ === undefined) return undefined;
  }
  const group = num(V1P2Attr.GROUP_DESCRIPTION);
  if (group !== undefined && !isSupported.ke(group)) return undefined;
  const suite: EspSuite = { encr: { id: t.transformId, keyLen }, esn: false };
  if (integ !== undefined) suite.integ = integ;
  if (group !== undefined) suite.ke = group;
  return {
    suite,
    mode: enc.mode,
    udp: enc.udp,
    lifetimeMs: lifetimeOf(t.attributes, V1P2Attr.SA_LIFE_TYPE, V1P2Attr.SA_LIFE_DURATION),
    group,
  };
}

function acceptableEsp(specs: readonly EspProposalSpec[], c: Phase2Choice): boolean {
  return specs.some((s) => {
    if (!s.encr.some((e) => e.id === c.suite.encr.id && (e.keyLen ?? 128) === c.suite.encr.keyLen)) return false;
    if (c.suite.integ !== undefined && !s.integ.includes(c.suite.integ)) return false;
    return c.group === undefined ? s.ke.length === 0 : s.ke.includes(c.group);
  });
}

/**
 * Quick Mode responder: the first acceptable ESP transform with the wanted
 * mode; `keGroup` is the group of the KE payload (undefined without one).
 */
export function selectPhase2(
  sa: SaV1Payload,
  specs: readonly EspProposalSpec[],
  mode: 'tunnel' | 'transport',
  keGroup: number | undefined,
): { choice: Phase2Choice; proposal: V1Proposal; transform: V1Transform; peerSpi: number } | undefined {
  for (const p of sa.proposals) {
    if (p.protocolId !== V1ProtocolId.IPSEC_ESP || p.spi.length !== 4) continue;
    // A proposal bundling ESP with AH/IPComp (same number) is not supported.
    if (sa.proposals.some((o) => o !== p && o.num === p.num)) continue;
    for (const t of p.transforms) {
      const c = parsePhase2Transform(t);
      if (!c || c.mode !== mode || c.group !== keGroup || !acceptableEsp(specs, c)) continue;
      return { choice: c, proposal: p, transform: t, peerSpi: p.spi.readUInt32BE(0) };
    }
  }
  return undefined;
}

/** Quick Mode initiator: the answer must be one of our transforms. */
export function acceptPhase2Answer(
  offer: SaV1Payload,
  answer: SaV1Payload,
): { choice: Phase2Choice; peerSpi: number } | undefined {
  const [p] = answer.proposals;
  const [t] = p?.transforms ?? [];
  if (!p || !t || answer.proposals.length !== 1 || p.transforms.length !== 1) return undefined;
  if (p.protocolId !== V1ProtocolId.IPSEC_ESP || p.spi.length !== 4) return undefined;
  const offered = offer.proposals[0]?.transforms.find((o) => o.num === t.num && o.transformId === t.transformId);
  if (!offered || !sameAttributes(offered.attributes, t.attributes)) return undefined;
  const c = parsePhase2Transform(t);
  return c ? { choice: c, peerSpi: p.spi.readUInt32BE(0) } : undefined;
}

/** Builds the answer SA: the chosen transform under the offered proposal number, with our SPI. */
export function answerSa(proposal: V1Proposal, transform: V1Transform, spi?: number): SaV1Payload {
  let spiBuf = proposal.spi;
  if (spi !== undefined) {
    spiBuf = Buffer.alloc(4);
    spiBuf.writeUInt32BE(spi >>> 0);
  }
  return saPayload([{ num: proposal.num, protocolId: proposal.protocolId, spi: spiBuf, transforms: [transform] }]);
}

/** The IKEv1 authentication method for a policy. */
export function authMethodFor(
  auth: { kind: 'psk' } | { kind: 'pubkey'; privateKey: import('node:crypto').KeyObject },
): number {
  if (auth.kind === 'psk') return V1P1AuthMethod.PRE_SHARED_KEY;
  const k = auth.privateKey;
  if (k.asymmetricKeyType === 'ec') {
    const curve = k.asymmetricKeyDetails?.namedCurve;
    if (curve === 'secp384r1') return V1P1AuthMethod.ECDSA_SHA384_P384;
    if (curve === 'secp521r1') return V1P1AuthMethod.ECDSA_SHA512_P521;
    return V1P1AuthMethod.ECDSA_SHA256_P256;
  }
  return V1P1AuthMethod.RSA_SIGNATURES;
}

export const SIGNATURE_METHODS: readonly number[] = [
  V1P1AuthMethod.RSA_SIGNATURES,
  V1P1AuthMethod.ECDSA_SHA256_P256,
  V1P1AuthMethod.ECDSA_SHA384_P384,
  V1P1AuthMethod.ECDSA_SHA512_P521,
];
