/**
 * IKEv2 message structures (RFC 7296 §3, RFC 7383 §2.5). Plain data: every
 * payload is a member of the `Payload` union discriminated on `type` (the
 * payload type number); use the `is*` guards to narrow, e.g.
 * `payloads.filter(isNotify)`.
 */
import { PAYLOAD } from './constants.js';

export interface IkeHeaderFlags {
  initiator: boolean;
  response: boolean;
  higherVersion: boolean;
}

export interface IkeHeader {
  /** Initiator's SPI, 8 bytes. */
  spiI: Buffer;
  /** Responder's SPI, 8 bytes (zero in the first IKE_SA_INIT request). */
  spiR: Buffer;
  /** Type of the first payload. Computed by the encoder, not trusted. */
  nextPayload: number;
  majorVersion: number;
  minorVersion: number;
  exchangeType: number;
  flags: IkeHeaderFlags;
  messageId: number;
  /** Total message length. Computed by the encoder, not trusted. */
  length: number;
}

export interface TransformAttribute {
  type: number;
  /** A number for TV (short, AF=1) attributes; bytes for TLV attributes. */
  value: number | Buffer;
  /** True when encoded in the 4-byte TV form (AF bit set). */
  tv: boolean;
}

export interface Transform {
  type: number;
  id: number;
  attributes: TransformAttribute[];
}

export interface Proposal {
  num: number;
  protocolId: number;
  /** Empty for IKE in IKE_SA_INIT; 4 bytes for ESP/AH; 8 bytes for an IKE rekey. */
  spi: Buffer;
  transforms: Transform[];
}

/** An address-range traffic selector (TS_IPV4_ADDR_RANGE or TS_IPV6_ADDR_RANGE). */
export interface AddressRangeSelector {
  tsType: 7 | 8;
  ipProto: number;
  startPort: number;
  endPort: number;
  /** 4 bytes for IPv4, 16 for IPv6. */
  startAddr: Buffer;
  endAddr: Buffer;
}

/** A selector of a type we do not interpret (e.g. TS_SECLABEL), kept opaque. */
export interface OpaqueSelector {
  tsType: number;
  /** Second octet: the IP protocol for address ranges, reserved for other types. */
  ipProto: number;
  /** Selector bytes after the 4-octet type/protocol/length header. */
  data: Buffer;
}

export type TrafficSelector = AddressRangeSelector | OpaqueSelector;

export function isAddressRangeSelector(s: TrafficSelector): s is AddressRangeSelector {
  return (s.tsType === 7 || s.tsType === 8) && 'startAddr' in s;
}

export interface CpAttribute {
  type: number;
  value: Buffer;
}

interface Base<T extends number> {
  type: T;
  critical: boolean;
}

export interface SaPayload extends Base<typeof PAYLOAD.SA> {
  proposals: Proposal[];
}
export interface KePayload extends Base<typeof PAYLOAD.KE> {
  group: number;
  data: Buffer;
}
export interface IdPayload<T extends typeof PAYLOAD.IDi | typeof PAYLOAD.IDr> extends Base<T> {
  idType: number;
  data: Buffer;
}
export type IdiPayload = IdPayload<typeof PAYLOAD.IDi>;
export type IdrPayload = IdPayload<typeof PAYLOAD.IDr>;
export interface CertPayload extends Base<typeof PAYLOAD.CERT> {
  encoding: number;
  data: Buffer;
}
export interface CertReqPayload extends Base<typeof PAYLOAD.CERTREQ> {
  encoding: number;
  data: Buffer;
}
export interface AuthPayload extends Base<typeof PAYLOAD.AUTH> {
  method: number;
  data: Buffer;
}
export interface NoncePayload extends Base<typeof PAYLOAD.NONCE> {
  data: Buffer;
}
export interface NotifyPayload extends Base<typeof PAYLOAD.NOTIFY> {
  protocolId: number;
  spi: Buffer;
  notifyType: number;
  data: Buffer;
}
export interface DeletePayload extends Base<typeof PAYLOAD.DELETE> {
  protocolId: number;
  spiSize: number;
  spis: Buffer[];
}
export interface VendorPayload extends Base<typeof PAYLOAD.VENDOR> {
  data: Buffer;
}
export interface TsPayload<T extends typeof PAYLOAD.TSi | typeof PAYLOAD.TSr> extends Base<T> {
  selectors: TrafficSelector[];
}
export type TsiPayload = TsPayload<typeof PAYLOAD.TSi>;
export type TsrPayload = TsPayload<typeof PAYLOAD.TSr>;
export interface SkPayload extends Base<typeof PAYLOAD.SK> {
  /** Type of the first payload inside the encrypted body. */
  innerFirstPayload: number;
  /** IV || ciphertext || ICV, opaque to the wire layer. */
  body: Buffer;
}
export interface SkfPayload extends Base<typeof PAYLOAD.SKF> {
  fragmentNumber: number;
  totalFragments: number;
  /** Type of the first inner payload; non-zero only in fragment 1. */
  innerFirstPayload: number;
  body: Buffer;
}
export interface CpPayload extends Base<typeof PAYLOAD.CP> {
  cfgType: number;
  attributes: CpAttribute[];
}
export interface EapPayload extends Base<typeof PAYLOAD.EAP> {
  /** The whole EAP message (RFC 3748). */
  data: Buffer;
}
type Range<N extends number, Acc extends number[] = []> = Acc['length'] extends N
  ? Acc[number]
  : Range<N, [...Acc, Acc['length']]>;
/** Every payload type number the wire can carry (one octet, 0 = none). */
export type PayloadTypeOctet = Exclude<Range<256>, 0>;

/**
 * A payload of a type we do not implement, kept verbatim (only if not
 * critical). Its `type` excludes the known types, so `p.type === PAYLOAD.NOTIFY`
 * narrows to NotifyPayload alone.
 */
export interface UnknownPayload {
  type: UnknownPayloadType;
  critical: boolean;
  unknown: true;
  data: Buffer;
}

export type KnownPayload =
  | SaPayload
  | KePayload
  | IdiPayload
  | IdrPayload
  | CertPayload
  | CertReqPayload
  | AuthPayload
  | NoncePayload
  | NotifyPayload
  | DeletePayload
  | VendorPayload
  | TsiPayload
  | TsrPayload
  | SkPayload
  | SkfPayload
  | CpPayload
  | EapPayload;

export type Payload = KnownPayload | UnknownPayload;

export type KnownPayloadType = KnownPayload['type'];
export type UnknownPayloadType = Exclude<PayloadTypeOctet, KnownPayloadType>;
export type PayloadOf<T extends KnownPayloadType> = Extract<KnownPayload, { type: T }>;

const KNOWN_TYPES: ReadonlySet<number> = new Set<number>([
  PAYLOAD.SA,
  PAYLOAD.KE,
  PAYLOAD.IDi,
  PAYLOAD.IDr,
  PAYLOAD.CERT,
  PAYLOAD.CERTREQ,
  PAYLOAD.AUTH,
  PAYLOAD.NONCE,
  PAYLOAD.NOTIFY,
  PAYLOAD.DELETE,
  PAYLOAD.VENDOR,
  PAYLOAD.TSi,
  PAYLOAD.TSr,
  PAYLOAD.SK,
  PAYLOAD.CP,
  PAYLOAD.EAP,
  PAYLOAD.SKF,
]);

/** Whether the wire layer implements (decodes into a typed payload) this payload type. */
export function isKnownPayloadType(type: number): type is KnownPayloadType {
  return KNOWN_TYPES.has(type);
}

export interface IkeMessage {
  header: IkeHeader;
  payloads: Payload[];
}

// ---- guards -------------------------------------------------------------------------

export function isUnknown(p: Payload): p is UnknownPayload {
  return 'unknown' in p && p.unknown === true;
}

/** Guard factory: `payloads.filter(isType(PAYLOAD.NOTIFY))`. */
export function isType<T extends KnownPayloadType>(type: T): (p: Payload) => p is PayloadOf<T> {
  return (p: Payload): p is PayloadOf<T> => p.type === type && !isUnknown(p);
}

export const isSa = isType(PAYLOAD.SA);
export const isKe = isType(PAYLOAD.KE);
export const isIdi = isType(PAYLOAD.IDi);
export const isIdr = isType(PAYLOAD.IDr);
export const isCert = isType(PAYLOAD.CERT);
export const isCertReq = isType(PAYLOAD.CERTREQ);
export const isAuth = isType(PAYLOAD.AUTH);
export const isNonce = isType(PAYLOAD.NONCE);
export const isNotify = isType(PAYLOAD.NOTIFY);
export const isDelete = isType(PAYLOAD.DELETE);
export const isVendor = isType(PAYLOAD.VENDOR);
export const isTsi = isType(PAYLOAD.TSi);
export const isTsr = isType(PAYLOAD.TSr);
export const isSk = isType(PAYLOAD.SK);
export const isSkf = isType(PAYLOAD.SKF);
export const isCp = isType(PAYLOAD.CP);
export const isEap = isType(PAYLOAD.EAP);

/** First payload of a type, narrowed: `findPayload(msg.payloads, PAYLOAD.KE)?.group`. */
export function findPayload<T extends KnownPayloadType>(
  payloads: readonly Payload[],
  type: T,
): PayloadOf<T> | undefined {
  return payloads.find(isType(type));
}

/** All payloads of a type, narrowed. */
export function filterPayloads<T extends KnownPayloadType>(payloads: readonly Payload[], type: T): PayloadOf<T>[] {
  return payloads.filter(isType(type));
}

/** Notify payloads of one notify type. */
export function findNotify(payloads: readonly Payload[], notifyType: number): NotifyPayload | undefined {
  return payloads.find((p): p is NotifyPayload => isNotify(p) && p.notifyType === notifyType);
}
