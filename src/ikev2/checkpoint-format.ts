/**
 * The checkpoint file format (version 1) and its validation: a checkpoint is
 * untrusted input on load, so every field is checked and a bad one names its
 * path. See checkpoint.ts for how snapshots are taken and restored.
 */
import { createHash, KeyObject } from 'node:crypto';
import { CoatiError } from '../errors.js';
import type { PolicySpec } from '../kernel/types.js';
import type { IdentityKind } from '../sa/identity.js';
import type { PeerPolicy } from '../sa/policy.js';
import type { EncrChoice, EspSuite, IkeSuite } from '../sa/proposal.js';
import type { Endpoint } from './env.js';

export const CHECKPOINT_VERSION = 1;

export interface TsRecord {
  family: 4 | 6;
  proto: number;
  startPort: number;
  endPort: number;
  /** Address range bounds as decimal strings (bigints). */
  start: string;
  end: string;
}

export interface ChildRecord {
  uid: string;
  name: string;
  /** `rekeyed`: superseded by a rekey, to be deleted through the peer. */
  state: 'installed' | 'rekeyed';
  reqid: number;
  mode: 'tunnel' | 'transport';
  spiIn: number;
  spiOut: number;
  suite: EspSuite;
  localTs: TsRecord[];
  remoteTs: TsRecord[];
  encap: boolean;
  keysIn: { encKey: string; integKey: string };
  keysOut: { encKey: string; integKey: string };
  createdAt: number;
  rekeyAt: number;
  expireAt: number;
  minNonce: string;
  replacedBy?: string;
}

export interface IkeSaRecord {
  uid: number;
  state: 'established';
  role: 'initiator' | 'responder';
  spiI: string;
  spiR: string;
  local: Endpoint;
  remote: Endpoint;
  nat: { local: boolean; remote: boolean };
  fragmentation: boolean;
  suite: IkeSuite;
  keys: {
    skeyseed: string;
    skD: string;
    skAi: string;
    skAr: string;
    skEi: string;
    skEr: string;
    skPi: string;
    skPr: string;
  };
  ni: string;
  nr: string;
  /** Next message IDs from the task manager: our next request, the peer's next request. */
  ids: { nextOut: number; nextIn: number };
  /** True only for a handover snapshot with no exchange in flight: no resync needed. */
  idsExact: boolean;
  /** The answer to the peer's last request, resent if the peer retransmits it after the restart. */
  lastResponse?: { messageId: number; datagrams: string[] };
  /** Both ends announced IKEV2_MESSAGE_ID_SYNC_SUPPORTED. */
  msgIdSync: boolean;
  establishedAt: number;
  rekeyAt: number;
  expireAt: number;
  lastInboundAt: number;
  initialContactSent: boolean;
  remoteId?: { kind: IdentityKind; text: string; data: string };
  /** Peer name, or null for an SA whose peer was not configured by name. */
  peer: string | null;
  /** Hash of the peer's configuration when this checkpoint was written. */
  peerHash: string | null;
  childSeq: number;
  children: ChildRecord[];
}

export interface BookRecord {
  reqid: number;
  holders: string[];
  trap: boolean;
  policies: PolicySpec[];
}

export interface CheckpointV1 {
  v: 1;
  /** Clock time of the snapshot (ms since the epoch). */
  writtenAt: number;
  host: string;
  /** `handover`: a planned restart's snapshot; `continuous`: written after state changes, may be behind. */
  kind: 'handover' | 'continuous';
  uidSeq: number;
  nextReqid: number;
  /** Peers that already got INITIAL_CONTACT from this host. */
  contacted: string[];
  reqids: { peer: string; child: string; reqid: number }[];
  book: BookRecord[];
  ikeSas: IkeSaRecord[];
}

export type CheckpointErrorCode =
  | 'CHECKPOINT_MISSING'
  | 'CHECKPOINT_CORRUPT'
  | 'CHECKPOINT_VERSION'
  | 'CHECKPOINT_INVALID'
  | 'CHECKPOINT_STALE'
  | 'CHECKPOINT_INSECURE'
  | 'CHECKPOINT_IO';

export class CheckpointError extends CoatiError {
  declare readonly code: CheckpointErrorCode;
  constructor(code: CheckpointErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

// ---- validation (parse, then validate, then act) ----------------------------------

type Obj = Record<string, unknown>;
const bad = (path: string, what: string): never => {
  throw new CheckpointError('CHECKPOINT_INVALID', `checkpoint ${path}: expected ${what}`);
};
const obj = (v: unknown, path: string): Obj =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : bad(path, 'an object');
const arr = (v: unknown, path: string): unknown[] => (Array.isArray(v) ? v : bad(path, 'an array'));
const num = (v: unknown, path: string): number =>
  typeof v === 'number' && Number.isFinite(v) ? v : bad(path, 'a number');
const u32 = (v: unknown, path: string): number =>
  Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffffffff ? (v as number) : bad(path, 'a u32');
const bool = (v: unknown, path: string): boolean => (typeof v === 'boolean' ? v : bad(path, 'a boolean'));
const str = (v: unknown, path: string): string => (typeof v === 'string' ? v : bad(path, 'a string'));
const hex = (v: unknown, path: string, len?: number): string => {
  const s = str(v, path);
  if (!/^([0-9a-f]{2})*$/.test(s) || (len !== undefined && s.length !== len * 2))
    bad(path, len === undefined ? 'hex bytes' : `${len} hex bytes`);
  return s;
};
const oneOf = <T extends string>(v: unknown, path: string, values: readonly T[]): T =>
  values.includes(v as T) ? (v as T) : bad(path, values.join(' | '));
const opt = <T>(v: unknown, f: (v: unknown) => T): T | undefined => (v === undefined ? undefined : f(v));

function endpoint(v: unknown, path: string): Endpoint {
  const o = obj(v, path);
  const port = u32(o.port, `${path}.port`);
  if (port > 65535) bad(`${path}.port`, 'a port');
  return { addr: str(o.addr, `${path}.addr`), port };
}

function encr(v: unknown, path: string): EncrChoice {
  const o = obj(v, path);
  const keyLen = opt(o.keyLen, (x) => u32(x, `${path}.keyLen`));
  return { id: u32(o.id, `${path}.id`), ...(keyLen !== undefined ? { keyLen } : {}) };
}

function ikeSuite(v: unknown, path: string): IkeSuite {
  const o = obj(v, path);
  const integ = opt(o.integ, (x) => u32(x, `${path}.integ`));
  return {
    encr: encr(o.encr, `${path}.encr`),
    prf: u32(o.prf, `${path}.prf`),
    ...(integ !== undefined ? { integ } : {}),
    ke: u32(o.ke, `${path}.ke`),
  };
}

function espSuite(v: unknown, path: string): EspSuite {
  const o = obj(v, path);
  const integ = opt(o.integ, (x) => u32(x, `${path}.integ`));
  const ke = opt(o.ke, (x) => u32(x, `${path}.ke`));
  return {
    encr: encr(o.encr, `${path}.encr`),
    ...(integ !== undefined ? { integ } : {}),
    ...(ke !== undefined ? { ke } : {}),
    esn: bool(o.esn, `${path}.esn`),
  };
}

function tsRecord(v: unknown, path: string): TsRecord {
  const o = obj(v, path);
  const dec = (x: unknown, p: string) => {
    const s = str(x, p);
    return /^\d+$/.test(s) ? s : bad(p, 'a decimal integer');
  };
  return {
    family: oneOf(String(o.family), `${path}.family`, ['4', '6']) === '4' ? 4 : 6,
    proto: u32(o.proto, `${path}.proto`),
    startPort: u32(o.startPort, `${path}.startPort`),
    endPort: u32(o.endPort, `${path}.endPort`),
    start: dec(o.start, `${path}.start`),
    end: dec(o.end, `${path}.end`),
  };
}

function dirKeys(v: unknown, path: string): { encKey: string; integKey: string } {
  const o = obj(v, path);
  return { encKey: hex(o.encKey, `${path}.encKey`), integKey: hex(o.integKey, `${path}.integKey`) };
}

function childRecord(v: unknown, path: string): ChildRecord {
  const o = obj(v, path);
  const replacedBy = opt(o.replacedBy, (x) => str(x, `${path}.replacedBy`));
  return {
    uid: str(o.uid, `${path}.uid`),
    name: str(o.name, `${path}.name`),
    state: oneOf(o.state, `${path}.state`, ['installed', 'rekeyed'] as const),
    reqid: u32(o.reqid, `${path}.reqid`),
    mode: oneOf(o.mode, `${path}.mode`, ['tunnel', 'transport'] as const),
    spiIn: u32(o.spiIn, `${path}.spiIn`),
    spiOut: u32(o.spiOut, `${path}.spiOut`),
    suite: espSuite(o.suite, `${path}.suite`),
    localTs: arr(o.localTs, `${path}.localTs`).map((t, i) => tsRecord(t, `${path}.localTs[${i}]`)),
    remoteTs: arr(o.remoteTs, `${path}.remoteTs`).map((t, i) => tsRecord(t, `${path}.remoteTs[${i}]`)),
    encap: bool(o.encap, `${path}.encap`),
    keysIn: dirKeys(o.keysIn, `${path}.keysIn`),
    keysOut: dirKeys(o.keysOut, `${path}.keysOut`),
    createdAt: num(o.createdAt, `${path}.createdAt`),
    rekeyAt: num(o.rekeyAt, `${path}.rekeyAt`),
    expireAt: num(o.expireAt, `${path}.expireAt`),
    minNonce: hex(o.minNonce, `${path}.minNonce`),
    ...(replacedBy !== undefined ? { replacedBy } : {}),
  };
}

function ikeRecord(v: unknown, path: string): IkeSaRecord {
  const o = obj(v, path);
  const k = obj(o.keys, `${path}.keys`);
  const keyNames = ['skeyseed', 'skD', 'skAi', 'skAr', 'skEi', 'skEr', 'skPi', 'skPr'] as const;
  const keys = Object.fromEntries(keyNames.map((n) => [n, hex(k[n], `${path}.keys.${n}`)])) as IkeSaRecord['keys'];
  const ids = obj(o.ids, `${path}.ids`);
  const nat = obj(o.nat, `${path}.nat`);
  const lastResponse = opt(o.lastResponse, (x) => {
    const r = obj(x, `${path}.lastResponse`);
    return {
      messageId: u32(r.messageId, `${path}.lastResponse.messageId`),
      datagrams: arr(r.datagrams, `${path}.lastResponse.datagrams`).map((d, i) =>
        hex(d, `${path}.lastResponse.datagrams[${i}]`),
      ),
    };
  });
  const remoteId = opt(o.remoteId, (x) => {
    const r = obj(x, `${path}.remoteId`);
    return {
      kind: oneOf(r.kind, `${path}.remoteId.kind`, ['ipv4', 'ipv6', 'fqdn', 'email', 'dn', 'keyid'] as const),
      text: str(r.text, `${path}.remoteId.text`),
      data: hex(r.data, `${path}.remoteId.data`),
    };
  });
  const nullable = (x: unknown, p: string) => (x === null ? null : str(x, p));
  return {
    uid: u32(o.uid, `${path}.uid`),
    state: oneOf(o.state, `${path}.state`, ['established'] as const),
    role: oneOf(o.role, `${path}.role`, ['initiator', 'responder'] as const),
    spiI: hex(o.spiI, `${path}.spiI`, 8),
    spiR: hex(o.spiR, `${path}.spiR`, 8),
    local: endpoint(o.local, `${path}.local`),
    remote: endpoint(o.remote, `${path}.remote`),
    nat: { local: bool(nat.local, `${path}.nat.local`), remote: bool(nat.remote, `${path}.nat.remote`) },
    fragmentation: bool(o.fragmentation, `${path}.fragmentation`),
    suite: ikeSuite(o.suite, `${path}.suite`),
    keys,
    ni: hex(o.ni, `${path}.ni`),
    nr: hex(o.nr, `${path}.nr`),
    ids: { nextOut: u32(ids.nextOut, `${path}.ids.nextOut`), nextIn: u32(ids.nextIn, `${path}.ids.nextIn`) },
    idsExact: bool(o.idsExact, `${path}.idsExact`),
    ...(lastResponse ? { lastResponse } : {}),
    msgIdSync: bool(o.msgIdSync, `${path}.msgIdSync`),
    establishedAt: num(o.establishedAt, `${path}.establishedAt`),
    rekeyAt: num(o.rekeyAt, `${path}.rekeyAt`),
    expireAt: num(o.expireAt, `${path}.expireAt`),
    lastInboundAt: num(o.lastInboundAt, `${path}.lastInboundAt`),
    initialContactSent: bool(o.initialContactSent, `${path}.initialContactSent`),
    ...(remoteId ? { remoteId } : {}),
    peer: nullable(o.peer, `${path}.peer`),
    peerHash: nullable(o.peerHash, `${path}.peerHash`),
    childSeq: u32(o.childSeq, `${path}.childSeq`),
    children: arr(o.children, `${path}.children`).map((c, i) => childRecord(c, `${path}.children[${i}]`)),
  };
}

function policySpec(v: unknown, path: string): PolicySpec {
  const o = obj(v, path);
  const sel = obj(o.selector, `${path}.selector`);
  for (const [i, t] of arr(o.templates, `${path}.templates`).entries()) obj(t, `${path}.templates[${i}]`);
  str(sel.src, `${path}.selector.src`);
  str(sel.dst, `${path}.selector.dst`);
  oneOf(o.dir, `${path}.dir`, ['in', 'out', 'fwd'] as const);
  oneOf(o.action, `${path}.action`, ['allow', 'block'] as const);
  num(o.priority, `${path}.priority`);
  return o as unknown as PolicySpec;
}

/** Validates untrusted data (a parsed checkpoint file) as a `CheckpointV1`; throws `CheckpointError`. */
export function parseCheckpoint(input: unknown): CheckpointV1 {
  const o = obj(input, '(root)');
  if (o.v !== CHECKPOINT_VERSION)
    throw new CheckpointError(
      'CHECKPOINT_VERSION',
      `checkpoint version ${JSON.stringify(o.v)} is not supported (expected ${CHECKPOINT_VERSION})`,
    );
  return {
    v: 1,
    writtenAt: num(o.writtenAt, 'writtenAt'),
    host: str(o.host, 'host'),
    kind: oneOf(o.kind, 'kind', ['handover', 'continuous'] as const),
    uidSeq: u32(o.uidSeq, 'uidSeq'),
    nextReqid: u32(o.nextReqid, 'nextReqid'),
    contacted: arr(o.contacted, 'contacted').map((c, i) => str(c, `contacted[${i}]`)),
    reqids: arr(o.reqids, 'reqids').map((r, i) => {
      const x = obj(r, `reqids[${i}]`);
      return {
        peer: str(x.peer, `reqids[${i}].peer`),
        child: str(x.child, `reqids[${i}].child`),
        reqid: u32(x.reqid, `reqids[${i}].reqid`),
      };
    }),
    book: arr(o.book, 'book').map((b, i) => {
      const x = obj(b, `book[${i}]`);
      return {
        reqid: u32(x.reqid, `book[${i}].reqid`),
        holders: arr(x.holders, `book[${i}].holders`).map((h, j) => str(h, `book[${i}].holders[${j}]`)),
        trap: bool(x.trap, `book[${i}].trap`),
        policies: arr(x.policies, `book[${i}].policies`).map((p, j) => policySpec(p, `book[${i}].policies[${j}]`)),
      };
    }),
    ikeSas: arr(o.ikeSas, 'ikeSas').map((s, i) => ikeRecord(s, `ikeSas[${i}]`)),
  };
}

// ---- peer configuration hash ---------------------------------------------------------

/** A stable hash of a peer's configuration (secrets included, so a changed PSK counts). */
export function peerConfigHash(p: PeerPolicy): string {
  const json = JSON.stringify(p, function (this: unknown, _k, v: unknown) {
    if (typeof v === 'bigint') return v.toString();
    if (v instanceof KeyObject)
      return v.type === 'private'
        ? v.export({ format: 'der', type: 'pkcs8' }).toString('hex')
        : v.export({ format: 'der', type: 'spki' }).toString('hex');
    return v;
  });
  return createHash('sha256').update(json).digest('hex');
}

// ---- snapshot ------------------------------------------------------------------------
