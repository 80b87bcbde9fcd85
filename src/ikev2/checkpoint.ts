/**
 * Checkpoint and resume of IKEv2 state across a daemon restart, so that a
 * restart (planned or a crash) is invisible to traffic: the kernel SAs keep
 * carrying packets, and the new process continues the same IKE SAs with the
 * same keys and message IDs instead of renegotiating (the 2017 fleet-restart
 * postmortem: restarts of the keying daemon disrupted the overlay by themselves).
 *
 * A checkpoint is plain JSON data (keys as hex): it is a secret and is only
 * ever written to the checkpoint file (src/daemon/checkpoint.ts), never logged.
 *
 * Message IDs after a crash. A continuous checkpoint can be behind: exchanges
 * completed after it was written are unknown to the restored SA, so our next
 * request may reuse an ID the peer already answered (it would resend its cached
 * answer to an older request) and the peer's next request may be ahead of the
 * ID we expect (we would ignore it and the peer would declare us dead). So an
 * SA restored from anything but an exact handover snapshot resynchronises first:
 *  - if both ends announced IKEV2_MESSAGE_ID_SYNC_SUPPORTED in IKE_AUTH (every
 *    coati does), with an RFC 6311 INFORMATIONAL exchange at message ID 0 carrying
 *    IKEV2_MESSAGE_ID_SYNC (nonce | next send ID | next expected receive ID);
 *    each end moves its counters forward to the maximum of both views, never
 *    back, so a replayed sync request changes nothing;
 *  - otherwise with a liveness probe at our restored ID (any authenticated
 *    answer, even the peer's cached answer to an older request with that ID,
 *    proves the peer now expects the next one) while we accept the peer's first
 *    request at or ahead of the ID we expect;
 *  - if that fails (no answer, an answer we cannot use), make-before-break: a
 *    fresh IKE SA with INITIAL_CONTACT is negotiated and the old one, whose
 *    kernel SAs carry traffic meanwhile, is removed once the new Child SA is
 *    installed. Bumping our outbound ID blindly is not an option: RFC 7296
 *    peers (strongSwan) drop requests outside their window of one.
 */
import { createHash, KeyObject } from 'node:crypto';
import { hostname } from 'node:os';
import { DirectionKeys, IkeSaKeys } from '../crypto/ikev2/keys.js';
import { CoatiError } from '../errors.js';
import type { PolicySpec } from '../kernel/types.js';
import type { Identity, IdentityKind } from '../sa/identity.js';
import type { PeerPolicy } from '../sa/policy.js';
import type { EncrChoice, EspSuite, IkeSuite } from '../sa/proposal.js';
import type { TrafficSelector } from '../sa/traffic-selector.js';
import { EXCHANGE, type Payload } from '../wire/ikev2/index.js';
import type { ChildSa } from './child-sa.js';
import type { Endpoint } from './env.js';
import { IkeSa } from './ike-sa.js';
import type { Ikev2Manager } from './manager.js';
import { findNotify, N, P } from './payloads.js';
import type { PeerRuntime } from './peer-runtime.js';
import { MessageProtector } from './protect.js';
import type { RetransmitSchedule } from './retransmit.js';
import type { InboundMessage, InitiatorTask, OutboundMessage, TaskOutcome } from './task-manager.js';

// ---- format ----------------------------------------------------------------------

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

/** What the manager exposes to this file (and to nothing else). */
export interface ManagerInternals {
  peers: Map<string, PeerRuntime>;
  contacted: Set<string>;
  uidSeq: number;
  nextReqid: number;
  bumpCounters(uid: number, reqid: number): void;
  /** Registers a rebuilt SA in the SPI table. */
  adopt(sa: IkeSa): void;
  halfOpen(): number;
  setAcceptingInit(on: boolean): void;
  /** Stops processing inbound datagrams (after a handover snapshot). */
  freeze(): void;
  setHooks(h: ResumeHooks): void;
}

const toTs = (t: TrafficSelector): TsRecord => ({
  family: t.family,
  proto: t.proto,
  startPort: t.startPort,
  endPort: t.endPort,
  start: t.start.toString(),
  end: t.end.toString(),
});
const fromTs = (t: TsRecord): TrafficSelector => ({ ...t, start: BigInt(t.start), end: BigInt(t.end) });
const h = (b: Buffer) => b.toString('hex');
const b = (s: string): Buffer<ArrayBuffer> => Buffer.from(s, 'hex');

function childRec(c: ChildSa): ChildRecord | undefined {
  if (c.state === 'creating' || c.state === 'destroyed') return undefined;
  return {
    uid: c.uid,
    name: c.name,
    state: c.state === 'installed' || c.state === 'rekeying' ? 'installed' : 'rekeyed',
    reqid: c.reqid,
    mode: c.mode,
    spiIn: c.spiIn,
    spiOut: c.spiOut,
    suite: c.suite,
    localTs: c.localTs.map(toTs),
    remoteTs: c.remoteTs.map(toTs),
    encap: c.encap,
    keysIn: { encKey: h(c.keysIn.encKey), integKey: h(c.keysIn.integKey) },
    keysOut: { encKey: h(c.keysOut.encKey), integKey: h(c.keysOut.integKey) },
    createdAt: c.createdAt,
    rekeyAt: c.rekeyAt,
    expireAt: c.expireAt,
    minNonce: h(c.minNonce),
    ...(c.replacedBy !== undefined ? { replacedBy: c.replacedBy } : {}),
  };
}

function ikeRec(sa: IkeSa, kind: CheckpointV1['kind']): IkeSaRecord | undefined {
  if (sa.state !== 'established' && sa.state !== 'rekeying') return undefined;
  const { suite, keys } = sa;
  if (!suite || !keys) return undefined;
  const last = sa.tm.cachedResponse;
  return {
    uid: sa.uid,
    state: 'established',
    role: sa.role,
    spiI: h(sa.spiI),
    spiR: h(sa.spiR),
    local: { ...sa.local },
    remote: { ...sa.remote },
    nat: { ...sa.nat },
    fragmentation: sa.fragmentation,
    suite,
    keys: {
      skeyseed: h(keys.skeyseed),
      skD: h(keys.skD),
      skAi: h(keys.skAi),
      skAr: h(keys.skAr),
      skEi: h(keys.skEi),
      skEr: h(keys.skEr),
      skPi: h(keys.skPi),
      skPr: h(keys.skPr),
    },
    ni: h(sa.ni),
    nr: h(sa.nr),
    ids: sa.tm.ids,
    // A request in flight (or a rekey of the SA) may complete at the peer without us knowing.
    idsExact: kind === 'handover' && !sa.tm.busy && sa.state === 'established',
    ...(last ? { lastResponse: { messageId: last.messageId, datagrams: last.datagrams.map(h) } } : {}),
    msgIdSync: sa.peerMsgIdSync,
    establishedAt: sa.establishedAt,
    rekeyAt: sa.rekeyAt,
    expireAt: sa.expireAt,
    lastInboundAt: sa.lastInboundAt,
    initialContactSent: sa.initialContactSent,
    ...(sa.remoteId ? { remoteId: { kind: sa.remoteId.kind, text: sa.remoteId.text, data: h(sa.remoteId.data) } } : {}),
    peer: sa.peer?.name ?? null,
    peerHash: sa.peer ? peerConfigHash(sa.peer) : null,
    childSeq: sa.childCounter,
    children: [...sa.children.values()].map(childRec).filter((c): c is ChildRecord => c !== undefined),
  };
}

export function snapshotManager(
  mgr: Ikev2Manager,
  int: ManagerInternals,
  kind: CheckpointV1['kind'],
  host = hostname(),
): CheckpointV1 {
  const reqids: CheckpointV1['reqids'] = [];
  for (const [peer, rt] of int.peers) for (const [child, reqid] of rt.reqids) reqids.push({ peer, child, reqid });
  return {
    v: 1,
    writtenAt: mgr.env.clock.now(),
    host,
    kind,
    uidSeq: int.uidSeq,
    nextReqid: int.nextReqid,
    contacted: [...int.contacted],
    reqids,
    book: mgr.book.snapshot().map((e) => ({ ...e, policies: e.policies.map((p) => ({ ...p })) })),
    ikeSas: mgr
      .allSas()
      .map((sa) => ikeRec(sa, kind))
      .filter((r): r is IkeSaRecord => r !== undefined),
  };
}

// ---- planned handover ------------------------------------------------------------

/**
 * Planned restart: new IKE_SA_INIT requests go unanswered (the initiator
 * retransmits to the next process), exchanges in flight get up to `maxWaitMs`
 * to finish, then inbound processing stops and the state is snapshotted.
 * Call `close({ keepKernel: true })` right after.
 */
export async function prepareHandover(
  mgr: Ikev2Manager,
  int: ManagerInternals,
  maxWaitMs: number,
): Promise<CheckpointV1> {
  int.setAcceptingInit(false);
  const clock = mgr.env.clock;
  const until = clock.now() + maxWaitMs;
  const busy = () =>
    int.halfOpen() > 0 ||
    mgr.allSas().some((sa) => sa.tm.busy || sa.tm.queued.length > 0 || sa.queue.pending > 0 || sa.state === 'rekeying');
  while (busy() && clock.now() < until) {
    await new Promise<void>((r) => clock.setTimer(Math.min(50, until - clock.now()), r));
  }
  int.freeze();
  const cp = snapshotManager(mgr, int, 'handover');
  mgr.env.emit({
    type: 'checkpoint.handover',
    ikeSas: cp.ikeSas.length,
    inexact: cp.ikeSas.filter((s) => !s.idsExact).length,
  });
  return cp;
}

// ---- restore -------------------------------------------------------------------------

export interface RestoreOptions {
  /** Check each Child SA's kernel SAs (both directions) and drop children whose SAs are gone. Default true. */
  verifyKernel?: boolean;
  /** A checkpoint older than this is stale (default: the longest configured IKE SA lifetime). */
  maxAgeMs?: number;
}

export interface RestoreReport {
  /** Why nothing was restored (missing, corrupt, stale ...), or undefined. */
  skipped?: { code: CheckpointErrorCode; message: string };
  ikeSas: number;
  children: number;
  /** Children whose kernel SAs were gone (renegotiated over their IKE SA). */
  droppedChildren: number;
  /** IKE SAs resynchronising message IDs (crash checkpoint). */
  resyncing: number;
  /** IKE SAs whose peer configuration changed (re-authenticated make-before-break). */
  reauth: string[];
  /** IKE SAs of peers no longer configured (deleted through the peer). */
  removed: string[];
  /** IKE SAs not restored (expired while down). */
  expired: number;
}

/** Hooks the manager calls while restored SAs settle. */
export interface ResumeHooks {
  /** True when the failure of a resynchronising SA is handled here (no teardown). */
  onFailure(sa: IkeSa, reason: string, phase: 'establish' | 'liveness' | 'exchange'): boolean;
  onChildInstalled(sa: IkeSa): void;
}

type Fate = 'resync' | 'reauth' | 'remove';

/** Bookkeeping of restored SAs until they are in sync (or replaced). */
class Resumer implements ResumeHooks {
  /** Restored SAs whose message IDs are being resynchronised, with what follows. */
  readonly pending = new Map<IkeSa, Set<Fate>>();
  /** Old SA per peer name, replaced make-before-break once a new Child SA is installed. */
  readonly replacing = new Map<string, IkeSa>();

  constructor(
    private readonly mgr: Ikev2Manager,
    private readonly int: ManagerInternals,
  ) {}

  onFailure(sa: IkeSa, reason: string, phase: string): boolean {
    if (phase === 'establish') return false;
    const fates = this.pending.get(sa);
    if (!fates) return [...this.replacing.values()].includes(sa); // old SA waiting for its replacement
    this.pending.delete(sa);
    this.mgr.env.log.warn('message ID resynchronisation failed', { peer: sa.peerName, sa: sa.label, reason });
    if (fates.has('remove') || !sa.peer) {
      void sa.queue.run(() => sa.destroy('peer removed from configuration (unsynchronised)'));
      return true;
    }
    this.replace(sa, 'message IDs out of sync after restart');
    return true;
  }

  onChildInstalled(fresh: IkeSa): void {
    const name = fresh.peer?.name;
    const old = name ? this.replacing.get(name) : undefined;
    if (!name || !old || old === fresh) return;
    this.replacing.delete(name);
    this.mgr.env.emit({ type: 'checkpoint.replaced', peer: name, old: old.label, sa: fresh.label });
    void old.queue.run(() => old.destroy(`replaced by ${fresh.label}`));
  }

  /** Make-before-break: a new IKE SA (INITIAL_CONTACT makes the peer drop its copy of the old one). */
  replace(old: IkeSa, why: string): void {
    const name = old.peer?.name;
    if (!name || this.replacing.has(name)) return;
    this.replacing.set(name, old);
    this.int.contacted.delete(name);
    this.mgr.env.emit({ type: 'checkpoint.replacing', peer: name, sa: old.label, reason: why });
    this.mgr.initiate(name).catch((err) => {
      this.replacing.delete(name);
      this.mgr.env.log.warn('replacement IKE SA failed to start', { peer: name, error: String(err) });
    });
  }

  /** The SA is in sync: run what was waiting for it. */
  synced(sa: IkeSa): void {
    const fates = this.pending.get(sa);
    this.pending.delete(sa);
    this.mgr.env.emit({ type: 'msgid.synced', peer: sa.peerName, sa: sa.label, ...sa.tm.ids });
    if (fates) void afterSync(this, sa, fates);
  }
}

async function afterSync(r: Resumer, sa: IkeSa, fates: Set<Fate>): Promise<void> {
  if (fates.has('remove')) {
    await sa.queue.run(() => sa.delete('peer removed from configuration'));
  } else if (fates.has('reauth')) {
    r.replace(sa, 'peer configuration changed');
  }
}

/** RFC 6311 IKEV2_MESSAGE_ID_SYNC data: nonce(4) | next send request ID(4) | next expected receive ID(4). */
function syncData(nonce: Buffer, ids: { nextOut: number; nextIn: number }): Buffer {
  const d = Buffer.alloc(12);
  nonce.copy(d, 0, 0, 4);
  d.writeUInt32BE(ids.nextOut >>> 0, 4);
  d.writeUInt32BE(ids.nextIn >>> 0, 8);
  return d;
}

const SYNC_SCHEDULE: RetransmitSchedule = { baseMs: 1000, factor: 2, maxTimeoutMs: 4000, tries: 3, jitter: 0.1 };

/** Initiator of an RFC 6311 message-ID sync (message ID 0, outside the window). */
class MessageIdSyncTask implements InitiatorTask<Payload> {
  readonly name = 'msgid-sync';
  readonly messageId = 0;
  readonly retransmit = SYNC_SCHEDULE;
  private nonce: Buffer = Buffer.alloc(4);
  constructor(
    private readonly sa: IkeSa,
    private readonly r: Resumer,
  ) {}
  build(): OutboundMessage<Payload> {
    this.nonce = this.sa.env.random(4);
    return {
      exchange: EXCHANGE.INFORMATIONAL,
      payloads: [P.notify(N.IKEV2_MESSAGE_ID_SYNC, syncData(this.nonce, this.sa.tm.ids))],
    };
  }
  onResponse(msg: InboundMessage<Payload>): TaskOutcome {
    const data = findNotify(msg.payloads, N.IKEV2_MESSAGE_ID_SYNC)?.data;
    if (
      msg.exchange !== EXCHANGE.INFORMATIONAL ||
      !data ||
      data.length !== 12 ||
      !data.subarray(0, 4).equals(this.nonce)
    ) {
      // Not the answer to our sync (e.g. a cached answer to an old request with ID 0).
      this.r.onFailure(this.sa, 'unusable answer to IKEV2_MESSAGE_ID_SYNC', 'exchange');
      return { kind: 'failed', reason: 'unusable message ID sync answer' };
    }
    // The peer's next request is our next inbound; what it expects next is our next outbound.
    this.sa.tm.resync({ nextOut: data.readUInt32BE(8), nextIn: data.readUInt32BE(4) });
    this.r.synced(this.sa);
    return { kind: 'done' };
  }
  onAbort(): void {}
}

/** Without RFC 6311: any authenticated answer at our restored ID proves the peer expects the next one. */
class ResyncProbeTask implements InitiatorTask<Payload> {
  readonly name = 'msgid-probe';
  readonly retransmit = SYNC_SCHEDULE;
  constructor(
    private readonly sa: IkeSa,
    private readonly r: Resumer,
  ) {}
  build(): OutboundMessage<Payload> {
    return { exchange: EXCHANGE.INFORMATIONAL, payloads: [] };
  }
  onResponse(): TaskOutcome {
    this.r.synced(this.sa);
    return { kind: 'done' };
  }
  onAbort(): void {}
}

/** Responder side of RFC 6311 sync; called by the IKE SA before the window check. */
export async function answerMessageIdSync(sa: IkeSa, msg: InboundMessage<Payload>): Promise<void> {
  const data = findNotify(msg.payloads, N.IKEV2_MESSAGE_ID_SYNC)?.data;
  const drop = (reason: string) =>
    sa.env.emit({ type: 'packet.dropped', peer: sa.peerName, reason, from: `${sa.remote.addr}:${sa.remote.port}` });
  if (!sa.peerMsgIdSync) return drop('IKEV2_MESSAGE_ID_SYNC without IKEV2_MESSAGE_ID_SYNC_SUPPORTED');
  if (data?.length !== 12 || !sa.protector) return drop('malformed IKEV2_MESSAGE_ID_SYNC');
  if (sa.state !== 'established' && sa.state !== 'rekeying') return drop('IKEV2_MESSAGE_ID_SYNC on an SA not up');
  // Their next request is what we expect next; what they expect is our next request. Max of both views.
  sa.tm.resync({ nextOut: data.readUInt32BE(8), nextIn: data.readUInt32BE(4) });
  const ids = sa.tm.ids;
  const datagrams = sa.protector.seal(
    {
      spiI: sa.spiI,
      spiR: sa.spiR,
      exchangeType: EXCHANGE.INFORMATIONAL,
      messageId: 0,
      initiator: sa.isInitiator,
      response: true,
    },
    [P.notify(N.IKEV2_MESSAGE_ID_SYNC, syncData(data, ids))],
    0,
  );
  sa.sendDatagrams(datagrams);
  sa.env.emit({ type: 'msgid.synced', peer: sa.peerName, sa: sa.label, by: 'peer', ...ids });
}

function childFrom(r: ChildRecord): ChildSa {
  return {
    uid: r.uid,
    name: r.name,
    state: 'creating',
    reqid: r.reqid,
    mode: r.mode,
    spiIn: r.spiIn,
    spiOut: r.spiOut,
    suite: r.suite,
    localTs: r.localTs.map(fromTs),
    remoteTs: r.remoteTs.map(fromTs),
    encap: r.encap,
    keysIn: new DirectionKeys(b(r.keysIn.encKey), b(r.keysIn.integKey)),
    keysOut: new DirectionKeys(b(r.keysOut.encKey), b(r.keysOut.integKey)),
    createdAt: r.createdAt,
    rekeyAt: r.rekeyAt,
    expireAt: r.expireAt,
    minNonce: b(r.minNonce),
    ...(r.replacedBy !== undefined ? { replacedBy: r.replacedBy } : {}),
    timers: {},
  };
}

function skipped(mgr: Ikev2Manager, code: CheckpointErrorCode, message: string): RestoreReport {
  mgr.env.log.warn(`checkpoint not used, renegotiating: ${message}`, { code });
  mgr.env.emit({ type: 'checkpoint.skipped', code, reason: message });
  return {
    skipped: { code, message },
    ikeSas: 0,
    children: 0,
    droppedChildren: 0,
    resyncing: 0,
    reauth: [],
    removed: [],
    expired: 0,
  };
}

/** Rebuilds IKE and Child SAs from a checkpoint; see the file comment. Never throws for a bad checkpoint. */
export async function restoreCheckpoint(
  mgr: Ikev2Manager,
  int: ManagerInternals,
  input: unknown,
  opts: RestoreOptions,
): Promise<RestoreReport> {
  if (input === undefined || input === null)
    return skipped(mgr, 'CHECKPOINT_MISSING', 'no checkpoint (first start or cleared)');
  let cp: CheckpointV1;
  try {
    cp = parseCheckpoint(input);
  } catch (err) {
    if (err instanceof CheckpointError) return skipped(mgr, err.code, err.message);
    return skipped(mgr, 'CHECKPOINT_INVALID', `checkpoint rejected: ${String(err)}`);
  }
  const env = mgr.env;
  const now = env.clock.now();
  const lifetimes = [...int.peers.values()].map((rt) => rt.policy.ikeLifetimeMs);
  const maxAge = opts.maxAgeMs ?? (lifetimes.length ? Math.max(...lifetimes) : 4 * 3600_000);
  if (now - cp.writtenAt > maxAge)
    return skipped(
      mgr,
      'CHECKPOINT_STALE',
      `checkpoint is ${Math.round((now - cp.writtenAt) / 1000)} s old (limit ${Math.round(maxAge / 1000)} s)`,
    );
  try {
    return await rebuild(mgr, int, cp, opts.verifyKernel ?? true);
  } catch (err) {
    // A bug or a kernel failure half-way: drop what was rebuilt (kernel untouched), renegotiate.
    for (const sa of mgr.allSas()) await sa.destroy('checkpoint restore failed', { keepKernel: true });
    return skipped(mgr, 'CHECKPOINT_INVALID', `checkpoint restore failed: ${String(err)}`);
  }
}

async function rebuild(
  mgr: Ikev2Manager,
  int: ManagerInternals,
  cp: CheckpointV1,
  verifyKernel: boolean,
): Promise<RestoreReport> {
  const env = mgr.env;
  const now = env.clock.now();
  const report: RestoreReport = {
    ikeSas: 0,
    children: 0,
    droppedChildren: 0,
    resyncing: 0,
    reauth: [],
    removed: [],
    expired: 0,
  };
  const resumer = new Resumer(mgr, int);
  int.setHooks(resumer);

  let maxUid = cp.uidSeq;
  let maxReqid = cp.nextReqid;
  for (const r of cp.reqids) {
    int.peers.get(r.peer)?.reqids.set(r.child, r.reqid);
    maxReqid = Math.max(maxReqid, r.reqid + 1);
  }
  for (const name of cp.contacted) if (int.peers.has(name)) int.contacted.add(name);
  const bookByReqid = new Map(cp.book.map((e) => [e.reqid, e]));

  const followUps: (() => Promise<void>)[] = [];
  for (const rec of cp.ikeSas) {
    maxUid = Math.max(maxUid, rec.uid);
    for (const c of rec.children) maxReqid = Math.max(maxReqid, c.reqid + 1);
    if (rec.expireAt <= now) {
      report.expired++;
      env.log.info('checkpointed IKE SA expired while down', { peer: rec.peer ?? '?' });
      continue;
    }
    const rt = rec.peer !== null ? int.peers.get(rec.peer) : undefined;
    const policy = rt?.policy;
    const sa = new IkeSa(mgr, rec.uid, rec.role, b(rec.spiI), b(rec.spiR), rec.local, rec.remote, policy);
    const keys = new IkeSaKeys(
      b(rec.keys.skeyseed),
      b(rec.keys.skD),
      b(rec.keys.skAi),
      b(rec.keys.skAr),
      b(rec.keys.skEi),
      b(rec.keys.skEr),
      b(rec.keys.skPi),
      b(rec.keys.skPr),
    );
    sa.suite = rec.suite;
    sa.keys = keys;
    sa.protector = new MessageProtector(rec.suite, keys, rec.role === 'initiator', env.random);
    sa.ni = b(rec.ni);
    sa.nr = b(rec.nr);
    sa.nat = { ...rec.nat };
    sa.fragmentation = rec.fragmentation;
    sa.initialContactSent = rec.initialContactSent;
    sa.peerMsgIdSync = rec.msgIdSync;
    if (rec.remoteId) {
      const id: Identity = { kind: rec.remoteId.kind, text: rec.remoteId.text, data: b(rec.remoteId.data) };
      sa.remoteId = id;
    }
    if (policy) sa.responderProposals = policy.ikeProposals;
    sa.establishedAt = rec.establishedAt;
    sa.lastInboundAt = rec.lastInboundAt;
    sa.rekeyAt = rec.rekeyAt;
    sa.expireAt = rec.expireAt;
    const needSync = !rec.idsExact;
    sa.tm.resume({
      nextOut: rec.ids.nextOut,
      nextIn: rec.ids.nextIn,
      ...(rec.lastResponse
        ? { lastResponse: { messageId: rec.lastResponse.messageId, datagrams: rec.lastResponse.datagrams.map(b) } }
        : {}),
      acceptAhead: needSync && !rec.msgIdSync,
    });
    sa.transition('established', `restored from ${cp.kind} checkpoint`);
    int.adopt(sa);
    report.ikeSas++;

    // Child SAs: adopt those whose kernel SAs are still there.
    const dropped: ChildSa[] = [];
    const superseded: ChildSa[] = [];
    for (const cr of rec.children) {
      const c = childFrom(cr);
      let present = cr.expireAt > now;
      if (present && verifyKernel) {
        const [inb, out] = await Promise.all([
          env.kernel.getSa({ dst: sa.local.addr, spi: c.spiIn, proto: 'esp' }).catch(() => undefined),
          env.kernel.getSa({ dst: sa.remote.addr, spi: c.spiOut, proto: 'esp' }).catch(() => undefined),
        ]);
        present = !!inb && !!out && inb.reqid === c.reqid && out.reqid === c.reqid;
      }
      sa.transitionChild(c, 'installed', 'restored from checkpoint');
      if (!present) {
        dropped.push(c);
        report.droppedChildren++;
        env.emit({ type: 'checkpoint.child_gone', peer: sa.peerName, child: c.name, spiIn: c.spiIn.toString(16) });
        continue;
      }
      sa.children.set(c.uid, c);
      const entry = bookByReqid.get(c.reqid);
      if (entry) mgr.book.adopt(c.reqid, entry.policies, { holder: c.uid });
      if (cr.state === 'rekeyed') {
        sa.transitionChild(c, 'rekeyed', 'restored superseded');
        superseded.push(c);
      } else {
        sa.scheduleChildTimers(c);
      }
      report.children++;
    }
    sa.resumeTimers(rec.childSeq);

    const fates = new Set<Fate>();
    if (!policy) {
      fates.add('remove');
      report.removed.push(rec.peer ?? sa.label);
    } else if (rec.peerHash !== peerConfigHash(policy)) {
      fates.add('reauth');
      report.reauth.push(policy.name);
    }
    if (needSync) {
      report.resyncing++;
      resumer.pending.set(sa, fates);
      followUps.push(() =>
        sa.tm.enqueue(rec.msgIdSync ? new MessageIdSyncTask(sa, resumer) : new ResyncProbeTask(sa, resumer), true),
      );
    } else if (fates.size) {
      followUps.push(() => afterSync(resumer, sa, fates));
    }
    // Kernel SAs gone (a reboot): renegotiate the children over this IKE SA, and tell the peer.
    if (!fates.has('remove')) {
      const live = new Set([...sa.children.values()].filter((c) => c.state === 'installed').map((c) => c.name));
      for (const name of new Set(dropped.map((c) => c.name)))
        if (!live.has(name)) followUps.push(() => sa.queue.run(() => sa.createChild(name)));
    }
    if (dropped.length || superseded.length)
      followUps.push(() => sa.queue.run(() => sa.deleteChildren([...dropped, ...superseded])));
  }

  // Trap policies: still in the kernel unless it rebooted; re-learned (or re-added when gone).
  const inKernel = verifyKernel ? await env.kernel.listPolicies().catch(() => undefined) : undefined;
  const pkey = (p: PolicySpec) => `${p.dir}|${p.selector.src}|${p.selector.dst}|${p.selector.proto ?? 0}`;
  const present = inKernel ? new Set(inKernel.map(pkey)) : undefined;
  for (const e of cp.book) {
    if (!e.trap) continue;
    const owner = cp.reqids.find((r) => r.reqid === e.reqid);
    if (!owner || !int.peers.has(owner.peer)) continue;
    for (const p of e.policies)
      if (present && !present.has(pkey(p))) await env.kernel.addPolicy(p).catch(() => undefined);
    mgr.book.adopt(e.reqid, e.policies, { trap: true });
  }

  int.bumpCounters(maxUid, maxReqid);
  env.emit({ type: 'checkpoint.restored', kind: cp.kind, ...report, reauth: report.reauth.length });
  env.log.info('restored IKEv2 state from checkpoint', {
    kind: cp.kind,
    ikeSas: report.ikeSas,
    children: report.children,
    droppedChildren: report.droppedChildren,
    resyncing: report.resyncing,
  });
  for (const f of followUps) void f();
  return report;
}
