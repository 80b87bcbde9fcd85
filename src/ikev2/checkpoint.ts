import { hostname } from 'node:os';
import { DirectionKeys, IkeSaKeys } from '../crypto/ikev2/keys.js';
import type { PolicySpec } from '../kernel/types.js';
import type { Identity } from '../sa/identity.js';
import type { TrafficSelector } from '../sa/traffic-selector.js';
import {
  CheckpointError,
  type CheckpointErrorCode,
  type CheckpointV1,
  type ChildRecord,
  type IkeSaRecord,
  parseCheckpoint,
  peerConfigHash,
  type TsRecord,
} from './checkpoint-format.js';
import type { ChildSa } from './child-sa.js';
import { IkeSa } from './ike-sa.js';
import type { Ikev2Manager } from './manager.js';
import { MessageIdSyncTask, ResyncProbeTask } from './msgid-sync.js';
import type { PeerRuntime } from './peer-runtime.js';
import { MessageProtector } from './protect.js';

export * from './checkpoint-format.js';
export { answerMessageIdSync } from './msgid-sync.js';

/** What the manager exposes to this file (and to nothing else). */
export interface ManagerInternals {
  peers: Map<string, PeerRuntime>;
  contacted: Set<string>;
  uidSeq: number;
  nextReqid: number;
  bumpCounters(uid: number, reqid: number): void;
  /** A reqid from the checkpoint goes back to its peer's child (and into the owner index). */
  adoptReqid(peer: string, child: string, reqid: number): void;
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
export class Resumer implements ResumeHooks {
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
    // The peer already re-established with this process (it had dropped the old SA, e.g. declared us
    // dead): that SA is the relationship. A replacement with INITIAL_CONTACT would make the peer
    // purge it, and the crossing duplicate resolution would tear down the other one.
    const current = this.mgr.established(name).find((sa) => sa !== old && !this.pending.has(sa));
    if (current) {
      this.mgr.env.emit({ type: 'checkpoint.replaced', peer: name, old: old.label, sa: current.label });
      void old.queue.run(() => old.destroy(`superseded by ${current.label}`));
      return;
    }
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
    int.adoptReqid(r.peer, r.child, r.reqid);
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
