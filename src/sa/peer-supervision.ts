import { CoatiError } from '../errors.js';
import { childPoliciesFor } from '../ikev2/child-sa.js';
import type { EngineEnv } from '../ikev2/env.js';
import { newPeerRuntime, type PeerRuntime, restartBackoff } from '../ikev2/peer-runtime.js';
import type { PolicyBook } from '../ikev2/policy-book.js';
import { pacedSlotHoldMs } from '../ikev2/retransmit.js';
import { InitiationGate } from '../util/paced.js';
import type { PeerPolicy } from './policy.js';

/** Why a peer's last SA went away: what `afterLoss` does next depends on it. */
export type LossCause = 'establish' | 'liveness' | 'exchange' | 'deleted';

/** What the supervisor needs from an engine's SA manager (IKEv1 or IKEv2). */
export interface SupervisedManager {
  readonly env: EngineEnv;
  readonly book: PolicyBook;
  /** The peer's SAs that are up. */
  established(name: string): readonly unknown[];
  /** The peer's SAs still being negotiated. */
  connecting(name: string): readonly unknown[];
  /** Starts a new SA to the peer (calls `beginInitiate` first). */
  initiate(name: string): Promise<unknown>;
}

/** An engine's supervisor: its IKE version, reqid range and stopping flag (both engines behave alike otherwise). */
export interface SupervisionOptions {
  /** The IKE version of the engine's peers (others are skipped at start and refused by `beginInitiate`). */
  version: 1 | 2;
  /** First reqid handed out (the kernel backend tags ownership by range). */
  reqidBase: number;
  /**
   * While this says true (the daemon is stopping), the supervisor initiates nothing on its
   * own account: no retry, no dead-peer restart, no ACQUIRE, no start-up initiation, and
   * `beginInitiate` refuses with STOPPING. Both engines pass their refuseNewSas flag.
   */
  stopping?: () => boolean;
}

/**
 * What both engines' managers do per configured peer between SAs: its runtime state
 * (wanted or not, failures, retry timer, reqids), first contact, the dead-peer action
 * after a loss, the retry backoff, trap policies and ACQUIRE. The managers own the SAs;
 * this owns the relationship.
 */
export class PeerSupervisor {
  readonly peers = new Map<string, PeerRuntime>();
  /** Peers we completed an SA with (no INITIAL_CONTACT to them any more). */
  readonly contacted = new Set<string>();
  nextReqid: number;
  /**
   * Which peer each reqid was handed to (`reqidFor`, `adoptReqid`): `ownerOf` runs for every
   * Child SA that goes (the policy book's retainer) and for every ACQUIRE, and was a scan of
   * every peer's reqids, O(K) per call.
   */
  private readonly reqidOwners = new Map<number, string>();

  constructor(
    private readonly m: SupervisedManager,
    private readonly opts: SupervisionOptions,
  ) {
    this.nextReqid = opts.reqidBase;
    // While a relationship is wanted (restart) or on demand (trap), its policies outlive its
    // SAs (as traps), so traffic is held instead of leaving in clear text.
    m.book.addRetainer((reqid) => {
      const rt = this.ownerOf(reqid);
      if (!rt) return false;
      return (
        rt.policy.dpdAction === 'trap' || rt.policy.start === 'trap' || (rt.wantUp && rt.policy.dpdAction === 'restart')
      );
    });
  }

  private get env(): EngineEnv {
    return this.m.env;
  }

  private get isStopping(): boolean {
    return this.opts.stopping?.() === true;
  }

  // ---- configuration ---------------------------------------------------------

  /** Adds a peer, or gives an existing one its new policy (its runtime state stays). */
  setPolicy(policy: PeerPolicy): void {
    const rt = this.peers.get(policy.name);
    if (rt) rt.policy = policy;
    else this.peers.set(policy.name, newPeerRuntime(policy));
  }

  /** Forgets a removed peer (its SAs already deleted and its traps removed: `untrapAll`). */
  forget(name: string): void {
    const rt = this.peers.get(name);
    if (rt)
      for (const reqid of rt.reqids.values()) if (this.reqidOwners.get(reqid) === name) this.reqidOwners.delete(reqid);
    this.peers.delete(name);
  }

  /** The peer's trap policies go (those still held by a pair stay until it releases them). */
  async untrapAll(rt: PeerRuntime): Promise<void> {
    for (const reqid of rt.reqids.values()) await this.m.book.untrap(reqid);
  }

  /** The peer that owns this reqid. */
  ownerOf(reqid: number): PeerRuntime | undefined {
    const name = this.reqidOwners.get(reqid);
    const rt = name === undefined ? undefined : this.peers.get(name);
    if (!rt) return undefined;
    for (const r of rt.reqids.values()) if (r === reqid) return rt;
    return undefined;
  }

  /** A reqid a predecessor handed out (checkpoint restore): the peer keeps it for the child. */
  adoptReqid(peer: string, child: string, reqid: number): void {
    const rt = this.peers.get(peer);
    if (!rt) return;
    rt.reqids.set(child, reqid);
    this.reqidOwners.set(reqid, peer);
  }

  /** The peer's reqid for a child, stable for the peer's lifetime (a fresh one for an unknown peer). */
  reqidFor(peer: string, child: string): number {
    const rt = this.peers.get(peer);
    const map = rt?.reqids ?? new Map<string, number>();
    let r = map.get(child);
    if (r === undefined) {
      r = this.nextReqid++;
      map.set(child, r);
      if (rt) this.reqidOwners.set(r, peer);
    }
    return r;
  }

  wantsInitialContact(peer: PeerPolicy): boolean {
    return !this.contacted.has(peer.name);
  }

  // ---- the relationship's life -------------------------------------------------

  /**
   * The checks and bookkeeping at the start of every initiation: the peer exists and is of
   * this engine's version (and, with a `stopping` gate, the daemon is not stopping); it is
   * wanted up from now on and a pending retry is cancelled.
   */
  beginInitiate(name: string): PeerRuntime {
    const rt = this.peers.get(name);
    if (!rt) throw new CoatiError('UNKNOWN_PEER', `no peer named "${name}"`);
    if (rt.policy.version !== this.opts.version)
      throw new CoatiError('WRONG_VERSION', `peer "${name}" is configured for IKEv${rt.policy.version}`);
    if (this.isStopping) throw new CoatiError('STOPPING', `not initiating to "${name}": the daemon is stopping`);
    rt.wantUp = true;
    this.cancelRetry(rt);
    return rt;
  }

  /** An SA with the peer is up: first contact made, failures forgotten. */
  onUp(name: string): void {
    this.contacted.add(name);
    this.startDone(name);
    const rt = this.peers.get(name);
    if (rt) {
      rt.failures = 0;
      this.cancelRetry(rt);
      rt.lastError = undefined;
    }
  }

  /**
   * An SA of the peer failed (to establish, or later): the event that says so, and the
   * peer's last error. Called before the SA is torn down: a lost relationship with
   * dpd_action = restart is wanted from here on, even if we only ever answered, so its
   * policies stay (as traps) when the SA's last pair releases them, and the traffic waits
   * for the re-initiation instead of leaving in clear text meanwhile.
   */
  onSaFailed(
    rt: PeerRuntime | undefined,
    sa: {
      readonly peerName: string;
      readonly role: 'initiator' | 'responder';
      readonly lastError: PeerRuntime['lastError'];
      readonly lastInboundAt: number;
    },
    reason: string,
    phase: LossCause,
  ): void {
    if (phase === 'establish') {
      this.env.emit({
        type: 'handshake.failed',
        peer: sa.peerName,
        version: this.opts.version,
        role: sa.role,
        reason: sa.lastError?.code ?? 'TIMEOUT',
        detail: reason,
      });
    } else {
      this.env.emit({ type: 'liveness.dead', peer: sa.peerName, silentMs: this.env.clock.now() - sa.lastInboundAt });
    }
    if (!rt) return;
    if (phase === 'establish') this.startDone(rt.policy.name);
    rt.lastError = sa.lastError ?? { code: 'FAILED', message: reason, at: this.env.clock.now() };
    if (phase !== 'establish' && rt.policy.dpdAction === 'restart') rt.wantUp = true;
  }

  /**
   * The peer is deleting `sa`, or with `lastPair` the last phase 2 pair of a child (a
   * graceful stop there, or an operator's terminate), and no other SA of the relationship
   * is up: with dpd_action = restart it is wanted from here on, before the teardown
   * releases the policies with the last pair, so they stay (as traps) until the
   * re-initiation that follows (`onDeletedByPeer`) and the traffic is not sent in clear
   * text meanwhile. A relationship we initiated is wanted already; this is for one we only
   * ever answered.
   */
  onPeerDeleting(rt: PeerRuntime | undefined, sa: unknown, lastPair = false): void {
    if (rt?.policy.dpdAction !== 'restart' || this.isStopping) return;
    if (!lastPair && this.m.established(rt.policy.name).some((o) => o !== sa)) return;
    rt.wantUp = true;
  }

  /** The peer deleted its SAs (a graceful stop, or a terminate there): when none is left, follow the configured action. */
  async onDeletedByPeer(rt: PeerRuntime): Promise<void> {
    if (this.m.established(rt.policy.name).length > 0) return;
    this.env.emit({ type: 'peer.down', peer: rt.policy.name, reason: 'deleted by peer' });
    await this.afterLoss(rt, 'deleted');
  }

  /**
   * Applies the peer's dead-peer action after its last SA went away: after a failed attempt
   * the next one (if still wanted), else restart, traps, or nothing.
   */
  async afterLoss(rt: PeerRuntime, why: LossCause, silentMs = 0): Promise<void> {
    if (this.isStopping) return;
    if (this.m.established(rt.policy.name).length > 0 || this.m.connecting(rt.policy.name).length > 0) return;
    if (why === 'establish') {
      if (rt.wantUp) this.scheduleRetry(rt, silentMs);
      return;
    }
    const action = rt.policy.dpdAction;
    if (action === 'restart') {
      rt.wantUp = true;
      rt.failures = 0;
      await this.attempt(rt, 'dead-peer restart');
    } else if (action === 'trap') {
      await this.installTraps(rt);
    } else {
      rt.wantUp = false;
    }
  }

  /**
   * The next attempt after a failed one: the backoff counts from the failed attempt's last
   * transmission (`silentMs` ago), so its final retransmission wait and the backoff do not
   * add up to a long silence in which a healed path goes unnoticed.
   */
  private scheduleRetry(rt: PeerRuntime, silentMs = 0): void {
    rt.failures++;
    const backoff = restartBackoff(rt.failures, rt.policy.restartBackoffMaxMs, this.env.rand01);
    const wait = Math.max(0, backoff - silentMs);
    rt.retryTimer?.cancel();
    rt.nextRetryAt = this.env.clock.now() + wait;
    rt.retryTimer = this.env.clock.setTimer(wait, () => {
      rt.retryTimer = undefined;
      if (!rt.wantUp || this.peers.get(rt.policy.name) !== rt) return;
      void this.attempt(rt, 'retry');
    });
  }

  /**
   * An initiation of the supervisor's own (retry, dead-peer restart, ACQUIRE). Never
   * rejects: one that throws before an SA could fail on its own (no route to the peer for
   * its source address, the daemon stopping) is logged with the peer and the reason, and
   * unless the daemon is stopping it counts as a failed attempt: the next one follows per
   * the backoff, so the relationship comes back once the cause is gone.
   */
  private async attempt(rt: PeerRuntime, what: string): Promise<boolean> {
    try {
      await this.m.initiate(rt.policy.name);
      return true;
    } catch (err) {
      const name = rt.policy.name;
      const error = err instanceof Error ? err.message : String(err);
      const code = err instanceof CoatiError ? err.code : 'FAILED';
      if (code === 'STOPPING' || this.isStopping) {
        this.env.log.info(`${what}: not initiating, the daemon is stopping`, { peer: name });
        return false;
      }
      rt.lastError = { code, message: error, at: this.env.clock.now() };
      const again =
        rt.wantUp &&
        this.peers.get(name) === rt &&
        this.m.established(name).length === 0 &&
        this.m.connecting(name).length === 0;
      if (again) this.scheduleRetry(rt);
      this.env.log.warn(`${what}: initiation failed`, {
        peer: name,
        error,
        ...(again ? { retryInMs: rt.nextRetryAt - this.env.clock.now() } : {}),
      });
      return false;
    }
  }

  private cancelRetry(rt: PeerRuntime): void {
    rt.retryTimer?.cancel();
    rt.retryTimer = undefined;
  }

  /** No more retries for any peer, and no start-up initiation still queued (the daemon stops). */
  cancelRetries(): void {
    for (const rt of this.peers.values()) this.cancelRetry(rt);
    this.startEpoch++;
  }

  /** The operator's terminate: the peer is no longer wanted up and no retry is pending. */
  stopWanting(name: string): void {
    const rt = this.peers.get(name);
    if (rt) {
      rt.wantUp = false;
      this.cancelRetry(rt);
    }
  }

  // ---- traps, ACQUIRE, start-up ------------------------------------------------

  /** Trap policies for every configured child: the next packet's ACQUIRE starts a negotiation. */
  async installTraps(rt: PeerRuntime): Promise<void> {
    const p = rt.policy;
    const local = p.localAddress ?? (await this.sourceFor(p.remoteAddress));
    for (const child of p.children) {
      const reqid = this.reqidFor(p.name, child.name);
      await this.m.book.trap(reqid, childPoliciesFor(reqid, child, local, p.remoteAddress));
    }
  }

  /**
   * After a reload changed the peer: its trap policies as the new configuration says.
   * `start = trap`: every configured child trapped with its configured selectors (stale
   * selectors of an untouched reqid go). A child no longer configured loses its trap, and
   * so does every child when the peer is no longer `start = trap`, unless the traps are
   * how the relationship is kept (dpd_action = trap, or restart while wanted: those stay
   * until the next negotiation). Policies held by an installed pair stay until it goes.
   */
  async syncTraps(rt: PeerRuntime): Promise<void> {
    const p = rt.policy;
    const trapped = new Set<number>();
    if (p.start === 'trap') {
      const local = p.localAddress ?? (await this.sourceFor(p.remoteAddress));
      for (const child of p.children) {
        const reqid = this.reqidFor(p.name, child.name);
        await this.m.book.trap(reqid, childPoliciesFor(reqid, child, local, p.remoteAddress), { exact: true });
        trapped.add(reqid);
      }
    }
    const keepsTraps = p.dpdAction === 'trap' || (p.dpdAction === 'restart' && rt.wantUp);
    const configured = new Set(p.children.map((c) => c.name));
    for (const [child, reqid] of rt.reqids) {
      if (trapped.has(reqid) || !this.m.book.isTrapped(reqid)) continue;
      if (keepsTraps && configured.has(child)) continue;
      await this.m.book.untrap(reqid);
    }
  }

  /** Kernel ACQUIRE for one of our reqids: bring the owning peer up (unless it is up or coming up). */
  async onAcquire(reqid: number): Promise<void> {
    if (this.isStopping) return;
    const rt = this.ownerOf(reqid);
    if (!rt) return;
    if (this.m.established(rt.policy.name).length || this.m.connecting(rt.policy.name).length) return;
    rt.wantUp = true;
    await this.attempt(rt, 'ACQUIRE');
  }

  /** The source address towards `remote` (for a peer without a configured local address). */
  async sourceFor(remote: string): Promise<string> {
    return this.env.sourceFor ? this.env.sourceFor(remote) : remote.includes(':') ? '::' : '0.0.0.0';
  }

  /**
   * Start-up initiations from their turn until the peer's SA is up, failed or gone, each
   * with the release of its slot (the gate may have freed the slot earlier: `holdMaxMs`).
   */
  private readonly startInFlight = new Map<string, () => void>();
  private gate: InitiationGate | undefined;
  /** Bumped by `cancelRetries` (stopping): start-up turns queued before it are void. */
  private startEpoch = 0;

  /**
   * Brings up every peer of this engine per its `start` action: traps first (cheap,
   * local), then `start = now` peers in random order through `pacing.gate` (the daemon's,
   * shared with the other engine and with reload; one of the supervisor's own with
   * `maxConcurrent` otherwise): at most that many initiations in flight, each delayed by up
   * to `jitterMs`, so a fleet-wide restart is not a thundering herd. Responders stay
   * responsive meanwhile: initiations are ordinary timer callbacks. A slot is freed when
   * the peer's SA is up (`onUp`), failed to establish (`onSaFailed`) or went without an
   * outcome (`onSaGone`), or the initiation threw (then a retry follows the backoff), and
   * at the latest when its second retransmission is due (`pacedSlotHoldMs`): a peer that
   * is down does not hold a slot for its whole retransmission time.
   */
  async start(pacing: Partial<{ maxConcurrent: number; jitterMs: number; gate: InitiationGate }> = {}): Promise<void> {
    if (pacing.gate) this.gate = pacing.gate;
    this.gate ??= new InitiationGate(this.env.clock, this.env.rand01, pacing.maxConcurrent ?? 32);
    if (!pacing.gate && pacing.maxConcurrent !== undefined) this.gate.maxConcurrent = pacing.maxConcurrent;
    const gate = this.gate;
    const now: string[] = [];
    await this.startPeers((rt) => now.push(rt.policy.name));
    for (let i = now.length - 1; i > 0; i--) {
      const j = Math.floor(this.env.rand01() * (i + 1));
      [now[i], now[j]] = [now[j] as string, now[i] as string];
    }
    const epoch = this.startEpoch;
    for (const name of now) {
      const hold = pacedSlotHoldMs((this.peers.get(name) as PeerRuntime).policy.retransmit);
      void gate.run(() => this.startOne(name, epoch), pacing.jitterMs ?? 0, hold);
    }
  }

  /**
   * A `start = now` peer's initiation for a caller that holds a slot of the gate (a reload:
   * a new peer, or an IKEv1 peer renegotiated after its Delete), as a start-up one: wanted
   * up from here on, initiated unless something of the peer is up or coming up. Resolves
   * when its SA is up, failed or gone (the slot's end); a failed attempt is retried per the
   * backoff.
   */
  initiateInTurn(name: string): Promise<void> {
    const rt = this.peers.get(name);
    if (rt?.policy.start !== 'now' || this.isStopping) return Promise.resolve();
    rt.wantUp = true;
    return this.startOne(name, this.startEpoch, 'reload');
  }

  /** One start-up initiation in its turn: resolves when the slot is free again. */
  private startOne(name: string, epoch: number, what = 'start-up'): Promise<void> {
    return new Promise<void>((release) => {
      const rt = this.peers.get(name);
      if (epoch !== this.startEpoch || this.startInFlight.has(name) || !this.stillDue(rt)) {
        release();
        return;
      }
      this.startInFlight.set(name, release);
      void this.attempt(rt, what).then((started) => {
        if (!started) this.startDone(name);
      });
    });
  }

  /**
   * An SA of the peer is gone (called by the managers once it is out of their tables). A
   * start-up initiation whose SA went without an outcome (terminated by the operator while
   * connecting, replaced by a crossing SA that then failed quietly) frees its slot when
   * nothing of the peer's is coming up any more: otherwise the slot was held for ever, and
   * `maxConcurrent` such peers stopped every later start-up initiation.
   */
  onSaGone(name: string): void {
    if (this.startInFlight.has(name) && this.m.connecting(name).length === 0) this.startDone(name);
  }

  /** A start-up initiation of the peer is over (its SA up or failed): the next one may go. */
  private startDone(name: string): void {
    const release = this.startInFlight.get(name);
    if (!release) return;
    this.startInFlight.delete(name);
    release();
  }

  /**
   * Start-up per each peer's `start` action, in configuration order: traps installed for
   * `start = trap`; a `start = now` peer is wanted up and handed to `bringUp` (`start`
   * queues it for its paced initiation).
   */
  async startPeers(bringUp: (rt: PeerRuntime) => void): Promise<void> {
    for (const rt of this.peers.values()) {
      if (rt.policy.version !== this.opts.version) continue;
      if (rt.policy.start === 'trap') await this.installTraps(rt);
      if (rt.policy.start === 'now') {
        rt.wantUp = true;
        bringUp(rt);
      }
    }
  }

  /** Whether a start-up initiation of `rt` is still due: wanted, and no SA up or coming up. */
  stillDue(rt: PeerRuntime | undefined): rt is PeerRuntime {
    if (!rt?.wantUp || this.isStopping) return false;
    const name = rt.policy.name;
    return !this.m.established(name).length && !this.m.connecting(name).length;
  }
}
