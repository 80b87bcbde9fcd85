import { CoatiError } from '../errors.js';
import type { SaInfo } from '../kernel/types.js';
import { DEFAULT_OWNERSHIP } from '../kernel/xfrm/ownership.js';
import type { Identity } from '../sa/identity.js';
import { sameIdentity } from '../sa/identity.js';
import { followNatMapping } from '../sa/ike-sa-common.js';
import { PeerSupervisor } from '../sa/peer-supervision.js';
import type { PeerPolicy } from '../sa/policy.js';
import type { IkeProposalSpec } from '../sa/proposal.js';
import { pollUntil } from '../util/clock.js';
import type { InitiationGate } from '../util/paced.js';
import { MalformedMessageError } from '../wire/errors.js';
import {
  decodeHeader,
  decodeMessage,
  EXCHANGE,
  type IkeMessage,
  isNotify,
  NOTIFY,
  type Payload,
} from '../wire/ikev2/index.js';
import {
  answerMessageIdSync,
  type CheckpointV1,
  type ManagerInternals,
  prepareHandover,
  type RestoreOptions,
  type RestoreReport,
  type ResumeHooks,
  restoreCheckpoint,
  snapshotManager,
} from './checkpoint.js';
import { CookieJar } from './cookies.js';
import type { Endpoint, EngineEnv } from './env.js';
import { IkeAuthTask } from './exchanges/ike-auth.js';
import { evaluateInitRequest, IkeInitTask } from './exchanges/ike-init.js';
import { IkeSa, type IkeSaHost } from './ike-sa.js';
import { findNotify, P } from './payloads.js';
import type { PeerRuntime } from './peer-runtime.js';
import { PolicyBook } from './policy-book.js';
import { encodePlain } from './protect.js';
import type { InboundMessage } from './task-manager.js';

export interface ManagerLimits {
  /** Half-open SAs (all peers) above which IKE_SA_INIT needs a COOKIE. */
  cookieThreshold: number;
  /** Half-open SAs per source address; more are dropped. */
  halfOpenPerAddress: number;
  /** A responder SA that does not authenticate within this time is dropped. */
  halfOpenTimeoutMs: number;
  /** INVALID_IKE_SPI answers per second (RFC 7296 2.21.4 allows, rate-limited). */
  invalidSpiPerSecond: number;
  /** First reqid handed out (the kernel backend tags ownership by range). */
  reqidBase: number;
  /** Delay before a crossing-streams duplicate is deleted (the survivor carries traffic first). */
  duplicateGraceMs: number;
  /** How long an authenticated answer may take after the peer said INVALID_IKE_SPI. */
  lostStateConfirmMs: number;
  /** Our IKE port (500; tests and unprivileged demos use others). */
  ikePort: number;
  /** Base of coati's kernel policy priorities (inside the backend's owned band). */
  policyPriorityBase: number;
}

export const DEFAULT_LIMITS: ManagerLimits = {
  cookieThreshold: 2000,
  halfOpenPerAddress: 200,
  halfOpenTimeoutMs: 30_000,
  invalidSpiPerSecond: 20,
  reqidBase: 0xc0a70001,
  duplicateGraceMs: 2000,
  lostStateConfirmMs: 1000,
  ikePort: 500,
  policyPriorityBase: DEFAULT_OWNERSHIP.priorityMin + 0x1000,
};

const ZERO_SPI = Buffer.alloc(8);
const key = (spi: Buffer) => spi.toString('hex');

/**
 * Owns every IKEv2 SA of this daemon: the receive path, SA tables, peers'
 * runtime state, half-open limits and cookies, and what follows failures.
 */
export class Ikev2Manager implements IkeSaHost {
  readonly book: PolicyBook;
  private readonly bySpi = new Map<string, IkeSa>();
  private readonly halfOpen = new Map<string, IkeSa>();
  /** Peers' runtime state, dead-peer actions, retries, traps (shared with IKEv1). */
  private readonly sup: PeerSupervisor;
  private readonly cookies: CookieJar;
  private uidSeq = 0;
  private invalidSpiWindow = { at: 0, count: 0 };
  private readonly limits: ManagerLimits;

  constructor(
    readonly env: EngineEnv,
    limits: Partial<ManagerLimits> = {},
  ) {
    this.limits = { ...DEFAULT_LIMITS, ...limits };
    this.book = new PolicyBook(env.kernel, this.limits.policyPriorityBase);
    // Stopping (refuseNewSas) gates every initiation of the supervisor's own, as IKEv1's.
    this.sup = new PeerSupervisor(this, {
      version: 2,
      reqidBase: this.limits.reqidBase,
      stopping: () => this.refusing,
    });
    this.cookies = new CookieJar(env.random, () => env.clock.now());
  }

  private get peers(): Map<string, PeerRuntime> {
    return this.sup.peers;
  }

  // ---- configuration -------------------------------------------------------

  /** Adds or replaces a peer policy (existing SAs keep the policy they were made with until replaced). */
  setPeer(policy: PeerPolicy): void {
    this.sup.setPolicy(policy);
    this.peerIndexCache = undefined;
  }

  /**
   * Lookups the receive path makes per handshake, built once per config
   * change so that nothing scans every peer (a 500-peer mesh).
   */
  private peerIndexCache:
    | { byId: Map<string, PeerPolicy[]>; byAddr: Map<string, PeerPolicy[]>; v2: PeerPolicy[]; union: IkeProposalSpec[] }
    | undefined;

  private get peerIndex() {
    if (this.peerIndexCache) return this.peerIndexCache;
    const byId = new Map<string, PeerPolicy[]>();
    const byAddr = new Map<string, PeerPolicy[]>();
    const v2: PeerPolicy[] = [];
    const union: IkeProposalSpec[] = [];
    const seen = new Set<string>();
    for (const rt of this.peers.values()) {
      const p = rt.policy;
      if (p.version !== 2) continue;
      v2.push(p);
      const ids = byId.get(p.remoteId.text);
      if (ids) ids.push(p);
      else byId.set(p.remoteId.text, [p]);
      const addrs = byAddr.get(p.remoteAddress);
      if (addrs) addrs.push(p);
      else byAddr.set(p.remoteAddress, [p]);
      for (const prop of p.ikeProposals) {
        const k = JSON.stringify(prop);
        if (!seen.has(k)) {
          seen.add(k);
          union.push(prop);
        }
      }
    }
    this.peerIndexCache = { byId, byAddr, v2, union };
    return this.peerIndexCache;
  }

  /** Candidate peers for a responder SA from `addr`, before the peer's identity is known. */
  candidatesFor(addr: string): PeerPolicy[] {
    const idx = this.peerIndex;
    return idx.byAddr.get(addr) ?? idx.v2;
  }

  peer(name: string): PeerRuntime | undefined {
    return this.peers.get(name);
  }

  peerNames(): string[] {
    return [...this.peers.keys()];
  }

  /** Removes a peer: its SAs are deleted through the peer, its traps removed. */
  async removePeer(name: string): Promise<void> {
    await this.terminate(name);
    const rt = this.peers.get(name);
    if (!rt) return;
    await this.sup.untrapAll(rt);
    this.sup.forget(name);
    this.peerIndexCache = undefined;
  }

  // ---- IkeSaHost -----------------------------------------------------------

  reqidFor(peer: string, child: string): number {
    return this.sup.reqidFor(peer, child);
  }

  newSpi(): Buffer {
    for (;;) {
      const spi = this.env.random(8);
      if (!spi.equals(ZERO_SPI) && !this.bySpi.has(key(spi))) return spi;
    }
  }

  newUid(): number {
    return ++this.uidSeq;
  }

  resolvePeer(id: Identity, remote: Endpoint): PeerPolicy | undefined {
    const matches = (this.peerIndex.byId.get(id.text) ?? []).filter((p) => sameIdentity(p.remoteId, id));
    return matches.find((p) => p.remoteAddress === remote.addr) ?? matches[0];
  }

  wantsInitialContact(peer: PeerPolicy): boolean {
    return this.sup.wantsInitialContact(peer);
  }

  onEstablished(sa: IkeSa, initialContact: boolean): void {
    const peer = sa.peer;
    this.dropHalfOpen(sa);
    if (!peer) return;
    this.indexSa(sa);
    this.sup.onUp(peer.name);
    this.env.emit({
      type: 'handshake.completed',
      peer: peer.name,
      version: 2,
      role: sa.role,
      latencyMs: this.env.clock.now() - sa.createdAt,
    });
    this.env.emit({ type: 'peer.up', peer: peer.name, reason: `IKE SA ${sa.label} established` });
    if (initialContact) this.honourInitialContact(sa);
    const dups = this.established(peer.name).filter((o) => o !== sa);
    if (dups.length) {
      this.env.clock.setTimer(this.limits.duplicateGraceMs * (0.75 + this.env.rand01() / 2), () =>
        this.resolveDuplicates(peer.name),
      );
    }
  }

  onFailure(sa: IkeSa, reason: string, phase: 'establish' | 'liveness' | 'exchange'): void {
    if (this.resumeHooks?.onFailure(sa, reason, phase)) return;
    const name = sa.peer?.name;
    const rt = name ? this.peers.get(name) : undefined;
    void sa.queue.run(async () => {
      const wasUp = sa.state === 'established' || sa.state === 'rekeying';
      // Before the SA goes: a lost restart relationship is wanted from here on (its policies stay).
      this.sup.onSaFailed(rt, sa, reason, phase);
      // A timed-out attempt already waited this long for an answer since it last sent.
      const sentAt = sa.tm.lastRequestSentAt;
      const silentMs = sentAt ? this.env.clock.now() - sentAt : 0;
      await sa.destroy(reason);
      if (wasUp && name) this.env.emit({ type: 'peer.down', peer: name, reason });
      if (rt) await this.sup.afterLoss(rt, phase, silentMs);
    });
  }

  onPeerDeleting(sa: IkeSa): void {
    if (sa.rekeyedAway) return;
    const name = sa.peer?.name;
    // Before the SA goes: a restart relationship is wanted from here on (its policies stay).
    this.sup.onPeerDeleting(name ? this.peers.get(name) : undefined, sa);
  }

  onPeerDelete(sa: IkeSa): void {
    const name = sa.peer?.name;
    const rt = name ? this.peers.get(name) : undefined;
    if (!rt || sa.rekeyedAway) return;
    // A graceful stop of the peer (or an operator's terminate there): follow the configured action.
    void this.sup.onDeletedByPeer(rt);
  }

  // ---- kernel state left by a previous incarnation ----------------------------

  private orphans: SaInfo[] = [];
  /** Whether the orphan list was taken (by the daemon before it opened its sockets, or by `start`). */
  private orphansAdopted = false;

  /**
   * Notes owned kernel SAs this process did not create (a crash left them).
   * They keep carrying traffic until the relationship with their peer is
   * re-established, then go after a grace period; orphans of no configured
   * peer go after `orphanMaxAgeMs`.
   *
   * Take the list before anything can negotiate (coatid: before it opens its
   * sockets). Every kernel SA listed that no restored SA explains is called an
   * orphan, so a Child SA being installed at the time of the listing (its
   * inbound SA in the kernel, the child not yet on its IKE SA) would be deleted
   * as one once its own pair is up.
   */
  async adoptOrphans(orphanMaxAgeMs = 120_000): Promise<number> {
    this.orphansAdopted = true;
    try {
      // Kernel SAs of SAs we hold (restored from a checkpoint) are not orphans.
      const explained = new Set<string>();
      for (const sa of this.bySpi.values())
        for (const c of sa.children.values()) {
          explained.add(`${sa.local.addr}|${c.spiIn}`);
          explained.add(`${sa.remote.addr}|${c.spiOut}`);
        }
      this.orphans = (await this.env.kernel.listSas()).filter((o) => !explained.has(`${o.dst}|${o.spi}`));
    } catch (err) {
      this.env.log.warn('cannot list kernel SAs', { error: String(err) });
      return 0;
    }
    if (this.orphans.length) {
      this.env.clock.setTimer(orphanMaxAgeMs, () => void this.reapOrphans(() => true, 'unclaimed after start'));
    }
    return this.orphans.length;
  }

  onChildInstalled(sa: IkeSa): void {
    this.resumeHooks?.onChildInstalled(sa);
    this.reapOrphansOf(sa.remote.addr, sa.label);
  }

  /**
   * A relationship with `remote` has a new Child SA pair (IKEv2, or IKEv1 through
   * the daemon: the orphan list covers every owned kernel SA): the previous
   * incarnation's SAs with that address go after the duplicate grace period.
   */
  reapOrphansOf(remote: string, label: string): void {
    if (!this.orphans.some((o) => o.src === remote || o.dst === remote)) return;
    this.env.clock.setTimer(this.limits.duplicateGraceMs, () => {
      void this.reapOrphans((o) => o.src === remote || o.dst === remote, `replaced by ${label}`);
    });
  }

  private async reapOrphans(match: (o: SaInfo) => boolean, why: string): Promise<void> {
    const go = this.orphans.filter(match);
    this.orphans = this.orphans.filter((o) => !match(o));
    for (const o of go) {
      try {
        await this.env.kernel.deleteSa({ dst: o.dst, spi: o.spi, proto: o.proto, ...(o.mark ? { mark: o.mark } : {}) });
        this.env.emit({ type: 'orphan.removed', spi: o.spi.toString(16), dst: o.dst, reason: why });
      } catch {
        // Already gone.
      }
    }
  }

  onDestroyed(sa: IkeSa): void {
    this.bySpi.delete(key(sa.ourSpi));
    this.dropHalfOpen(sa);
    const name = sa.peer?.name;
    const set = name ? this.byPeer.get(name) : undefined;
    if (name && set?.delete(sa) && set.size === 0) this.byPeer.delete(name);
    if (name) this.sup.onSaGone(name);
  }

  /** SAs by peer name (once the SA knows its peer). */
  private readonly byPeer = new Map<string, Set<IkeSa>>();

  private indexSa(sa: IkeSa): void {
    const name = sa.peer?.name;
    if (!name) return;
    let set = this.byPeer.get(name);
    if (!set) {
      set = new Set();
      this.byPeer.set(name, set);
    }
    set.add(sa);
  }

  onRekeyed(_old: IkeSa, fresh: IkeSa): void {
    fresh.peerMsgIdSync = _old.peerMsgIdSync;
    this.bySpi.set(key(fresh.ourSpi), fresh);
    this.indexSa(fresh);
  }

  // ---- traps and ACQUIRE (logic in sa/peer-supervision.ts) ----------------------

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

  /** Kernel ACQUIRE for one of our reqids: bring the owning peer up. */
  onAcquire(reqid: number): Promise<void> {
    return this.sup.onAcquire(reqid);
  }

  // ---- start-up (pacing in sa/peer-supervision.ts) ------------------------------------

  /**
   * Adopts the kernel SAs a crashed predecessor left, then brings up every peer per its
   * `start` action: traps first, then `start = now` peers in random order, at most
   * `maxConcurrent` initiations in flight, each delayed by up to `jitterMs`.
   */
  async start(pacing: Partial<{ maxConcurrent: number; jitterMs: number; gate: InitiationGate }> = {}): Promise<void> {
    if (!this.orphansAdopted) await this.adoptOrphans();
    await this.sup.start(pacing);
  }

  // ---- operator / daemon API ---------------------------------------------------

  /** Starts a new IKE SA to the peer (IKE_SA_INIT + IKE_AUTH + first Child SA). */
  async initiate(name: string): Promise<IkeSa> {
    const rt = this.sup.beginInitiate(name);
    const p = rt.policy;
    rt.initiating = true;
    let localAddr: string;
    try {
      localAddr = p.localAddress ?? (await this.sup.sourceFor(p.remoteAddress));
    } finally {
      rt.initiating = false;
    }
    const local = { addr: localAddr, port: this.limits.ikePort };
    const sa = new IkeSa(
      this,
      this.newUid(),
      'initiator',
      this.newSpi(),
      Buffer.alloc(8),
      local,
      { addr: p.remoteAddress, port: p.remotePort },
      p,
    );
    this.wire(sa);
    const failed = () => this.onFailure(sa, sa.lastError?.message ?? 'establishment failed', 'establish');
    try {
      await sa.tm.enqueue(new IkeInitTask(sa, failed));
      await sa.tm.enqueue(new IkeAuthTask(sa, failed));
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
   * Stopping (shutdown, or a planned restart before its checkpoint): no new IKE SAs,
   * neither answered (IKE_SA_INIT is dropped; the peer retries later or elsewhere) nor
   * started (no retries, no dead-peer restart, no ACQUIRE; initiate() refuses with
   * STOPPING). One made now would be torn down without a Delete a moment later, or be
   * missing from the handover checkpoint. Requests on existing SAs are still answered.
   */
  refuseNewSas(): void {
    this.refusing = true;
    this.acceptingInit = false;
    this.sup.cancelRetries();
  }

  /** Deletes the peer's IKE SAs through the peer and stops wanting it up. */
  async terminate(name: string): Promise<number> {
    this.sup.stopWanting(name);
    const sas = this.sasOf(name);
    const wasUp = this.established(name).length > 0;
    await Promise.all(sas.map((sa) => sa.queue.run(() => sa.delete('terminated by operator'))));
    if (wasUp) this.env.emit({ type: 'peer.down', peer: name, reason: 'terminated by operator' });
    return sas.length;
  }

  /**
   * We refused the peer's answer to our IKE SA rekey: the peer may have moved to the new
   * IKE SA and answer TEMPORARY_FAILURE to anything on this one from now on (its old SA is
   * rekeyed, waiting for our Delete). Retrying the rekey would fail the same way, and the
   * duplicate rule could even keep this SA over the one the peer makes when it finds its
   * new SA unknown to us. A fresh IKE SA with INITIAL_CONTACT replaces it, make before break.
   */
  onRekeyAnswerRefused(sa: IkeSa): void {
    const name = sa.peer?.name;
    if (sa.retiring || this.refusing) return; // being replaced already, or stopping
    if (!name) {
      sa.scheduleIkeRekeyRetry();
      return;
    }
    this.env.log.warn('IKE SA rekey answer refused: replacing the IKE SA', { peer: name, sa: sa.label });
    // With INITIAL_CONTACT: the peer then drops every other IKE SA it has with us, including
    // the one its side of the refused rekey made, which we never had (left alone, its duplicate
    // rule could even keep that one over the fresh SA).
    this.sup.contacted.delete(name);
    // A moment later, so the peer sees the new SA start after the one it made for the rekey
    // (INITIAL_CONTACT only drops IKE SAs that predate the new one).
    this.env.clock.setTimer(250 + Math.floor(this.env.rand01() * 250), () => {
      if (sa.state === 'destroyed' || sa.retiring || this.refusing) return;
      // If no fresh SA comes up, the old one is kept (`replace` leaves it) and its rekey retried.
      const fallBack = () => {
        if (sa.state === 'established' && !sa.retiring) sa.scheduleIkeRekeyRetry();
      };
      this.replace(name, 30_000, 'replaced: the peer took a rekey whose answer we refused').then(
        fallBack,
        (err: unknown) => {
          this.env.log.warn('replacing the IKE SA failed', { peer: name, error: String(err) });
          fallBack();
        },
      );
    });
  }

  /**
   * Make before break (a changed peer configuration, or a refused rekey answer): a new
   * IKE SA with the current policy is negotiated; the old SAs are deleted (with `reason`)
   * once it is up. Old SAs are marked retiring so the duplicate rule never keeps one of
   * them over the new one.
   */
  async replace(name: string, waitMs = 30_000, reason = 'replaced after a configuration change'): Promise<void> {
    const old = this.sasOf(name);
    for (const sa of old) sa.retiring = true;
    let fresh: IkeSa;
    try {
      fresh = await this.initiate(name);
    } catch (err) {
      for (const sa of old) sa.retiring = false;
      throw err;
    }
    await pollUntil(this.env.clock, () => fresh.state === 'established' || fresh.state === 'destroyed', waitMs);
    if (fresh.state !== 'established') {
      for (const sa of old) sa.retiring = false;
      return;
    }
    await Promise.all(old.map((sa) => sa.queue.run(() => sa.delete(reason))));
  }

  sasOf(name: string): IkeSa[] {
    return [...(this.byPeer.get(name) ?? [])].filter((sa) => sa.state !== 'destroyed');
  }

  established(name: string): IkeSa[] {
    return this.sasOf(name).filter((sa) => sa.state === 'established' || sa.state === 'rekeying');
  }

  connecting(name: string): IkeSa[] {
    return this.sasOf(name).filter(
      (sa) => sa.state === 'created' || sa.state === 'connecting' || sa.state === 'authenticating',
    );
  }

  allSas(): IkeSa[] {
    return [...this.bySpi.values()];
  }

  // ---- crossing streams and INITIAL_CONTACT --------------------------------------

  /**
   * Several IKE SAs with one peer (both initiated at once): both ends keep the
   * same one, the SA with the greatest SPIi|SPIr, a rule each end computes
   * alike. Only the duplicate's initiator deletes it, after a grace period in
   * which the survivor carries traffic.
   */
  private resolveDuplicates(name: string): void {
    const sas = this.established(name).filter((sa) => !sa.retiring);
    if (sas.length < 2) return;
    const rank = (sa: IkeSa) => Buffer.concat([sa.spiI, sa.spiR]);
    const survivor = sas.reduce((a, b) => (Buffer.compare(rank(a), rank(b)) >= 0 ? a : b));
    for (const sa of sas) {
      if (sa === survivor) continue;
      if (sa.isInitiator) {
        this.env.emit({ type: 'duplicate.deleted', peer: name, sa: sa.label, survivor: survivor.label });
        void sa.queue.run(() => sa.delete('duplicate IKE SA (crossing streams)'));
      } else {
        // The peer deletes it; if it does not, we do after a longer grace.
        this.env.clock.setTimer(this.limits.duplicateGraceMs * 10, () => {
          if (sa.state === 'established' && this.established(name).length > 1)
            void sa.queue.run(() => sa.delete('duplicate IKE SA not deleted by peer'));
        });
      }
    }
  }

  /** The peer lost its state: drop SAs with its identity that predate the new SA (RFC 7296 2.4). */
  private honourInitialContact(sa: IkeSa): void {
    const id = sa.remoteId;
    if (!id || !sa.peer) return;
    for (const other of this.sasOf(sa.peer.name)) {
      if (other === sa || !other.remoteId || !sameIdentity(other.remoteId, id)) continue;
      if (other.state !== 'established' && other.state !== 'rekeying' && other.state !== 'rekeyed') continue;
      if (other.establishedAt >= sa.createdAt) continue; // made by the peer's current incarnation
      this.env.emit({ type: 'initial_contact.purge', peer: sa.peerName, sa: other.label });
      void other.queue.run(() => other.destroy('INITIAL_CONTACT from peer'));
    }
  }

  // ---- receive path ------------------------------------------------------------

  /** Entry point for every IKEv2 datagram (non-ESP marker already stripped). Never throws. */
  receive(data: Buffer, from: Endpoint, to: Endpoint): void {
    if (this.frozen) return; // handed over: the next process answers (peers retransmit)
    let msg: IkeMessage;
    try {
      msg = decodeMessage(data);
    } catch (err) {
      // Another major version is named as such, whatever the rest looks like.
      const major = this.majorVersionOf(data);
      if (major !== undefined && major !== 2) return this.drop(`IKE major version ${major}`, from);
      const reason = err instanceof MalformedMessageError ? err.message : `decoder failure: ${String(err)}`;
      return this.drop(reason, from);
    }
    try {
      this.dispatch(data, msg, from, to);
    } catch (err) {
      this.env.log.error('receive path failed', {
        error: err instanceof Error ? err.stack : String(err),
        from: `${from.addr}:${from.port}`,
      });
    }
  }

  private majorVersionOf(data: Buffer): number | undefined {
    try {
      return decodeHeader(data).majorVersion;
    } catch {
      return undefined;
    }
  }

  private dispatch(data: Buffer, msg: IkeMessage, from: Endpoint, to: Endpoint): void {
    const h = msg.header;
    const fromInitiator = h.flags.initiator;
    if (fromInitiator && !h.flags.response && h.exchangeType === EXCHANGE.IKE_SA_INIT && h.spiR.equals(ZERO_SPI)) {
      return this.onInitRequest(data, msg, from, to);
    }
    const ours = fromInitiator ? h.spiR : h.spiI;
    const sa = this.bySpi.get(key(ours));
    if (!sa) {
      if (!h.flags.response && h.exchangeType !== EXCHANGE.IKE_SA_INIT) this.answerInvalidSpi(msg, from, to);
      return this.drop(`unknown IKE SPI ${key(ours)}`, from);
    }
    if (this.isUnprotectedInvalidSpi(msg)) {
      void sa.queue.run(() => this.suspectLostState(sa));
      return;
    }
    sa.queue
      .run(() => sa.handle(data, msg, from, to))
      .catch((err) => {
        this.env.log.error('IKE SA failed handling a message', {
          sa: sa.label,
          error: err instanceof Error ? err.stack : String(err),
        });
        if (sa.state === 'destroyed') return;
        // A failure like any other (e.g. the kernel refused an SPI for IKE_AUTH): the SA goes
        // and the peer's retry or dead-peer action follows; a bare destroy left a wanted peer down.
        const message = `internal error: ${err instanceof Error ? err.message : String(err)}`;
        const code = err instanceof CoatiError ? err.code : 'INTERNAL';
        sa.lastError = { code, message, at: this.env.clock.now() };
        const up = sa.state === 'established' || sa.state === 'rekeying';
        this.onFailure(sa, message, up ? 'exchange' : 'establish');
      });
  }

  private onInitRequest(data: Buffer, msg: IkeMessage, from: Endpoint, to: Endpoint): void {
    const h = msg.header;
    // Stopping or handing over: no new IKE SAs; the initiator retransmits (to the next process).
    if (!this.acceptingInit) return this.drop('new IKE SA refused: IKE_SA_INIT while the daemon is stopping', from);
    const hoKey = `${key(h.spiI)}|${from.addr}|${from.port}`;
    const existing = this.halfOpen.get(hoKey);
    if (existing) {
      void existing.queue.run(() => existing.handle(data, msg, from, to));
      return;
    }
    const nonce = msg.payloads.find((p) => p.type === 40);
    const ni = nonce && 'data' in nonce ? nonce.data : Buffer.alloc(0);
    const reply = (payloads: ReturnType<typeof P.notify>[]) =>
      this.env.send({
        data: encodePlain(
          {
            spiI: h.spiI,
            spiR: ZERO_SPI,
            exchangeType: EXCHANGE.IKE_SA_INIT,
            messageId: 0,
            initiator: false,
            response: true,
          },
          payloads,
        ),
        local: to,
        remote: from,
      });
    if (this.halfOpen.size >= this.limits.cookieThreshold) {
      const cookie = findNotify(msg.payloads, NOTIFY.COOKIE);
      if (!cookie || !this.cookies.verify(cookie.data, ni, from.addr, h.spiI)) {
        this.env.emit({ type: 'cookie.sent', addr: from.addr });
        return reply([P.notify(NOTIFY.COOKIE, this.cookies.issue(ni, from.addr, h.spiI))]);
      }
    }
    if ((this.halfOpenByAddr.get(from.addr) ?? 0) >= this.limits.halfOpenPerAddress) {
      return this.drop('half-open limit for address', from);
    }
    const proposals = this.proposalsFor(from.addr);
    const verdict = evaluateInitRequest(msg.payloads, proposals);
    if (verdict.kind === 'reject') {
      this.env.emit({
        type: 'handshake.failed',
        peer: `${from.addr}:${from.port}`,
        version: 2,
        role: 'responder',
        reason: 'NO_PROPOSAL_CHOSEN',
        detail: verdict.reason,
      });
      return reply(verdict.payloads as ReturnType<typeof P.notify>[]);
    }
    const sa = new IkeSa(this, this.newUid(), 'responder', h.spiI, this.newSpi(), { ...to }, { ...from });
    sa.responderProposals = proposals;
    sa.initVerdict = { payloads: msg.payloads, suite: verdict.suite, num: verdict.num };
    this.wire(sa);
    this.halfOpen.set(hoKey, sa);
    sa.halfOpenKey = hoKey;
    this.halfOpenByAddr.set(from.addr, (this.halfOpenByAddr.get(from.addr) ?? 0) + 1);
    sa.armHalfOpen(this.limits.halfOpenTimeoutMs);
    void sa.queue.run(() => sa.handle(data, msg, from, to));
  }

  /** Proposals for an IKE_SA_INIT from `addr`: the matching peer's, else every IKEv2 peer's. */
  private proposalsFor(addr: string): IkeProposalSpec[] {
    const idx = this.peerIndex;
    return idx.byAddr.get(addr)?.[0]?.ikeProposals ?? idx.union;
  }

  private wire(sa: IkeSa): void {
    this.bySpi.set(key(sa.ourSpi), sa);
    this.indexSa(sa);
    sa.onRemoteMoved = (old) => void sa.queue.run(() => followNatMapping(sa, old, (c) => sa.rekeyChild(c)));
  }

  /** Half-open responder SAs per source address (the per-address limit). */
  private readonly halfOpenByAddr = new Map<string, number>();

  private dropHalfOpen(sa: IkeSa): void {
    const k = sa.halfOpenKey;
    if (k === undefined || this.halfOpen.get(k) !== sa) return;
    this.halfOpen.delete(k);
    sa.halfOpenKey = undefined;
    const n = (this.halfOpenByAddr.get(sa.remote.addr) ?? 1) - 1;
    if (n > 0) this.halfOpenByAddr.set(sa.remote.addr, n);
    else this.halfOpenByAddr.delete(sa.remote.addr);
  }

  private isUnprotectedInvalidSpi(msg: IkeMessage): boolean {
    return (
      msg.header.exchangeType === EXCHANGE.INFORMATIONAL &&
      msg.payloads.some((p) => isNotify(p) && p.notifyType === NOTIFY.INVALID_IKE_SPI)
    );
  }

  /**
   * Unauthenticated INVALID_IKE_SPI: the peer may have lost its state. Confirm
   * with one liveness probe on a short timer (or cut short the request in
   * flight) before the SA is declared dead and the dead-peer action runs.
   */
  private async suspectLostState(sa: IkeSa): Promise<void> {
    if (sa.state !== 'established' && sa.state !== 'rekeying') return;
    this.env.emit({ type: 'liveness.suspect', peer: sa.peerName, reason: 'INVALID_IKE_SPI from peer' });
    if (sa.tm.busy) sa.tm.expedite(this.limits.lostStateConfirmMs);
    else void sa.probe(this.limits.lostStateConfirmMs);
    // Make before break: negotiate a replacement now. The old SA is torn down only if the
    // probe confirms the loss; after a false alarm the duplicate rule keeps one of the two.
    const name = sa.peer?.name;
    const rt = name ? this.peers.get(name) : undefined;
    if (sa.replacementStarted || !name || !rt || rt.policy.version !== 2) return;
    if (this.established(name).some((o) => o !== sa && o.establishedAt >= sa.establishedAt)) return;
    if (!rt.initiating && this.connecting(name).length === 0) {
      sa.replacementStarted = true;
      this.initiate(name).catch((err) =>
        this.env.log.warn('replacement initiation failed', { peer: name, error: String(err) }),
      );
    }
  }

  private answerInvalidSpi(msg: IkeMessage, from: Endpoint, to: Endpoint): void {
    const now = this.env.clock.now();
    if (now - this.invalidSpiWindow.at >= 1000) this.invalidSpiWindow = { at: now, count: 0 };
    if (++this.invalidSpiWindow.count > this.limits.invalidSpiPerSecond) return;
    const h = msg.header;
    this.env.send({
      data: encodePlain(
        {
          spiI: h.spiI,
          spiR: h.spiR,
          exchangeType: EXCHANGE.INFORMATIONAL,
          messageId: h.messageId,
          initiator: !h.flags.initiator,
          response: true,
        },
        [P.notify(NOTIFY.INVALID_IKE_SPI)],
      ),
      local: to,
      remote: from,
    });
  }

  private drop(reason: string, from: Endpoint): void {
    this.env.emit({ type: 'packet.dropped', reason, from: `${from.addr}:${from.port}` });
  }

  // ---- checkpoint and restart (logic in checkpoint.ts) ----------------------------

  private acceptingInit = true;
  private frozen = false;
  private resumeHooks: ResumeHooks | undefined;

  /** What checkpoint.ts reads and rebuilds; not for other callers. */
  private get internals(): ManagerInternals {
    return {
      peers: this.peers,
      contacted: this.sup.contacted,
      uidSeq: this.uidSeq,
      nextReqid: this.sup.nextReqid,
      bumpCounters: (uid, reqid) => {
        this.uidSeq = Math.max(this.uidSeq, uid);
        this.sup.nextReqid = Math.max(this.sup.nextReqid, reqid);
      },
      adoptReqid: (peer, child, reqid) => this.sup.adoptReqid(peer, child, reqid),
      adopt: (sa) => this.wire(sa),
      halfOpen: () => this.halfOpen.size,
      setAcceptingInit: (on) => {
        this.acceptingInit = on;
      },
      freeze: () => {
        this.frozen = true;
      },
      setHooks: (h) => {
        this.resumeHooks = h;
      },
    };
  }

  /** Every established IKE and Child SA with keys and message IDs, as plain JSON data (a secret). */
  snapshot(kind: 'continuous' | 'handover' = 'continuous'): CheckpointV1 {
    return snapshotManager(this, this.internals, kind);
  }

  /** Rebuilds SAs from a checkpoint, before `start()`. Never throws on a bad checkpoint: it reports and renegotiates. */
  restore(cp: unknown, opts: RestoreOptions = {}): Promise<RestoreReport> {
    return restoreCheckpoint(this, this.internals, cp, opts);
  }

  /** Planned restart: stop taking new IKE SAs, let exchanges in flight finish (≤ ~2 s), freeze, snapshot. */
  prepareHandover(maxWaitMs = 2000): Promise<CheckpointV1> {
    return prepareHandover(this, this.internals, maxWaitMs);
  }

  onMessageIdSync(sa: IkeSa, msg: InboundMessage<Payload>): Promise<void> {
    return answerMessageIdSync(sa, msg);
  }

  /** Stops every timer; with `keepKernel` the kernel SAs and policies stay (restart handover). */
  async close(opts: { keepKernel?: boolean } = {}): Promise<void> {
    this.sup.cancelRetries();
    await Promise.all([...this.bySpi.values()].map((sa) => sa.queue.run(() => sa.destroy('daemon stopping', opts))));
  }
}
