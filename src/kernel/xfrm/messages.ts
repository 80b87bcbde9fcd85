/**
 * XFRM netlink messages declared as data: message type -> fixed header
 * struct -> attribute space and the attributes it may carry. One encoder and
 * one decoder serve every type; a datagram may hold several messages.
 * Every decode failure is a MalformedMessageError (never a RangeError).
 */
import { MalformedMessageError, safeDecode } from '../../wire/errors.js';
import { type AttrSpace, align4, decodeAttrs, encodeAttrs, type XfrmAttrs } from './attrs.js';
import { NLM_F, NLMSG, NLMSGERR_ATTR, XFRM_MSG, type XfrmMsgName } from './constants.js';
import type {
  Fill,
  U32Flags,
  UserAcquire,
  UserExpire,
  UserMapping,
  UserPolexpire,
  UserpolicyId,
  UserpolicyInfo,
  UsersaId,
  UsersaInfo,
  UserspiInfo,
} from './struct-types.js';
import {
  decodeStruct,
  encodeStruct,
  type StructDef,
  U32_FLAGS,
  USER_ACQUIRE,
  USER_EXPIRE,
  USER_MAPPING,
  USER_POLEXPIRE,
  USERPOLICY_ID,
  USERPOLICY_INFO,
  USERSA_ID,
  USERSA_INFO,
  USERSPI_INFO,
} from './structs.js';

export const NLMSGHDR_LEN = 16;

interface HeaderByKind {
  NEWSA: UsersaInfo;
  UPDSA: UsersaInfo;
  DELSA: UsersaId;
  GETSA: UsersaId;
  ALLOCSPI: UserspiInfo;
  NEWPOLICY: UserpolicyInfo;
  UPDPOLICY: UserpolicyInfo;
  DELPOLICY: UserpolicyId;
  GETPOLICY: UserpolicyId;
  ACQUIRE: UserAcquire;
  EXPIRE: UserExpire;
  POLEXPIRE: UserPolexpire;
  MAPPING: UserMapping;
  NEWSPDINFO: U32Flags;
  GETSPDINFO: U32Flags;
}
export type XfrmKind = keyof HeaderByKind;

interface MessageDef {
  header: StructDef;
  space: AttrSpace;
  /** Attribute keys this message may carry (encoder refuses others). */
  attrs: readonly (keyof XfrmAttrs)[];
}

const SA_ATTRS = [
  'algAead',
  'algCrypt',
  'algAuth',
  'algAuthTrunc',
  'encap',
  'ltimeVal',
  'replayVal',
  'replayEsnVal',
  'srcaddr',
  'lastused',
  'mark',
  'saExtraFlags',
  'ifId',
  'unknown',
] as const;
const POLICY_ATTRS = ['tmpl', 'policyType', 'mark', 'ifId', 'lastused', 'unknown'] as const;

/** The table. */
export const MESSAGES: Record<XfrmKind, MessageDef> = {
  NEWSA: { header: USERSA_INFO, space: 'xfrma', attrs: SA_ATTRS },
  UPDSA: { header: USERSA_INFO, space: 'xfrma', attrs: SA_ATTRS },
  DELSA: { header: USERSA_ID, space: 'xfrma', attrs: ['srcaddr', 'mark', 'sa', 'unknown'] },
  GETSA: { header: USERSA_ID, space: 'xfrma', attrs: ['srcaddr', 'mark', 'proto', 'unknown'] },
  ALLOCSPI: { header: USERSPI_INFO, space: 'xfrma', attrs: ['mark', 'ifId', 'unknown'] },
  NEWPOLICY: { header: USERPOLICY_INFO, space: 'xfrma', attrs: POLICY_ATTRS },
  UPDPOLICY: { header: USERPOLICY_INFO, space: 'xfrma', attrs: POLICY_ATTRS },
  DELPOLICY: { header: USERPOLICY_ID, space: 'xfrma', attrs: ['policyType', 'mark', 'ifId', 'policy', 'unknown'] },
  GETPOLICY: { header: USERPOLICY_ID, space: 'xfrma', attrs: ['policyType', 'mark', 'ifId', 'unknown'] },
  ACQUIRE: { header: USER_ACQUIRE, space: 'xfrma', attrs: ['tmpl', 'policyType', 'mark', 'ifId', 'unknown'] },
  EXPIRE: { header: USER_EXPIRE, space: 'xfrma', attrs: [...SA_ATTRS] },
  POLEXPIRE: { header: USER_POLEXPIRE, space: 'xfrma', attrs: ['tmpl', 'policyType', 'mark', 'ifId', 'unknown'] },
  MAPPING: { header: USER_MAPPING, space: 'xfrma', attrs: ['unknown'] },
  NEWSPDINFO: { header: U32_FLAGS, space: 'spd', attrs: ['spdIpv4Hthresh', 'spdIpv6Hthresh', 'unknown'] },
  GETSPDINFO: { header: U32_FLAGS, space: 'spd', attrs: ['spdIpv4Hthresh', 'spdIpv6Hthresh', 'unknown'] },
};

const KIND_OF_TYPE = new Map<number, XfrmKind>(
  (Object.keys(MESSAGES) as XfrmKind[]).map((k) => [XFRM_MSG[k as XfrmMsgName], k]),
);

export interface NlHeader {
  len: number;
  type: number;
  flags: number;
  seq: number;
  pid: number;
}

export type XfrmMessage = {
  [K in XfrmKind]: { kind: K; nl: NlHeader; header: HeaderByKind[K]; attrs: XfrmAttrs };
}[XfrmKind];

/** NLMSG_ERROR: errno 0 is an ACK. `extMsg` is the kernel's extended-ack text, if any. */
export interface NlError {
  kind: 'ERROR';
  nl: NlHeader;
  errno: number;
  request: NlHeader;
  extMsg?: string;
  extOffset?: number;
}
export interface NlDone {
  kind: 'DONE';
  nl: NlHeader;
  errno: number;
}
/** A message type this codec does not model (kept so the caller can log it). */
export interface NlOther {
  kind: 'OTHER';
  nl: NlHeader;
  body: Buffer;
}
export type NlMessage = XfrmMessage | NlError | NlDone | NlOther;

export interface EncodeArgs<K extends XfrmKind> {
  kind: K;
  header: Fill<HeaderByKind[K]>;
  attrs?: XfrmAttrs;
  flags?: number;
  seq?: number;
  pid?: number;
}

/** Encodes one XFRM request/notification with its nlmsghdr. */
export function encodeMessage<K extends XfrmKind>(m: EncodeArgs<K>): Buffer {
  const d = MESSAGES[m.kind];
  const attrs = m.attrs ?? {};
  for (const key of Object.keys(attrs)) {
    if ((attrs as Record<string, unknown>)[key] !== undefined && !d.attrs.includes(key as keyof XfrmAttrs)) {
      throw new RangeError(`attribute ${key} not allowed in XFRM_MSG_${m.kind}`);
    }
  }
  const body = encodeStruct(d.header, m.header, Buffer.alloc(align4(d.header.size)));
  const a = encodeAttrs(d.space, attrs);
  const hdr = Buffer.alloc(NLMSGHDR_LEN);
  const len = NLMSGHDR_LEN + body.length + a.length;
  hdr.writeUInt32LE(len, 0);
  hdr.writeUInt16LE(XFRM_MSG[m.kind], 4);
  hdr.writeUInt16LE(m.flags ?? NLM_F.REQUEST, 6);
  hdr.writeUInt32LE(m.seq ?? 0, 8);
  hdr.writeUInt32LE(m.pid ?? 0, 12);
  return Buffer.concat([hdr, body, a], len);
}

function decodeNlHeader(buf: Buffer, off: number): NlHeader {
  if (buf.length - off < NLMSGHDR_LEN) {
    throw new MalformedMessageError(`truncated nlmsghdr: ${buf.length - off} bytes`, off, 'nlmsghdr');
  }
  return {
    len: buf.readUInt32LE(off),
    type: buf.readUInt16LE(off + 4),
    flags: buf.readUInt16LE(off + 6),
    seq: buf.readUInt32LE(off + 8),
    pid: buf.readUInt32LE(off + 12),
  };
}

function decodeError(nl: NlHeader, buf: Buffer, off: number, end: number): NlError {
  if (end - off < 4 + NLMSGHDR_LEN) throw new MalformedMessageError('truncated NLMSG_ERROR', off, 'nlmsgerr');
  const error = buf.readInt32LE(off);
  const request = decodeNlHeader(buf, off + 4);
  const out: NlError = { kind: 'ERROR', nl, errno: 0 - error || 0, request };
  if (nl.flags & NLM_F.ACK_TLVS) {
    const echoed = nl.flags & NLM_F.CAPPED ? NLMSGHDR_LEN : request.len;
    let p = off + 4 + align4(echoed);
    while (p + 4 <= end) {
      const len = buf.readUInt16LE(p);
      const type = buf.readUInt16LE(p + 2) & 0x3fff;
      if (len < 4 || p + len > end) break;
      if (type === NLMSGERR_ATTR.MSG) out.extMsg = buf.toString('utf8', p + 4, p + len).replace(/\0+$/, '');
      if (type === NLMSGERR_ATTR.OFFS && len >= 8) out.extOffset = buf.readUInt32LE(p + 4);
      p += align4(len);
    }
  }
  return out;
}

function decodeOne(buf: Buffer, off: number): NlMessage {
  const nl = decodeNlHeader(buf, off);
  if (nl.len < NLMSGHDR_LEN || off + nl.len > buf.length) {
    throw new MalformedMessageError(`nlmsg_len ${nl.len} outside datagram of ${buf.length}`, off, 'nlmsghdr');
  }
  const start = off + NLMSGHDR_LEN;
  const end = off + nl.len;
  if (nl.type === NLMSG.ERROR) return decodeError(nl, buf, start, end);
  if (nl.type === NLMSG.DONE) {
    return { kind: 'DONE', nl, errno: end - start >= 4 ? 0 - buf.readInt32LE(start) || 0 : 0 };
  }
  const kind = KIND_OF_TYPE.get(nl.type);
  if (!kind) return { kind: 'OTHER', nl, body: Buffer.from(buf.subarray(start, end)) };
  const d = MESSAGES[kind];
  if (end - start < d.header.size) {
    throw new MalformedMessageError(`${d.header.name} needs ${d.header.size} bytes, have ${end - start}`, start, kind);
  }
  const header = decodeStruct(d.header, buf, start);
  const attrs = decodeAttrs(d.space, buf, start + align4(d.header.size), end);
  return { kind, nl, header, attrs } as XfrmMessage;
}

/** Decodes every netlink message in one datagram. Throws only MalformedMessageError. */
export function decodeDatagram(buf: Buffer): NlMessage[] {
  return safeDecode('netlink', () => {
    const out: NlMessage[] = [];
    let off = 0;
    while (off < buf.length) {
      const m = decodeOne(buf, off);
      out.push(m);
      off += align4(m.nl.len);
    }
    return out;
  });
}
