/**
 * The XFRM structs as data: each layout lists (field, offset, type) for
 * x86_64/aarch64 (verified against offsetof() of /usr/include/linux/xfrm.h).
 * One generic encoder/decoder walks the layouts; netlink uses host byte order
 * (little-endian here) except fields marked be16/be32 (ports, SPIs).
 */
import { MalformedMessageError } from '../../wire/errors.js';

export type Scalar = 'u8' | 'u16' | 'u32' | 'i32' | 'u64' | 'be16' | 'be32' | 'addr';
export interface StructDef {
  readonly name: string;
  readonly size: number;
  readonly fields: readonly (readonly [name: string, offset: number, type: Scalar | StructDef])[];
}

function def(name: string, size: number, fields: StructDef['fields']): StructDef {
  return { name, size, fields };
}

export const SELECTOR = def('xfrm_selector', 56, [
  ['daddr', 0, 'addr'],
  ['saddr', 16, 'addr'],
  ['dport', 32, 'be16'],
  ['dportMask', 34, 'be16'],
  ['sport', 36, 'be16'],
  ['sportMask', 38, 'be16'],
  ['family', 40, 'u16'],
  ['prefixlenD', 42, 'u8'],
  ['prefixlenS', 43, 'u8'],
  ['proto', 44, 'u8'],
  ['ifindex', 48, 'i32'],
  ['user', 52, 'u32'],
]);
export const ID = def('xfrm_id', 24, [
  ['daddr', 0, 'addr'],
  ['spi', 16, 'be32'],
  ['proto', 20, 'u8'],
]);
export const LIFETIME_CFG = def('xfrm_lifetime_cfg', 64, [
  ['softByteLimit', 0, 'u64'],
  ['hardByteLimit', 8, 'u64'],
  ['softPacketLimit', 16, 'u64'],
  ['hardPacketLimit', 24, 'u64'],
  ['softAddExpiresSeconds', 32, 'u64'],
  ['hardAddExpiresSeconds', 40, 'u64'],
  ['softUseExpiresSeconds', 48, 'u64'],
  ['hardUseExpiresSeconds', 56, 'u64'],
]);
export const LIFETIME_CUR = def('xfrm_lifetime_cur', 32, [
  ['bytes', 0, 'u64'],
  ['packets', 8, 'u64'],
  ['addTime', 16, 'u64'],
  ['useTime', 24, 'u64'],
]);
export const STATS = def('xfrm_stats', 12, [
  ['replayWindow', 0, 'u32'],
  ['replay', 4, 'u32'],
  ['integrityFailed', 8, 'u32'],
]);
export const USERSA_INFO = def('xfrm_usersa_info', 224, [
  ['sel', 0, SELECTOR],
  ['id', 56, ID],
  ['saddr', 80, 'addr'],
  ['lft', 96, LIFETIME_CFG],
  ['curlft', 160, LIFETIME_CUR],
  ['stats', 192, STATS],
  ['seq', 204, 'u32'],
  ['reqid', 208, 'u32'],
  ['family', 212, 'u16'],
  ['mode', 214, 'u8'],
  ['replayWindow', 215, 'u8'],
  ['flags', 216, 'u8'],
]);
export const USERSA_ID = def('xfrm_usersa_id', 24, [
  ['daddr', 0, 'addr'],
  ['spi', 16, 'be32'],
  ['family', 20, 'u16'],
  ['proto', 22, 'u8'],
]);
export const USERSPI_INFO = def('xfrm_userspi_info', 232, [
  ['info', 0, USERSA_INFO],
  ['min', 224, 'u32'],
  ['max', 228, 'u32'],
]);
export const USERPOLICY_INFO = def('xfrm_userpolicy_info', 168, [
  ['sel', 0, SELECTOR],
  ['lft', 56, LIFETIME_CFG],
  ['curlft', 120, LIFETIME_CUR],
  ['priority', 152, 'u32'],
  ['index', 156, 'u32'],
  ['dir', 160, 'u8'],
  ['action', 161, 'u8'],
  ['flags', 162, 'u8'],
  ['share', 163, 'u8'],
]);
export const USERPOLICY_ID = def('xfrm_userpolicy_id', 64, [
  ['sel', 0, SELECTOR],
  ['index', 56, 'u32'],
  ['dir', 60, 'u8'],
]);
export const USER_TMPL = def('xfrm_user_tmpl', 64, [
  ['id', 0, ID],
  ['family', 24, 'u16'],
  ['saddr', 28, 'addr'],
  ['reqid', 44, 'u32'],
  ['mode', 48, 'u8'],
  ['share', 49, 'u8'],
  ['optional', 50, 'u8'],
  ['aalgos', 52, 'u32'],
  ['ealgos', 56, 'u32'],
  ['calgos', 60, 'u32'],
]);
export const USER_ACQUIRE = def('xfrm_user_acquire', 280, [
  ['id', 0, ID],
  ['saddr', 24, 'addr'],
  ['sel', 40, SELECTOR],
  ['policy', 96, USERPOLICY_INFO],
  ['aalgos', 264, 'u32'],
  ['ealgos', 268, 'u32'],
  ['calgos', 272, 'u32'],
  ['seq', 276, 'u32'],
]);
export const USER_EXPIRE = def('xfrm_user_expire', 232, [
  ['state', 0, USERSA_INFO],
  ['hard', 224, 'u8'],
]);
export const USER_POLEXPIRE = def('xfrm_user_polexpire', 176, [
  ['pol', 0, USERPOLICY_INFO],
  ['hard', 168, 'u8'],
]);
export const USER_MAPPING = def('xfrm_user_mapping', 64, [
  ['id', 0, USERSA_ID],
  ['reqid', 24, 'u32'],
  ['oldSaddr', 28, 'addr'],
  ['newSaddr', 44, 'addr'],
  ['oldSport', 60, 'be16'],
  ['newSport', 62, 'be16'],
]);
export const MARK = def('xfrm_mark', 8, [
  ['v', 0, 'u32'],
  ['m', 4, 'u32'],
]);
export const ENCAP_TMPL = def('xfrm_encap_tmpl', 24, [
  ['encapType', 0, 'u16'],
  ['encapSport', 2, 'be16'],
  ['encapDport', 4, 'be16'],
  ['encapOa', 8, 'addr'],
]);
export const REPLAY_STATE = def('xfrm_replay_state', 12, [
  ['oseq', 0, 'u32'],
  ['seq', 4, 'u32'],
  ['bitmap', 8, 'u32'],
]);
export const REPLAY_STATE_ESN = def('xfrm_replay_state_esn', 24, [
  ['bmpLen', 0, 'u32'],
  ['oseq', 4, 'u32'],
  ['seq', 8, 'u32'],
  ['oseqHi', 12, 'u32'],
  ['seqHi', 16, 'u32'],
  ['replayWindow', 20, 'u32'],
]);
export const USERPOLICY_TYPE = def('xfrm_userpolicy_type', 6, [
  ['type', 0, 'u8'],
  ['reserved1', 2, 'u16'],
  ['reserved2', 4, 'u8'],
]);
export const SPD_HTHRESH = def('xfrmu_spdhthresh', 2, [
  ['lbits', 0, 'u8'],
  ['rbits', 1, 'u8'],
]);
/** The u32 flags word that heads XFRM_MSG_NEWSPDINFO / GETSPDINFO. */
export const U32_FLAGS = def('u32', 4, [['flags', 0, 'u32']]);

type FieldValue = number | bigint | Buffer | StructValue;
export interface StructValue {
  [field: string]: FieldValue;
}

function truncated(d: StructDef, off: number, have: number): never {
  throw new MalformedMessageError(`truncated: ${d.name} needs ${d.size} bytes, have ${have}`, off, d.name);
}

/** Decodes `d` at `off`; throws MalformedMessageError when the buffer is short. */
export function decodeStruct<T>(d: StructDef, buf: Buffer, off = 0): T {
  if (off < 0 || off + d.size > buf.length) truncated(d, off, buf.length - off);
  const out: StructValue = {};
  for (const [name, at, type] of d.fields) {
    const o = off + at;
    switch (type) {
      case 'u8':
        out[name] = buf.readUInt8(o);
        break;
      case 'u16':
        out[name] = buf.readUInt16LE(o);
        break;
      case 'u32':
        out[name] = buf.readUInt32LE(o);
        break;
      case 'i32':
        out[name] = buf.readInt32LE(o);
        break;
      case 'u64':
        out[name] = buf.readBigUInt64LE(o);
        break;
      case 'be16':
        out[name] = buf.readUInt16BE(o);
        break;
      case 'be32':
        out[name] = buf.readUInt32BE(o);
        break;
      case 'addr':
        out[name] = Buffer.from(buf.subarray(o, o + 16));
        break;
      default:
        out[name] = decodeStruct<StructValue>(type, buf, o);
    }
  }
  return out as T;
}

/** Encodes `value` (missing fields are zero) into `buf` at `off`, or a new buffer. */
export function encodeStruct(d: StructDef, value: object, buf: Buffer = Buffer.alloc(d.size), off = 0): Buffer {
  const v = value as Partial<StructValue>;
  for (const [name, at, type] of d.fields) {
    const o = off + at;
    const f = v[name];
    if (f === undefined) continue;
    switch (type) {
      case 'u8':
        buf.writeUInt8(f as number, o);
        break;
      case 'u16':
        buf.writeUInt16LE(f as number, o);
        break;
      case 'u32':
        buf.writeUInt32LE(f as number, o);
        break;
      case 'i32':
        buf.writeInt32LE(f as number, o);
        break;
      case 'u64':
        buf.writeBigUInt64LE(f as bigint, o);
        break;
      case 'be16':
        buf.writeUInt16BE(f as number, o);
        break;
      case 'be32':
        buf.writeUInt32BE(f as number, o);
        break;
      case 'addr':
        (f as Buffer).copy(buf, o, 0, 16);
        break;
      default:
        encodeStruct(type, f as object, buf, o);
    }
  }
  return buf;
}
