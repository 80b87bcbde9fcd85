import { type ChildSa, destroyChildSecrets, spiHex, uninstallChild } from '../ikev2/child-sa.js';
import type { Endpoint, EngineEnv } from '../ikev2/env.js';
import { localIdentity } from '../ikev2/exchanges/auth-pubkey.js';
import { type PeerRuntime, restartBackoff } from '../ikev2/peer-runtime.js';
import { PolicyBook } from '../ikev2/policy-book.js';
import { type Identity, sameIdentity } from '../sa/identity.js';
import { followNatMapping } from '../sa/ike-sa-common.js';
import { PeerSupervisor } from '../sa/peer-supervision.js';
import type { ChildPolicy, PeerPolicy } from '../sa/policy.js';
import type { IkeProposalSpec } from '../sa/proposal.js';
import { pollUntil, type Timer } from '../util/clock.js';
import type { InitiationGate } from '../util/paced.js';
import { MalformedMessageError } from '../wire/errors.js';
import {
  decodeIsakmpHeader,
  decodeIsakmpMessage,
  type IsakmpHeader,
  type IsakmpMessage,
  MAIN_MODE,
  V1ExchangeType,
} from '../wire/ikev1/index.js';
import { onAggressive, respondAggressive1, startAggressive } from './aggressive.js';
import { FALLBACK_GRACES, Ikev1Duplicates, pairRank } from './duplicates.js';
import {
  confirmLostState,
  deleteChildren,
  invalidCookieNotify,
  onInformational,
  probe,
  sendIsakmpDelete,
} from './informational.js';
import { IsakmpSa, type IsakmpSaHost, identityKey, type PskGroup } from './isakmp-sa.js';
import { onMainMode, respondMainMode1, startMainMode } from './main-mode.js';
import { authMethodFor } from './proposals.js';
import { dropPendingQuickModes, initiatingQuickMode, onQuickMode, startQuickMode } from './quick-mode.js';

export interface V1ManagerLimits {
  halfOpenTimeoutMs: number;
  halfOpenPerAddress: number;
  reqidBase: number;
  /** Delay before a crossing-streams duplicate is deleted (the survivor carries traffic first). */
  duplicateGraceMs: number;
  /**
   * How long a phase 2 pair of an ISAKMP SA purged on INITIAL-CONTACT stays in the
   * kernel waiting for its replacement (the peer's new Quick Mode) before it goes anyway.
   */
  initialContactGraceMs: number;
  /** INVALID-COOKIE answers to encrypted messages for unknown ISAKMP SAs, per second (all sources). */
  invalidCookiePerSecond: number;
  /** How long the R-U-THERE-ACK may take after the peer said INVALID-COOKIE for an SA we hold. */
  lostStateConfirmMs: number;
}

export const DEFAULT_V1_LIMITS: V1ManagerLimits = {
  halfOpenTimeoutMs: 30_000,
  halfOpenPerAddress: 200,
  reqidBase: 0xc0a78001,
  duplicateGraceMs: 2000,
  initialContactGraceMs: 20_000,
  invalidCookiePerSecond: 20,
  lostStateConfirmMs: 1000,
};

/**
 * A phase 2 pair of an ISAKMP SA purged on INITIAL-CONTACT: IKE forgot it, its kernel SAs
 * and policies stay until a new pair of the same child is installed (make-before-break;
 * the restarted peer's kernel usually still has the other half) or the grace period ends.
 */
interface PurgedPair {
  /** The purged ISAKMP SA it belonged to (endpoints, events). */
  sa: IsakmpSa;
  child: ChildSa;
  timer: Timer;
}

const hex = (b: Buffer) => b.toString('hex');
const ZERO = Buffer.alloc(8);

/** How long `replace` waits, once the new pairs are in, before it deletes the old SAs. */
const REPLACE_SETTLE_MS = 1000;

/**
 * Owns every IKEv1 (ISAKMP) SA: the receive path, the SA tables, peers'
 * runtime state and what follows failures. Same outward shape as
 * Ikev2Manager so the daemon can route by the ISAKMP major version.
 */
export class Ikev1Manager implements IsakmpSaHost {
  readonly book: PolicyBook;
  private readonly byCookies = new Map<string, IsakmpSa>();
  /** Our initiator SAs until the responder cookie is known. */
  private readonly byInitiatorCookie = new Map<string, IsakmpSa>();
  /** Responder SAs by initiator cookie and source, for retransmitted first messages. */
  private readonly halfOpen = new Map<string, IsakmpSa>();
  /** Each half-open SA's key in `halfOpen` and the address it counts against. */
  private readonly halfOpenKey = new Map<IsakmpSa, { key: string; addr: string }>();
  /** Half-open SAs per source address (the per-address limit). */
  private readonly halfOpenPerAddr = new Map<string, number>();
  /**
   * What a responder's first message needs, per configured remote address ('*': any
   * other source), built once per config change so that a start-up herd from one
   * address does not scan (and JSON-encode) every peer per handshake.
   */
  private readonly responderIndex = new Map<
    string,
    {
      candidates: PeerPolicy[];
      specs: IkeProposalSpec[];
      methods: number[];
      lifetimeMs: number;
      /** PSK candidates grouped by key and indexed by identity (Main Mode 5), built on first use. */
      pskGroups?: PskGroup[];
      /** The first candidate per identity (Aggressive Mode), built on first use. */
      byId?: Map<string, PeerPolicy>;
    }
  >();
  private configuredAddrs: Set<string> | undefined;
  /** SAs per peer name, so that `sasOf` does not scan every SA (several calls per handshake). */
  private readonly byPeer = new Map<string, Set<IsakmpSa>>();
  /** SAs per authenticated remote identity (`identityKey`): INITIAL-CONTACT looks only there. */
  private readonly byRemoteId = new Map<string, Set<IsakmpSa>>();
  /** Peers' runtime state, dead-peer actions, retries, traps (shared with IKEv2). */
  private readonly sup: PeerSupervisor;
  /** Pairs of ISAKMP SAs dropped because the peer lost its state, per peer name, until replaced. */
  private readonly purged = new Map<string, PurgedPair[]>();
  /** INVALID-COOKIE answers sent in the current one-second window. */
  private invalidCookieWindow = { at: -Infinity, count: 0 };
  private uidSeq = 0;
  private readonly limits: V1ManagerLimits;
  private readonly duplicates: Ikev1Duplicates;

  constructor(
    readonly env: EngineEnv,
    limits: Partial<V1ManagerLimits> = {},
    book?: PolicyBook,
  ) {
    this.limits = { ...DEFAULT_V1_LIMITS, ...limits };
    this.book = book ?? new PolicyBook(env.kernel);
    // Stopping (refuseNewSas) gates every initiation of the supervisor's own.
    this.sup = new PeerSupervisor(this, {
      version: 1,
      reqidBase: this.limits.reqidBase,
      stopping: () => this.refusing,
    });
    this.duplicates = new Ikev1Duplicates(this, this.limits.duplicateGraceMs);
  }

  // ---- configuration -------------------------------------------------------

  setPeer(policy: PeerPolicy): void {
    this.sup.setPolicy(policy);
    this.configChanged();
  }

  private get peers(): Map<string, PeerRuntime> {
    return this.sup.peers;
  }

  private configChanged(): void {
    this.responderIndex.clear();
    this.configuredAddrs = undefined;
  }

  /** The responder's lookups for a first message from `addr` (cached until the next config change). */
  private responderView(addr: string) {
    this.configuredAddrs ??= new Set(
      [...this.peers.values()].filter((r) => r.policy.version === 1).map((r) => r.policy.remoteAddress),
    );
    const key = this.configuredAddrs.has(addr) ? addr : '*';
    let v = this.responderIndex.get(key);
    if (v) return v;
    const all = [...this.peers.values()].map((r) => r.policy).filter((p) => p.version === 1);
    const exact = all.filter((p) => p.remoteAddress === addr);
    const candidates = [...exact, ...all.filter((p) => p.remoteAddress !== addr)];
    v = {
      candidates,
      specs: uniqueSpecs((exact.length ? exact : candidates).map((p) => p.ikeProposals)),
      methods: [...new Set(candidates.map((p) => authMethodFor(p.auth)))],
      lifetimeMs: Math.max(...candidates.map((p) => p.ikeLifetimeMs), 0) || 3600_000,
    };
    this.responderIndex.set(key, v);
    return v;
  }
  peer(name: string): PeerRuntime | undefined {
    return this.peers.get(name);
  }
  peerNames(): string[] {
    return [...this.peers.keys()];
  }
  /** Removes a peer: its SAs are deleted through the peer, its traps removed (as IKEv2's removePeer). */
  async removePeer(name: string): Promise<void> {
    await this.terminate(name);
    const rt = this.peers.get(name);
    if (!rt) return;
    // Left behind, a `start = trap` peer's policies would hold its traffic for ever: an
    // ACQUIRE for a reqid no configured peer owns starts nothing.
    await this.sup.untrapAll(rt);
    this.sup.forget(name);
    this.configChanged();
  }

  // ---- IsakmpSaHost ----------------------------------------------------------

  reqidFor(peer: string, child: string): number {
    return this.sup.reqidFor(peer, child);
  }

  wantsInitialContact(peer: PeerPolicy): boolean {
    return this.sup.wantsInitialContact(peer);
  }

  candidatesFor(remote: Endpoint): PeerPolicy[] {
    return [...this.responderView(remote.addr).candidates];
  }

  pskGroupsFor(remote: Endpoint): readonly PskGroup[] {
    const view = this.responderView(remote.addr);
    if (view.pskGroups) return view.pskGroups;
    const byKey = new Map<string, PskGroup>();
    for (const p of view.candidates) {
      if (p.auth.kind !== 'psk') continue;
      const k = p.auth.secret.toString('hex');
      let g = byKey.get(k);
      if (!g) {
        g = { first: p, byId: new Map() };
        byKey.set(k, g);
      }
      const idk = identityKey(p.remoteId);
      const list = g.byId.get(idk);
      if (list) list.push(p);
      else g.byId.set(idk, [p]);
    }
    view.pskGroups = [...byKey.values()];
    return view.pskGroups;
  }

  onRemoteIdSet(sa: IsakmpSa, before: Identity | undefined): void {
    if (before) this.unindexRemoteId(sa, before);
    if (!sa.remoteId || sa.state === 'destroyed') return;
    const k = identityKey(sa.remoteId);
    let set = this.byRemoteId.get(k);
    if (!set) {
      set = new Set();
      this.byRemoteId.set(k, set);
    }
    set.add(sa);
  }

  private unindexRemoteId(sa: IsakmpSa, id: Identity): void {
    const k = identityKey(id);
    const set = this.byRemoteId.get(k);
    if (!set?.delete(sa)) return;
    if (set.size === 0) this.byRemoteId.delete(k);
  }

  peerById(id: Identity, remote: Endpoint): PeerPolicy | undefined {
    const view = this.responderView(remote.addr);
    if (!view.byId) {
      view.byId = new Map();
      for (const p of view.candidates) {
        const k = identityKey(p.remoteId);
        if (!view.byId.has(k)) view.byId.set(k, p);
      }
    }
    return view.byId.get(identityKey(id));
  }

  onPeerSet(sa: IsakmpSa, before: PeerPolicy | undefined): void {
    if (before) this.unindexPeer(sa, before.name);
    if (!sa.peer || sa.state === 'destroyed') return;
    let set = this.byPeer.get(sa.peer.name);
    if (!set) {
      set = new Set();
      this.byPeer.set(sa.peer.name, set);
    }
    set.add(sa);
  }

  private unindexPeer(sa: IsakmpSa, name: string): void {
    const set = this.byPeer.get(name);
    if (!set?.delete(sa)) return;
    if (set.size === 0) this.byPeer.delete(name);
  }

  onCookies(sa: IsakmpSa): void {
    this.byInitiatorCookie.delete(hex(sa.cookieI));
    this.byCookies.set(hex(sa.cookieI) + hex(sa.cookieR), sa);
  }

  onEstablished(sa: IsakmpSa, initialContact: boolean): void {
    const peer = sa.peer as PeerPolicy;
    this.dropHalfOpen(sa);
    this.sup.onUp(peer.name);
    this.env.emit({
      type: 'handshake.completed',
      peer: peer.name,
      version: 1,
      role: sa.role,
      mode: sa.mode,
      latencyMs: this.env.clock.now() - sa.createdAt,
    });
    this.env.emit({ type: 'peer.up', peer: peer.name, reason: `ISAKMP SA ${sa.label} established` });
    if (initialContact) this.honourInitialContact(sa);
    // A re-negotiated phase 1: phase 2 SAs move to the new ISAKMP SA and the old one is deleted.
    // (The responder adopts them when the DELETE for the old SA arrives.)
    const old = sa.replaces;
    sa.replaces = undefined;
    const renegotiated = old?.isUp === true;
    if (old?.isUp) {
      for (const c of [...old.children.values()]) {
        old.children.delete(c.uid);
        sa.adopt(c);
      }
      old.replacedBy = sa;
      void old.queue.run(async () => {
        if (old.state === 'destroyed') return;
        sendIsakmpDelete(old);
        await old.destroy('replaced by a new ISAKMP SA');
      });
      this.env.emit({ type: 'rekey.completed', peer: peer.name, kind: 'ike', version: 1 });
    }
    // Crossing streams (or crossing re-negotiations): both ends keep the same ISAKMP SA.
    this.duplicates.onIsakmpEstablished(peer.name);
    if (!sa.isInitiator || renegotiated) return;
    const have = new Set(
      this.sasOf(peer.name)
        .filter((o) => !o.replacedBy && !o.retiring)
        .flatMap((o) => [...o.children.values()])
        .filter((c) => c.state === 'installed' || c.state === 'rekeying')
        .map((c) => c.name),
    );
    for (const child of peer.children)
      if (!have.has(child.name)) void sa.queue.run(() => this.firstQuickMode(sa, child, 0));
  }

  /** Timers of first Quick Modes to try again (cancelled on close). */
  private readonly quickModeRetries = new Set<Timer>();

  /**
   * The first Quick Mode for a configured child of an ISAKMP SA we initiated. One that
   * fails (the kernel refused an SPI, no reply, the peer refused) is tried again while the
   * ISAKMP SA is up and no pair of the child is: after 1 s, 2 s, 4 s ... (jittered, capped
   * by restart_backoff_max). Before, the ISAKMP SA stayed up without a phase 2 pair and
   * nothing brought one (IKEv2 retries the whole IKE SA when its IKE_AUTH fails).
   */
  private firstQuickMode(sa: IsakmpSa, child: ChildPolicy, failures: number): Promise<void> {
    return startQuickMode(sa, child, undefined, (ok, reason) => {
      if (ok || !sa.isUp || sa.replacedBy || !sa.peer || this.refusing) return;
      const wait = restartBackoff(failures + 1, sa.peer.restartBackoffMaxMs, this.env.rand01);
      this.env.log.warn('Quick Mode failed', { peer: sa.peerName, child: child.name, reason, retryInMs: wait });
      const timer = this.env.clock.setTimer(wait, () => {
        this.quickModeRetries.delete(timer);
        if (!sa.isUp || sa.replacedBy || this.refusing || this.hasLivePair(sa.peerName, child.name)) return;
        void sa.queue.run(() => this.firstQuickMode(sa, child, failures + 1));
      });
      this.quickModeRetries.add(timer);
    });
  }

  /** Whether the peer has an installed (or re-keying) phase 2 pair of the child, or a Quick Mode of ours for it. */
  private hasLivePair(name: string, child: string): boolean {
    return this.sasOf(name).some(
      (o) =>
        initiatingQuickMode(o, child) ||
        [...o.children.values()].some((c) => c.name === child && (c.state === 'installed' || c.state === 'rekeying')),
    );
  }

  onChildInstalled(sa: IsakmpSa, child: ChildSa, rekeyOf?: ChildSa, peerStartedAt?: number): void {
    // Our own rekey: make-before-break, the new pair carries traffic; delete the old one through the peer.
    // (The peer cannot tell a rekey from a duplicate: it keeps the old pair until our DELETE arrives.)
    const other = rekeyOf && this.sasOf(sa.peerName).find((o) => o.children.get(rekeyOf.uid) === rekeyOf);
    if (rekeyOf && other && (rekeyOf.state === 'installed' || rekeyOf.state === 'rekeying')) {
      other.transitionChild(rekeyOf, 'rekeyed', `replaced by ${child.uid}`);
      rekeyOf.replacedBy = child.uid;
      rekeyOf.timers.rekey?.cancel();
      void other.queue.run(() => deleteChildren(other, [rekeyOf], 'rekeyed'));
    }
    if (peerStartedAt !== undefined) this.peerRekeyed(sa.peerName, child, peerStartedAt);
    // A pair kept after an INITIAL-CONTACT purge has its replacement now.
    void this.retirePurged(sa.peerName, child.name, `replaced by ${child.uid}`);
    // Any other live pair of this child was negotiated independently: a duplicate.
    this.duplicates.onPairInstalled(sa.peerName, child.name);
    this.onPairInstalled?.(sa.remote.addr, sa.label);
  }

  /**
   * The peer's Quick Mode installed `child` while no Quick Mode of ours for it was under way
   * and every other pair of it was older than the peer's QM1: the peer re-keyed (IKEv1 does
   * not say which pair a Quick Mode replaces; charon, for one, leaves the old pair to expire
   * and never re-keys it). Those older pairs are superseded (`replacedBy`, still installed):
   * not re-keyed by us, not weighed by the crossing-streams rule (which could delete the peer's
   * new pair and keep one the peer no longer maintains), deleted by the peer or, after the
   * crossing rule's long grace, by us. Should the peer delete the new pair while they are
   * still here (it was a crossing on its side), they are revived. A pair we negotiated that
   * the crossing rule ranks below the new one goes after the rule's short grace instead: the
   * peer's QM1 may have crossed our QM3 (both ends started at once), and a peer that applies
   * the rule then holds both pairs and leaves that one to us, its negotiator.
   */
  private peerRekeyed(name: string, child: ChildSa, peerStartedAt: number): void {
    const others = this.duplicates.pairs(name, child.name).filter((p) => p.c !== child);
    if (others.length === 0) return;
    if (others.some((p) => p.c.state !== 'installed' || p.c.createdAt >= peerStartedAt)) return;
    if (this.sasOf(name).some((o) => initiatingQuickMode(o, child.name))) return;
    for (const { c } of others) {
      // Still 'installed' (its inbound SA may carry the peer's last packets): only superseded.
      c.replacedBy = child.uid;
      c.timers.rekey?.cancel();
      this.peerReplaced.add(c);
      // The peer did not delete it (charon lets it expire): it goes after the long grace, or
      // after the short one if the crossing rule makes us the end that deletes it.
      const ours = c.initiator === true && pairRank(c) < pairRank(child);
      const graces = ours ? 1 : FALLBACK_GRACES;
      c.timers.rekey = this.env.clock.setTimer(this.limits.duplicateGraceMs * graces, () => {
        const owner = this.sasOf(name).find((o) => o.children.get(c.uid) === c);
        if (!owner || c.state !== 'installed' || c.replacedBy !== child.uid || child.state === 'destroyed') return;
        void owner.queue.run(() => deleteChildren(owner, [c], `replaced by the peer's ${child.uid}`));
      });
      this.env.log.debug('phase 2 pair replaced by the peer', {
        peer: name,
        spiIn: spiHex(c.spiIn),
        by: spiHex(child.spiIn),
      });
    }
  }

  /** Pairs the peer's Quick Mode replaced (peerRekeyed), revived if the peer deletes their replacement. */
  private readonly peerReplaced = new WeakSet<ChildSa>();

  onChildDeletingByPeer(sa: IsakmpSa, c: ChildSa): void {
    const name = sa.peerName;
    // The child's last installed pair (not an old one after a re-key): before it goes, a
    // restart relationship is wanted from here on (its policies stay).
    const others = this.sasOf(name).some((o) =>
      [...o.children.values()].some((x) => x !== c && x.name === c.name && x.state === 'installed'),
    );
    if (!others) this.sup.onPeerDeleting(this.peers.get(name), sa, true);
  }

  onChildDeletedByPeer(sa: IsakmpSa, gone: ChildSa): void {
    const name = sa.peerName;
    if (this.duplicates.pairs(name, gone.name).length > 0) return;
    for (const o of this.sasOf(name))
      for (const c of o.children.values()) {
        if (c.replacedBy !== gone.uid || c.state !== 'installed' || !this.peerReplaced.has(c)) continue;
        this.peerReplaced.delete(c);
        c.replacedBy = undefined;
        o.scheduleChildTimers(c);
        this.env.log.debug('phase 2 pair revived', { peer: name, spiIn: spiHex(c.spiIn), deleted: spiHex(gone.spiIn) });
      }
  }

  /** Set by the daemon: a pair with `remote` is installed (kernel SAs a crashed predecessor left with it can go). */
  onPairInstalled: ((remote: string, label: string) => void) | undefined;

  onFailure(sa: IsakmpSa, reason: string, phase: 'establish' | 'liveness'): void {
    const name = sa.peer?.name;
    const rt = name ? this.peers.get(name) : undefined;
    void sa.queue.run(async () => {
      if (sa.state === 'destroyed') return;
      const wasUp = sa.isUp;
      // A phase 1 re-negotiation that did not complete (the old ISAKMP SA stays until its hard lifetime).
      if (!wasUp && sa.replaces && name) this.renegotiationFailed(name, sa.lastError?.code ?? 'PHASE1_FAILED', reason);
      // Before the SA goes: a lost restart relationship is wanted from here on (its policies stay).
      this.sup.onSaFailed(rt, sa, reason, phase);
      // A timed-out attempt already waited this long for an answer since it last sent.
      const silentMs = sa.lastSentAt ? this.env.clock.now() - sa.lastSentAt : 0;
      // The peer is alive but lost its state (it said INVALID-COOKIE): its kernel may still
      // hold the other half of our pairs, so they carry traffic until the replacement is in.
      if (phase === 'liveness' && sa.lostState && name && rt?.policy.dpdAction === 'restart')
        this.keepPurgedPairs(name, sa, 'peer lost its state');
      await sa.destroy(reason);
      if (wasUp && name) this.env.emit({ type: 'peer.down', peer: name, reason });
      if (rt) await this.sup.afterLoss(rt, phase, silentMs);
    });
  }

  async onIsakmpDeleted(sa: IsakmpSa): Promise<void> {
    const name = sa.peer?.name;
    const others = name ? this.established(name).filter((o) => o !== sa) : [];
    const heir = others.find((o) => !o.replacedBy) ?? others[0];
    if (heir) {
      for (const c of [...sa.children.values()]) {
        sa.children.delete(c.uid);
        heir.adopt(c);
      }
    }
    // Before the SA goes: a restart relationship is wanted from here on (its policies stay).
    if (!heir && name) this.sup.onPeerDeleting(this.peers.get(name), sa);
    await sa.destroy(heir ? 'deleted after phase 1 re-negotiation' : 'ISAKMP SA deleted');
    const rt = name ? this.peers.get(name) : undefined;
    if (!heir && rt) await this.sup.onDeletedByPeer(rt);
  }

  onIsakmpRekeyDue(sa: IsakmpSa): void {
    const name = sa.peer?.name;
    if (!name || !sa.isUp || sa.replacedBy || sa.retiring) return;
    if (this.established(name).some((o) => o !== sa && o.createdAt > sa.createdAt)) return;
    if (this.connecting(name).length) return;
    this.env.emit({ type: 'rekey.started', peer: name, kind: 'ike', version: 1 });
    void this.initiate(name, sa).catch((err) =>
      this.renegotiationFailed(name, 'INITIATION_FAILED', err instanceof Error ? err.message : String(err)),
    );
  }

  /** `rekey.failed` for a phase 1 re-negotiation we started (logged at warn by the daemon's event log). */
  private renegotiationFailed(peer: string, code: string, reason: string): void {
    this.env.emit({ type: 'rekey.failed', peer, kind: 'ike', version: 1, code, reason });
  }

  onDestroyed(sa: IsakmpSa): void {
    void dropPendingQuickModes(sa);
    this.byCookies.delete(hex(sa.cookieI) + hex(sa.cookieR));
    if (this.byInitiatorCookie.get(hex(sa.cookieI)) === sa) this.byInitiatorCookie.delete(hex(sa.cookieI));
    this.dropHalfOpen(sa);
    if (sa.peer) this.unindexPeer(sa, sa.peer.name);
    if (sa.remoteId) this.unindexRemoteId(sa, sa.remoteId);
    if (sa.peer) this.sup.onSaGone(sa.peer.name);
  }

  private dropHalfOpen(sa: IsakmpSa): void {
    const ho = this.halfOpenKey.get(sa);
    if (!ho) return;
    this.halfOpenKey.delete(sa);
    if (this.halfOpen.get(ho.key) === sa) this.halfOpen.delete(ho.key);
    const n = (this.halfOpenPerAddr.get(ho.addr) ?? 1) - 1;
    if (n > 0) this.halfOpenPerAddr.set(ho.addr, n);
    else this.halfOpenPerAddr.delete(ho.addr);
  }

  // ---- traps, ACQUIRE, start-up (logic in sa/peer-supervision.ts) -------------------

  /** Trap policies for every configured child: the next packet's ACQUIRE starts a negotiation. */
  installTraps(rt: PeerRuntime): Promise<void> {
    return this.sup.installTraps(rt);
  }

  /** After a reload changed the peer: its traps as the new configuration says (PeerSupervisor.syncTraps). */
  async syncTraps(name: string): Promise<void> {
    const rt = this.peers.get(name);
    if (rt) await this.sup.syncTraps(rt);
  }

  /** A `start = now` peer's initiation in a slot the caller holds (PeerSupervisor.initiateInTurn). */
  initiateInTurn(name: string): Promise<void> {
    return this.sup.initiateInTurn(name);
  }

  /** Kernel ACQUIRE for one of our reqids: bring the owning peer up (not while stopping). */
  onAcquire(reqid: number): Promise<void> {
    return this.sup.onAcquire(reqid);
  }

  // ---- operator / daemon API ---------------------------------------------------

  /**
   * Brings up every peer per its `start` action, paced as IKEv2's: traps first, then
   * `start = now` peers in random order, at most `maxConcurrent` initiations in flight
   * (until the ISAKMP SA is up or failed), each delayed by up to `jitterMs`.
   */
  start(pacing: Partial<{ maxConcurrent: number; jitterMs: number; gate: InitiationGate }> = {}): Promise<void> {
    return this.sup.start(pacing);
  }

  /** Starts a new ISAKMP SA (Main Mode, or Aggressive when the policy enables it); Quick Modes follow. */
  async initiate(name: string, replacing?: IsakmpSa): Promise<IsakmpSa> {
    const rt = this.sup.beginInitiate(name);
    const p = rt.policy;
    const local = { addr: p.localAddress ?? (await this.sup.sourceFor(p.remoteAddress)), port: 500 };
    let cookie: Buffer;
    do cookie = this.env.random(8);
    while (cookie.equals(ZERO) || this.byInitiatorCookie.has(hex(cookie)));
    const sa = this.wire(
      new IsakmpSa(
        this,
        ++this.uidSeq,
        'initiator',
        cookie,
        Buffer.alloc(8),
        local,
        { addr: p.remoteAddress, port: p.remotePort },
        p,
      ),
    );
    this.byInitiatorCookie.set(hex(cookie), sa);
    if (replacing) sa.replaces = replacing;
    try {
      await sa.queue.run(() => (p.aggressive && p.auth.kind === 'psk' ? startAggressive(sa) : startMainMode(sa)));
    } catch (err) {
      // Nothing in flight will ever fail it: left, it would count as connecting for ever
      // and keep every later attempt (retry, restart, ACQUIRE) from starting.
      await sa.queue.run(() => sa.destroy(`initiation failed: ${err instanceof Error ? err.message : String(err)}`));
      throw err;
    }
    return sa;
  }

  private refusing = false;

  /**
   * Stopping: no new ISAKMP SAs, neither answered (a first Main/Aggressive Mode message
   * is dropped; the peer retries later or elsewhere) nor started (no retries, no
   * dead-peer restart, no acquire). One accepted now would be dropped without a DELETE.
   */
  refuseNewSas(): void {
    this.refusing = true;
    this.sup.cancelRetries();
  }

  /**
   * Make before break (a changed peer configuration): a new ISAKMP SA with the current
   * policy, then a Quick Mode for each configured child under it (as for any ISAKMP SA we
   * start; the pairs of the old ones do not count while they retire). Once every child
   * has its new pair, or `waitMs` passed, the old ISAKMP SAs are deleted with their pairs
   * through the peer (which took each new pair as the peer's re-key of the old one). A
   * child whose new pair did not come keeps its old pair on the new ISAKMP SA (re-keyed
   * there with the new settings at its soft lifetime) rather than losing it; a child no
   * longer configured loses it. If the new ISAKMP SA does not come up, nothing changes.
   */
  async replace(name: string, waitMs = 30_000, reason = 'replaced after a configuration change'): Promise<void> {
    const old = this.sasOf(name);
    for (const sa of old) sa.retiring = true;
    const keep = () => {
      for (const sa of old) sa.retiring = false;
    };
    let fresh: IsakmpSa;
    try {
      fresh = await this.initiate(name);
    } catch (err) {
      keep();
      throw err;
    }
    const wanted = () => this.peers.get(name)?.policy.children ?? [];
    const paired = (child: string) =>
      this.sasOf(name).some(
        (o) =>
          !o.retiring &&
          [...o.children.values()].some((c) => c.name === child && (c.state === 'installed' || c.state === 'rekeying')),
      );
    await pollUntil(
      this.env.clock,
      () => fresh.state === 'destroyed' || (fresh.isUp && wanted().every((c) => paired(c.name))),
      waitMs,
    );
    const heir = this.established(name).find((o) => !o.retiring && !o.replacedBy);
    if (!heir || !fresh.isUp) {
      keep();
      if (fresh.state !== 'destroyed' && !fresh.isUp)
        await fresh.queue.run(() => fresh.destroy('did not come up in time to replace the old ISAKMP SA'));
      return;
    }
    // The peer installs its outbound SA of a new pair when our QM3 arrives, and processes our
    // DELETE for the old pair under the old ISAKMP SA, independently of the new one: a DELETE
    // right behind QM3 could remove its old pair before the new one is in.
    await new Promise<void>((r) => this.env.clock.setTimer(REPLACE_SETTLE_MS, r));
    const configured = new Set(wanted().map((c) => c.name));
    for (const sa of old)
      await sa.queue.run(async () => {
        if (sa.state === 'destroyed') return;
        for (const c of [...sa.children.values()]) {
          if (!configured.has(c.name) || paired(c.name) || (c.state !== 'installed' && c.state !== 'rekeying'))
            continue;
          sa.children.delete(c.uid);
          heir.adopt(c);
        }
        sa.replacedBy = heir;
        await this.deleteSa(sa, reason);
      });
  }

  /** Deletes the peer's phase 2 and ISAKMP SAs through the peer and stops wanting it up. */
  async terminate(name: string): Promise<number> {
    this.sup.stopWanting(name);
    const sas = this.sasOf(name);
    await Promise.all(sas.map((sa) => sa.queue.run(() => this.deleteSa(sa, 'terminated by operator'))));
    await this.retirePurged(name, undefined, 'terminated by operator');
    return sas.length;
  }

  /** DELETE for every phase 2 SA and then the ISAKMP SA, then local teardown. */
  async deleteSa(sa: IsakmpSa, reason: string): Promise<void> {
    if (sa.state === 'destroyed') return;
    if (sa.isUp) {
      await deleteChildren(sa, [...sa.children.values()], reason);
      sendIsakmpDelete(sa);
      sa.transition('deleting', reason);
    }
    await sa.destroy(reason);
  }

  sasOf(name: string): IsakmpSa[] {
    const set = this.byPeer.get(name);
    return set ? [...set].filter((sa) => sa.peer?.name === name && sa.state !== 'destroyed') : [];
  }
  established(name: string): IsakmpSa[] {
    return this.sasOf(name).filter((sa) => sa.isUp);
  }
  connecting(name: string): IsakmpSa[] {
    return this.sasOf(name).filter((sa) => ['created', 'connecting', 'authenticating'].includes(sa.state));
  }
  allSas(): IsakmpSa[] {
    return [...new Set([...this.byCookies.values(), ...this.byInitiatorCookie.values()])];
  }

  /**
   * The peer lost its state: drop ISAKMP SAs of the same relationship (the same pair of
   * identities, ours and the peer's) that predate the new one. SAs that only share the
   * peer's identity belong to other relationships (one remote host talking to several of
   * our identities): the peer's first contact with one of them says nothing about the others.
   * Their phase 2 pairs are not deleted yet (make-before-break): the restarted peer's kernel
   * usually still holds the other half and traffic keeps flowing over them, so they stay in
   * the kernel, no longer known to IKE, until a new pair of the same child is installed
   * (`retirePurged`) or `initialContactGraceMs` has passed.
   */
  private honourInitialContact(sa: IsakmpSa): void {
    const id = sa.remoteId;
    if (!id || !sa.peer) return;
    const me = localIdentity(sa.peer);
    for (const other of [...(this.byRemoteId.get(identityKey(id)) ?? [])]) {
      if (other === sa || !other.remoteId || !sameIdentity(other.remoteId, id) || !other.isUp) continue;
      if (!other.peer || (other.peer !== sa.peer && !sameIdentity(localIdentity(other.peer), me))) continue;
      // Made by the peer's current incarnation (established after this SA began). At the same
      // instant it may be the other half of crossing streams: the duplicate rule keeps one of them.
      if (other.establishedAt >= sa.createdAt) continue;
      this.env.emit({ type: 'initial_contact.purge', peer: sa.peerName, sa: other.label, version: 1 });
      // The peer is re-establishing the relationship: with dpd_action = "restart" it is wanted,
      // so its policies stay (as traps) once the kept pairs go, instead of leaving a window
      // in which the kernel sends the protected traffic in clear text.
      const rt = this.peers.get(sa.peerName);
      if (rt?.policy.dpdAction === 'restart') rt.wantUp = true;
      other.replacedBy = sa;
      this.keepPurgedPairs(sa.peerName, other, 'INITIAL-CONTACT from peer');
      void other.queue.run(() => other.destroy('INITIAL-CONTACT from peer'));
    }
  }

  /**
   * Moves the live pairs of an ISAKMP SA that goes because the peer lost its state out of
   * it (its destroy leaves them in the kernel) until their replacement is installed.
   */
  private keepPurgedPairs(peer: string, other: IsakmpSa, why: string): void {
    for (const c of [...other.children.values()]) {
      if (c.state !== 'installed' && c.state !== 'rekeying') continue;
      other.children.delete(c.uid);
      c.timers.rekey?.cancel();
      c.timers.expire?.cancel();
      other.transitionChild(c, 'rekeyed', `${why}: kept until a new pair is installed`);
      const timer = this.env.clock.setTimer(this.limits.initialContactGraceMs, () => {
        void this.retirePurged(peer, c.name, `${why}: no new pair within the grace period`, c);
      });
      let list = this.purged.get(peer);
      if (!list) {
        list = [];
        this.purged.set(peer, list);
      }
      list.push({ sa: other, child: c, timer });
    }
  }

  /** Removes kept pairs of `peer` (of one child, or all; or just `only`) from the kernel. */
  private async retirePurged(peer: string, child: string | undefined, reason: string, only?: ChildSa): Promise<void> {
    const list = this.purged.get(peer);
    if (!list) return;
    const go = list.filter((p) => (child === undefined || p.child.name === child) && (!only || p.child === only));
    if (go.length === 0) return;
    const rest = list.filter((p) => !go.includes(p));
    if (rest.length) this.purged.set(peer, rest);
    else this.purged.delete(peer);
    for (const p of go) {
      p.timer.cancel();
      await uninstallChild(this.env.kernel, this.book, p.child, p.sa.local, p.sa.remote).catch((err) =>
        this.env.log.warn('removing a pair kept after INITIAL-CONTACT failed', { error: String(err) }),
      );
      destroyChildSecrets(p.child);
      p.sa.transitionChild(p.child, 'destroyed', reason);
    }
  }

  /** Pairs kept after the peer lost its state (INITIAL-CONTACT, INVALID-COOKIE), waiting for their replacement. */
  purgedPairs(peer: string): ChildSa[] {
    return (this.purged.get(peer) ?? []).map((p) => p.child);
  }

  // ---- receive path ------------------------------------------------------------

  /** Entry point for every ISAKMP datagram (non-ESP marker already stripped). Never throws. */
  receive(data: Buffer, from: Endpoint, to: Endpoint): void {
    let msg: IsakmpMessage;
    try {
      decodeIsakmpHeader(data);
      msg = decodeIsakmpMessage(data);
    } catch (err) {
      return this.drop(err instanceof MalformedMessageError ? err.message : `decoder failure: ${String(err)}`, from);
    }
    try {
      this.dispatch(data, msg, from, to);
    } catch (err) {
      this.env.log.error('IKEv1 receive path failed', { error: err instanceof Error ? err.stack : String(err) });
      this.drop(`internal error: ${String(err)}`, from);
    }
  }

  private dispatch(raw: Buffer, msg: IsakmpMessage, from: Endpoint, to: Endpoint): void {
    const h = msg.header;
    const ci = hex(h.initiatorCookie);
    let sa = this.byCookies.get(ci + hex(h.responderCookie)) ?? this.byInitiatorCookie.get(ci);
    if (!sa && h.responderCookie.equals(ZERO) && h.messageId === 0 && msg.payloads) {
      const ho = this.halfOpen.get(`${ci}|${from.addr}|${from.port}`);
      if (ho) sa = ho;
      else if (h.exchangeType === MAIN_MODE || h.exchangeType === V1ExchangeType.AGGRESSIVE)
        return this.refusing
          ? this.drop('new ISAKMP SA refused: the daemon is stopping', from)
          : this.onFirst(raw, msg, from, to);
    }
    if (!sa) {
      // An encrypted Informational (DPD, DELETE) or Quick Mode under an ISAKMP SA we do not
      // have: tell the sender (it may hold an SA we lost). Never answer a clear message: it
      // may itself be such an answer.
      if (
        msg.encrypted &&
        (h.exchangeType === V1ExchangeType.INFORMATIONAL || h.exchangeType === V1ExchangeType.QUICK_MODE)
      )
        this.answerInvalidCookie(h, from, to);
      return this.drop(`unknown cookies ${ci}/${hex(h.responderCookie)}`, from);
    }
    const target = sa;
    target.queue
      .run(() => this.handle(target, raw, msg, from, to))
      .catch((err) => {
        this.env.log.error('ISAKMP SA failed handling a message', {
          sa: target.label,
          error: err instanceof Error ? err.stack : String(err),
        });
        void target.queue.run(() =>
          target.destroy(`internal error: ${err instanceof Error ? err.message : String(err)}`),
        );
      });
  }

  private async handle(sa: IsakmpSa, raw: Buffer, msg: IsakmpMessage, from: Endpoint, to: Endpoint): Promise<void> {
    sa.inboundFrom = from;
    try {
      await this.handleFrom(sa, raw, msg, from, to);
    } finally {
      sa.inboundFrom = undefined;
    }
  }

  /** The peer's NAT mapping moved (see `followNatMapping`). */
  onRemoteMoved(sa: IsakmpSa, old: Endpoint): void {
    void sa.queue.run(async () => {
      if (sa.isUp) await followNatMapping(sa, old, (c) => sa.rekeyChild?.(c), 1);
    });
  }

  private async handleFrom(sa: IsakmpSa, raw: Buffer, msg: IsakmpMessage, from: Endpoint, to: Endpoint): Promise<void> {
    if (sa.state === 'destroyed') return;
    const h = msg.header;
    if (sa.replayIfDuplicate(h.messageId, raw)) return;
    if (msg.encrypted && sa.isUp && to.port === 4500 && sa.local.port !== 4500) sa.local = { ...sa.local, port: 4500 };
    switch (h.exchangeType) {
      case MAIN_MODE:
        return onMainMode(sa, raw, msg, from, to);
      case V1ExchangeType.AGGRESSIVE:
        return onAggressive(sa, raw, msg, from, to);
      case V1ExchangeType.INFORMATIONAL:
        return onInformational(sa, raw, msg, from);
      case V1ExchangeType.QUICK_MODE: {
        if (!sa.isUp || !msg.encrypted) return sa.drop('Quick Mode outside an established ISAKMP SA', from);
        const opened = sa.open(h, msg.encrypted);
        if ('error' in opened) return sa.drop(`Quick Mode: ${opened.error}`, from);
        return onQuickMode(sa, raw, h, opened);
      }
      default:
        return sa.drop(`unsupported exchange type ${h.exchangeType}`, from);
    }
  }

  private onFirst(
    raw: Buffer,
    msg: Extract<IsakmpMessage, { payloads: unknown[] }>,
    from: Endpoint,
    to: Endpoint,
  ): void {
    const h = msg.header;
    const perAddr = this.halfOpenPerAddr.get(from.addr) ?? 0;
    if (perAddr >= this.limits.halfOpenPerAddress) return this.drop('half-open limit for address', from);
    let cookie: Buffer;
    do cookie = this.env.random(8);
    while (cookie.equals(ZERO) || this.byCookies.has(hex(h.initiatorCookie) + hex(cookie)));
    const sa = this.wire(
      new IsakmpSa(this, ++this.uidSeq, 'responder', Buffer.from(h.initiatorCookie), cookie, { ...to }, { ...from }),
    );
    this.byCookies.set(hex(sa.cookieI) + hex(sa.cookieR), sa);
    const key = `${hex(sa.cookieI)}|${from.addr}|${from.port}`;
    this.halfOpen.set(key, sa);
    this.halfOpenKey.set(sa, { key, addr: from.addr });
    this.halfOpenPerAddr.set(from.addr, perAddr + 1);
    sa.armHalfOpen(this.limits.halfOpenTimeoutMs);
    const view = this.responderView(from.addr);
    sa.hs.specs = view.specs;
    const { methods, lifetimeMs: lifetime } = view;
    void sa.queue.run(() =>
      h.exchangeType === MAIN_MODE
        ? respondMainMode1(sa, raw, msg, methods, lifetime)
        : respondAggressive1(sa, raw, msg, from, to),
    );
  }

  private wire(sa: IsakmpSa): IsakmpSa {
    sa.probe = () => probe(sa);
    sa.rekeyChild = async (c) => {
      const policy = sa.peer?.children.find((x) => x.name === c.name);
      if (!policy || c.state !== 'installed' || !sa.isUp) return;
      this.env.emit({ type: 'rekey.started', peer: sa.peerName, kind: 'child', version: 1 });
      sa.transitionChild(c, 'rekeying', 'soft lifetime');
      await startQuickMode(sa, policy, c, (ok, reason) => {
        if (ok) {
          this.env.emit({ type: 'rekey.completed', peer: sa.peerName, kind: 'child', version: 1 });
          return;
        }
        this.env.emit({
          type: 'rekey.failed',
          peer: sa.peerName,
          kind: 'child',
          code: 'QUICK_MODE_FAILED',
          reason: String(reason),
          version: 1,
        });
        if (c.state === 'rekeying') sa.transitionChild(c, 'installed', `rekey failed: ${reason}`);
        const retry = Math.min(30_000, Math.max(1000, (c.expireAt - this.env.clock.now()) / 4));
        c.timers.rekey?.cancel();
        c.timers.rekey = this.env.clock.setTimer(retry, () => void sa.queue.run(() => sa.rekeyChild?.(c)));
      });
    };
    return sa;
  }

  private answerInvalidCookie(h: IsakmpHeader, from: Endpoint, to: Endpoint): void {
    if (h.responderCookie.equals(ZERO)) return;
    const now = this.env.clock.now();
    if (now - this.invalidCookieWindow.at >= 1000) this.invalidCookieWindow = { at: now, count: 0 };
    if (++this.invalidCookieWindow.count > this.limits.invalidCookiePerSecond) return;
    let mid: number;
    do mid = this.env.random(4).readUInt32BE(0);
    while (mid === 0);
    this.env.send({ data: invalidCookieNotify(h, mid), local: to, remote: from });
    this.env.emit({
      type: 'notify.sent',
      version: 1,
      notify: 'INVALID-COOKIE',
      to: `${from.addr}:${from.port}`,
      cookies: `${hex(h.initiatorCookie)}/${hex(h.responderCookie)}`,
    });
  }

  /**
   * Unauthenticated INVALID-COOKIE for an SA we hold: the peer may have lost its state
   * (restarted without its IKE state), or the notify is forged. One R-U-THERE must be
   * answered within `lostStateConfirmMs`, or the SA is dead and the dead-peer action runs
   * at once instead of after the whole DPD timeout. Without DPD support announced by the
   * peer nothing can confirm it, so the hint is only reported.
   */
  onLostStateHint(sa: IsakmpSa, notify: string): void {
    const now = this.env.clock.now();
    if (!sa.isUp || sa.replacedBy) return;
    if (now - sa.lostStateHintAt < this.limits.lostStateConfirmMs) return sa.drop(`${notify}: confirmation in flight`);
    if (!sa.peerDpd) return sa.drop(`${notify} from peer: cannot confirm (peer did not announce DPD), ignored`);
    sa.lostStateHintAt = now;
    this.env.emit({ type: 'liveness.suspect', version: 1, peer: sa.peerName, reason: `${notify} from peer` });
    // Not awaited under the SA's queue: the R-U-THERE-ACK is processed there.
    void sa.queue.run(() => {
      if (!sa.isUp) return;
      sa.lostState = true;
      void confirmLostState(sa, this.limits.lostStateConfirmMs, `peer answered ${notify}`).then((verdict) => {
        if (verdict === 'alive') sa.lostState = false;
      });
    });
  }

  private drop(reason: string, from: Endpoint): void {
    this.env.emit({ type: 'packet.dropped', version: 1, reason, from: `${from.addr}:${from.port}` });
  }

  /** Stops every timer; with `keepKernel` kernel SAs and policies stay (restart handover). */
  async close(opts: { keepKernel?: boolean } = {}): Promise<void> {
    this.sup.cancelRetries();
    for (const t of this.quickModeRetries) t.cancel();
    this.quickModeRetries.clear();
    this.duplicates.close();
    await Promise.all(this.allSas().map((sa) => sa.queue.run(() => sa.destroy('daemon stopping', opts))));
    for (const [peer, list] of [...this.purged]) {
      if (!opts.keepKernel) await this.retirePurged(peer, undefined, 'daemon stopping');
      else for (const p of list) p.timer.cancel();
    }
    if (opts.keepKernel) this.purged.clear();
  }
}

function uniqueSpecs(lists: IkeProposalSpec[][]): IkeProposalSpec[] {
  const seen = new Set<string>();
  const out: IkeProposalSpec[] = [];
  for (const list of lists)
    for (const s of list) {
      const k = JSON.stringify(s);
      if (!seen.has(k)) {
        seen.add(k);
        out.push(s);
      }
    }
  return out;
}
