/** TypeScript shapes of the layouts in structs.ts (addresses are raw 16-byte buffers). */

export interface Selector {
  daddr: Buffer;
  saddr: Buffer;
  dport: number;
  dportMask: number;
  sport: number;
  sportMask: number;
  family: number;
  prefixlenD: number;
  prefixlenS: number;
  proto: number;
  ifindex: number;
  user: number;
}
export interface XfrmId {
  daddr: Buffer;
  spi: number;
  proto: number;
}
export interface LifetimeCfg {
  softByteLimit: bigint;
  hardByteLimit: bigint;
  softPacketLimit: bigint;
  hardPacketLimit: bigint;
  softAddExpiresSeconds: bigint;
  hardAddExpiresSeconds: bigint;
  softUseExpiresSeconds: bigint;
  hardUseExpiresSeconds: bigint;
}
export interface LifetimeCur {
  bytes: bigint;
  packets: bigint;
  addTime: bigint;
  useTime: bigint;
}
export interface Stats {
  replayWindow: number;
  replay: number;
  integrityFailed: number;
}
export interface UsersaInfo {
  sel: Selector;
  id: XfrmId;
  saddr: Buffer;
  lft: LifetimeCfg;
  curlft: LifetimeCur;
  stats: Stats;
  seq: number;
  reqid: number;
  family: number;
  mode: number;
  replayWindow: number;
  flags: number;
}
export interface UsersaId {
  daddr: Buffer;
  spi: number;
  family: number;
  proto: number;
}
export interface UserspiInfo {
  info: UsersaInfo;
  min: number;
  max: number;
}
export interface UserpolicyInfo {
  sel: Selector;
  lft: LifetimeCfg;
  curlft: LifetimeCur;
  priority: number;
  index: number;
  dir: number;
  action: number;
  flags: number;
  share: number;
}
export interface UserpolicyId {
  sel: Selector;
  index: number;
  dir: number;
}
export interface UserTmpl {
  id: XfrmId;
  family: number;
  saddr: Buffer;
  reqid: number;
  mode: number;
  share: number;
  optional: number;
  aalgos: number;
  ealgos: number;
  calgos: number;
}
export interface UserAcquire {
  id: XfrmId;
  saddr: Buffer;
  sel: Selector;
  policy: UserpolicyInfo;
  aalgos: number;
  ealgos: number;
  calgos: number;
  seq: number;
}
export interface UserExpire {
  state: UsersaInfo;
  hard: number;
}
export interface UserPolexpire {
  pol: UserpolicyInfo;
  hard: number;
}
export interface UserMapping {
  id: UsersaId;
  reqid: number;
  oldSaddr: Buffer;
  newSaddr: Buffer;
  oldSport: number;
  newSport: number;
}
export interface Mark {
  v: number;
  m: number;
}
export interface EncapTmpl {
  encapType: number;
  encapSport: number;
  encapDport: number;
  encapOa: Buffer;
}
export interface ReplayState {
  oseq: number;
  seq: number;
  bitmap: number;
}
export interface ReplayStateEsn {
  bmpLen: number;
  oseq: number;
  seq: number;
  oseqHi: number;
  seqHi: number;
  replayWindow: number;
  bmp: number[];
}
export interface UserpolicyType {
  type: number;
  reserved1: number;
  reserved2: number;
}
export interface SpdHthresh {
  lbits: number;
  rbits: number;
}
export interface U32Flags {
  flags: number;
}
/** xfrm_algo (keyLen in bits is derived from key). */
export interface Algo {
  name: string;
  key: Buffer;
}
export interface AlgoAuth extends Algo {
  truncBits: number;
}
export interface AlgoAead extends Algo {
  icvBits: number;
}

/** Deep partial for encoders: missing fields encode as zero. */
export type Fill<T> = {
  [K in keyof T]?: T[K] extends Buffer | number | bigint | string | unknown[] ? T[K] : Fill<T[K]>;
};
