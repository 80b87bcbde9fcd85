import type { KeyExchange } from '../crypto/dh.js';
import {
  type HashFn,
  type Phase1Crypto,
  type Phase1Keys,
  type PrfFn,
  payloadChainLength,
} from '../crypto/ikev1/index.js';
import { type ChildSa, destroyChildSecrets, uninstallChild } from '../ikev2/child-sa.js';
import type { Endpoint, EngineEnv } from '../ikev2/env.js';
import type { PolicyBook } from '../ikev2/policy-book.js';
import { DEFAULT_RETRANSMIT, retransmitTimeout } from '../ikev2/retransmit.js';
import type { Identity } from '../sa/identity.js';
import * as common from '../sa/ike-sa-common.js';
import type { PeerPolicy } from '../sa/policy.js';
import { type ChildState, type IkeState, transitionIke } from '../sa/state.js';
import { type Timer, withJitter } from '../util/clock.js';
import { SerialQueue } from '../util/serial-queue.js';
import {
  decodeV1PayloadChain,
  encodeEncryptedIsakmp,
  encodeIsakmpMessage,
  encodeV1PayloadChain,
  type IsakmpHeader,
  type SaV1Payload,
  type V1Payload,
} from '../wire/ikev1/index.js';
import type { Phase1Suite } from './proposals.js';

/** What an ISAKMP SA needs from its manager. */
export interface IsakmpSaHost {
  readonly env: EngineEnv;
  readonly book: PolicyBook;
  reqidFor(peer: string, child: string): number;
  /** Phase 1 completed (both roles). */
  onEstablished(sa: IsakmpSa, initialContact: boolean): void;
  /** Phase 1 failed, or the peer is dead. */
  onFailure(sa: IsakmpSa, reason: string, phase: 'establish' | 'liveness'): void;
  /** The SA is gone; remove it from every table. */
  onDestroyed(sa: IsakmpSa): void;
  /** The SA's peer policy was set or replaced (the host indexes SAs by peer name). */
  onPeerSet?(sa: IsakmpSa, before: PeerPolicy | undefined): void;
  /** The SA's authenticated remote identity was set or replaced (the host indexes SAs by it). */
  onRemoteIdSet?(sa: IsakmpSa, before: Identity | undefined): void;
  /** Responder, PSK: the distinct pre-shared keys a Main Mode 5 from `remote` may use, each with its peers by identity. */
  pskGroupsFor?(remote: Endpoint): readonly PskGroup[];
  /** The responder cookie became known (initiator, MM2/AM2). */
  onCookies(sa: IsakmpSa): void;
  /** The peer deleted this ISAKMP SA; its phase 2 SAs may move to a sibling. */
  onIsakmpDeleted(sa: IsakmpSa): Promise<void>;
  /** Time to replace this ISAKMP SA (soft lifetime). */
  onIsakmpRekeyDue(sa: IsakmpSa): void;
  /** The peer's NAT mapping moved (an authentic message from a new address or port): move the phase 2 SAs. */
  onRemoteMoved?(sa: IsakmpSa, old: Endpoint): void;
  /** Unauthenticated INVALID-COOKIE (`notify`) for this established SA: the peer may have lost its state. */
  onLostStateHint?(sa: IsakmpSa, notify: string): void;
  /** Whether INITIAL-CONTACT should accompany the first ISAKMP SA to this peer. */
  wantsInitialContact(peer: PeerPolicy): boolean;
  /**
   * A Quick Mode completed; `rekeyOf` is the pair our own Quick Mode replaces (rekey initiator only),
   * `peerStartedAt` when the peer's QM1 arrived (responder only).
   */
  onChildInstalled(sa: IsakmpSa, child: ChildSa, rekeyOf?: ChildSa, peerStartedAt?: number): void;
  /** The peer is deleting this phase 2 pair (called before it is removed). */
  onChildDeletingByPeer?(sa: IsakmpSa, child: ChildSa): void;
  /** The peer deleted this phase 2 pair (it is gone). */
  onChildDeletedByPeer?(sa: IsakmpSa, child: ChildSa): void;
  /** Responder: the IKEv1 peers a Main Mode from `remote` may be (address matches first). */
  candidatesFor(remote: Endpoint): PeerPolicy[];
  /** Responder: the IKEv1 peer with this identity (Aggressive Mode). */
  peerById(id: Identity, remote: Endpoint): PeerPolicy | undefined;
}

export type V1Role = 'initiator' | 'responder';

/** PSK peers that share one key, indexed by remote identity (`identityKey`), in candidate order. */
export interface PskGroup {
  /** A peer with this key (its key derives SKEYID). */
  first: PeerPolicy;
  byId: Map<string, PeerPolicy[]>;
}

/** The index key of an identity: equal for exactly the identities `sameIdentity` equates. */
export function identityKey(id: Identity): string {
  return `${id.kind}\u0000${id.text}`;
}

/** One exchange's last datagrams, for retransmission and duplicate replay. */
interface Flight {
  sent?: Buffer;
  recv?: Buffer;
  timer?: Timer;
  label: string;
}

/** A decrypted (or plain) message with the raw payload chain for hash checks. */
export interface Opened {
  payloads: V1Payload[];
  /** The payload chain bytes without padding (plain messages: the body). */
  chain: Buffer;
  /** Whether this was a fresh decrypt that `reject()` must roll back on failure. */
  fresh: boolean;
}

/**
 * One ISAKMP SA (IKEv1 phase 1) with its phase 2 SAs. All inbound processing
 * runs through `queue`, so an await on the kernel never interleaves two
 * messages of one SA.
 */
export class IsakmpSa {
  state: IkeState = 'created';
  readonly queue = new SerialQueue();
  readonly children = new Map<string, ChildSa>();
  mode: 'main' | 'aggressive' = 'main';
  private peerPolicy: PeerPolicy | undefined;
  /** The peer's policy (a responder learns it from MM5 or AM1). */
  get peer(): PeerPolicy | undefined {
    return this.peerPolicy;
  }
  set peer(p: PeerPolicy | undefined) {
    const before = this.peerPolicy;
    this.peerPolicy = p;
    if (before !== p) this.host.onPeerSet?.(this, before);
  }
  private peerId: Identity | undefined;
  /** The peer's authenticated identity (the host indexes SAs by it). */
  get remoteId(): Identity | undefined {
    return this.peerId;
  }
  set remoteId(id: Identity | undefined) {
    const before = this.peerId;
    this.peerId = id;
    if (before !== id) this.host.onRemoteIdSet?.(this, before);
  }
  suite: Phase1Suite | undefined;
  keys: Phase1Keys | undefined;
  crypto: Phase1Crypto | undefined;
  prf: PrfFn | undefined;
  hash: HashFn | undefined;
  /** Handshake state, dropped once established. */
  hs: {
    offer?: SaV1Payload;
    saiB?: Buffer;
    ke?: KeyExchange;
    gxi?: Buffer;
    gxr?: Buffer;
    ni?: Buffer;
    nr?: Buffer;
    shared?: Buffer;
    /** Aggressive Mode: the initiator's and responder's ID payload bodies. */
    idiB?: Buffer;
    idrB?: Buffer;
    /** Last phase 1 message number sent or accepted. */
    step?: number;
    /** Responder: proposals and auth methods an MM1/AM1 is selected against. */
    specs?: import('../sa/proposal.js').IkeProposalSpec[];
  } = {};
  peerNatT = false;
  peerDpd = false;
  nat = { local: false, remote: false };
  initialContactSent = false;
  /** When a lost-state hint (INVALID-COOKIE) was last acted on (one confirmation at a time). */
  lostStateHintAt = 0;
  /** The peer said it lost this SA and the DPD confirmation is in flight (or failed). */
  lostState = false;
  readonly createdAt: number;
  establishedAt = 0;
  lastInboundAt = 0;
  /** When this SA last sent anything (the restart backoff after a failed attempt counts from it). */
  lastSentAt = 0;
  expireAt = 0;
  rekeyAt = 0;
  /** Set on an ISAKMP SA being replaced by a newer one. */
  replacedBy: IsakmpSa | undefined;
  /** Set on a re-negotiated ISAKMP SA (initiator): the SA it supersedes. */
  replaces: IsakmpSa | undefined;
  /**
   * Being replaced (`Ikev1Manager.replace`, a changed configuration): neither it nor its
   * phase 2 pairs count for the crossing-streams rule or as a configured child's pair, and it
   * is not re-negotiated; it is deleted once its successor has its pairs.
   */
  retiring = false;
  lastError: { code: string; message: string; at: number } | undefined;
  dpd: {
    seqOut: number;
    outstanding: Set<number>;
    timer?: Timer;
    tries: number;
    /** Callers waiting for the verdict of the DPD round in flight. */
    waiters: ((r: 'alive' | 'dead') => void)[];
  } = {
    seqOut: 0,
    outstanding: new Set(),
    tries: 0,
    waiters: [],
  };
  private readonly flights = new Map<number, Flight>();
  private childSeq = 0;
  timers: { rekey?: Timer; expire?: Timer; dpd?: Timer; keepalive?: Timer; halfOpen?: Timer } = {};

  constructor(
    readonly host: IsakmpSaHost,
    readonly uid: number,
    readonly role: V1Role,
    public cookieI: Buffer,
    public cookieR: Buffer,
    public local: Endpoint,
    public remote: Endpoint,
    peer?: PeerPolicy,
  ) {
    this.peer = peer;
    this.createdAt = host.env.clock.now();
    this.dpd.seqOut = host.env.random(4).readUInt32BE(0) & 0x7fffffff;
  }

  get env(): EngineEnv {
    return this.host.env;
  }
  get isInitiator(): boolean {
    return this.role === 'initiator';
  }
  get peerName(): string {
    return this.peer?.name ?? `${this.remote.addr}:${this.remote.port}`;
  }
  get label(): string {
    return `${this.cookieI.toString('hex')}_i ${this.cookieR.toString('hex')}_r`;
  }
  get isUp(): boolean {
    return this.state === 'established' || this.state === 'rekeying';
  }

  transition(to: IkeState, reason: string): void {
    transitionIke(this, to, reason, (c) =>
      this.env.emit({
        type: 'ike.state',
        version: 1,
        peer: this.peerName,
        sa: this.label,
        from: c.from,
        to: c.to,
        reason,
      }),
    );
  }

  nextChildUid(): string {
    this.childSeq++;
    return `v1.${this.uid}.${this.childSeq}`;
  }

  drop(reason: string, from?: Endpoint): void {
    const at = from ?? this.remote;
    this.env.emit({ type: 'packet.dropped', version: 1, peer: this.peerName, reason, from: `${at.addr}:${at.port}` });
  }

  recordError(code: string, message: string): void {
    this.lastError = { code, message, at: this.env.clock.now() };
  }

  // ---- encoding ------------------------------------------------------------

  private header(exchangeType: number, messageId: number) {
    return {
      initiatorCookie: this.cookieI,
      responderCookie: this.cookieR,
      majorVersion: 1,
      minorVersion: 0,
      exchangeType,
      flags: { encryption: false, commit: false, authOnly: false },
      messageId,
    };
  }

  sealPlain(exchangeType: number, messageId: number, payloads: V1Payload[]): Buffer {
    return encodeIsakmpMessage(this.header(exchangeType, messageId), payloads);
  }

  seal(exchangeType: number, messageId: number, payloads: V1Payload[]): Buffer {
    if (!this.crypto) throw new Error(`ISAKMP SA ${this.label}: no keys`);
    const { firstType, bytes } = encodeV1PayloadChain(payloads);
    return encodeEncryptedIsakmp(
      this.header(exchangeType, messageId),
      firstType,
      this.crypto.encrypt(messageId, bytes),
    );
  }

  /** Decrypts a message body; a value, never an exception. */
  open(h: IsakmpHeader, body: Buffer): Opened | { error: string } {
    if (!this.crypto) return { error: 'encrypted message before keys exist' };
    const fresh = !this.crypto.isRetransmission(h.messageId, body);
    let plain: Buffer;
    try {
      plain = this.crypto.decrypt(h.messageId, body);
    } catch (err) {
      return { error: `decrypt: ${err instanceof Error ? err.message : String(err)}` };
    }
    try {
      const len = payloadChainLength(plain, h.nextPayload);
      const chain = plain.subarray(0, len);
      const { payloads } = decodeV1PayloadChain(chain, h.nextPayload, 'decrypted body');
      return { payloads, chain, fresh };
    } catch (err) {
      if (fresh) this.reject(h.messageId);
      return { error: `decrypted body: ${err instanceof Error ? err.message : String(err)}` };
    }
  }

  /** Undo the IV effect of a message that failed authentication. */
  reject(messageId: number): void {
    try {
      this.crypto?.rollback(messageId);
    } catch {
      // Nothing to undo (a retransmission).
    }
  }

  // ---- flights: retransmission and duplicate replay --------------------------

  /**
   * Sends an exchange's next message. With `awaitReply` it is retransmitted
   * (the same bytes: never re-encrypted) on the peer's schedule until
   * `received()` notes the reply, then `giveUp` runs.
   */
  transmit(messageId: number, data: Buffer, label: string, awaitReply: boolean, giveUp?: () => void): void {
    const f = this.flight(messageId, label);
    f.timer?.cancel();
    f.timer = undefined;
    f.sent = data;
    f.label = label;
    this.sendRaw(data);
    if (!awaitReply) return;
    const schedule = this.peer?.retransmit ?? DEFAULT_RETRANSMIT;
    let attempt = 0;
    const arm = () => {
      f.timer = this.env.clock.setTimer(retransmitTimeout(schedule, attempt, this.env.rand01), () => {
        f.timer = undefined;
        if (this.state === 'destroyed') return;
        if (attempt >= schedule.tries) {
          this.recordError('TIMEOUT', `${label}: no reply after ${attempt + 1} transmissions`);
          if (giveUp) giveUp();
          else this.host.onFailure(this, `${label} timed out`, 'establish');
          return;
        }
        attempt++;
        this.env.emit({ type: 'retransmit', version: 1, peer: this.peerName, exchange: label, attempt });
        if (f.sent) this.sendRaw(f.sent);
        arm();
      });
    };
    arm();
  }

  /** Notes an authentic inbound message of an exchange (stops retransmission). */
  received(messageId: number, raw: Buffer): void {
    const f = this.flight(messageId, '');
    f.timer?.cancel();
    f.timer = undefined;
    f.recv = raw;
    // What we sent before this message was the request it answers: never replay that.
    f.sent = undefined;
    this.lastInboundAt = this.env.clock.now();
    this.followPeer();
  }

  /** Where the message being handled came from (set by the manager while it handles one). */
  inboundFrom: Endpoint | undefined;

  /**
   * Behind a NAT, an authentic message from another address or port is the peer's new NAT
   * mapping: IKE follows it at once, the host moves the phase 2 SAs (as IKEv2 does, RFC 7296
   * 2.23; RFC 3947 leaves it open).
   */
  private followPeer(): void {
    const from = this.inboundFrom;
    if (!from || !this.isUp || (!this.nat.local && !this.nat.remote)) return;
    if (from.addr === this.remote.addr && from.port === this.remote.port) return;
    const old = this.remote;
    this.remote = { ...from };
    this.env.emit({
      type: 'nat.mapping',
      version: 1,
      peer: this.peerName,
      from: `${old.addr}:${old.port}`,
      to: `${from.addr}:${from.port}`,
    });
    this.host.onRemoteMoved?.(this, old);
  }

  /** A byte-identical copy of the last message received in this exchange: replay our answer. */
  replayIfDuplicate(messageId: number, raw: Buffer): boolean {
    const f = this.flights.get(messageId >>> 0);
    if (!f?.recv?.equals(raw)) return false;
    if (f.sent) this.sendRaw(f.sent);
    this.env.emit({ type: 'duplicate.replayed', version: 1, peer: this.peerName, messageId, exchange: f.label });
    return true;
  }

  /** Stops retransmitting an exchange and drops its state (message ID 0 is kept for duplicates). */
  finish(messageId: number): void {
    const f = this.flights.get(messageId >>> 0);
    f?.timer?.cancel();
    if (f) f.timer = undefined;
  }

  private flight(messageId: number, label: string): Flight {
    const mid = messageId >>> 0;
    let f = this.flights.get(mid);
    if (!f) {
      f = { label };
      this.flights.set(mid, f);
      if (this.flights.size > 24) {
        for (const [k, v] of this.flights) {
          if (k !== 0 && k !== mid && !v.timer) {
            this.flights.delete(k);
            this.crypto?.forget(k);
            break;
          }
        }
      }
    }
    return f;
  }

  hasFlight(messageId: number): boolean {
    return this.flights.has(messageId >>> 0);
  }

  sendRaw(data: Buffer): void {
    this.lastSentAt = this.env.clock.now();
    this.env.send({ data, local: this.local, remote: this.remote });
  }

  /** A fresh non-zero message ID not used by this SA. */
  newMessageId(): number {
    for (;;) {
      const mid = this.env.random(4).readUInt32BE(0);
      if (mid !== 0 && !this.flights.has(mid)) return mid;
    }
  }

  /** Moves IKE traffic to port 4500 (RFC 3947 4). */
  floatToNatT(): void {
    common.floatToNatT(this);
  }

  // ---- lifecycle -----------------------------------------------------------

  enterEstablished(): void {
    const now = this.env.clock.now();
    this.establishedAt = now;
    this.lastInboundAt = now;
    this.transition('established', 'authenticated');
    this.timers.halfOpen?.cancel();
    this.hs.shared?.fill(0);
    this.hs = {};
    this.armLifetime(now);
    this.armDpd();
    this.armKeepalive();
  }

  /** `now` is the establishment time, so expiresAt is exactly establishedAt + lifetime. */
  private armLifetime(now: number): void {
    const peer = this.peer;
    const life = this.suite?.lifetimeMs ?? peer?.ikeLifetimeMs ?? 3600_000;
    this.expireAt = now + life;
    // The responder's soft lifetime is shorter by half a margin, as for phase 2: the initiator normally
    // re-negotiates first (charon re-authenticates; crossing re-negotiations cost an ISAKMP SA).
    const margin =
      Math.min(life / 2, withJitter(peer?.rekeyMarginMs ?? 0, peer?.rekeyJitter ?? 0, this.env.rand01)) /
      (this.role === 'responder' ? 2 : 1);
    this.rekeyAt = this.expireAt - margin;
    this.timers.rekey = this.env.clock.setTimer(this.rekeyAt - now, () => this.host.onIsakmpRekeyDue(this));
    this.timers.expire = this.env.clock.setTimer(life, () => {
      void this.queue.run(() => this.expire());
    });
  }

  /** Hard lifetime: phase 2 SAs move to a newer ISAKMP SA when one exists (host decides). */
  private async expire(): Promise<void> {
    if (this.state === 'destroyed') return;
    await this.host.onIsakmpDeleted(this);
  }

  armHalfOpen(ms: number): void {
    this.timers.halfOpen = this.env.clock.setTimer(ms, () => {
      if (!this.isUp && this.state !== 'destroyed') void this.queue.run(() => this.destroy('half-open timeout'));
    });
  }

  /** Liveness: probe only when nothing authenticated came in within the delay. */
  armDpd(): void {
    this.timers.dpd?.cancel();
    const peer = this.peer;
    if (!peer || peer.dpdDelayMs <= 0) return;
    const quiet = this.env.clock.now() - this.lastInboundAt;
    const wait = Math.max(0, peer.dpdDelayMs - quiet);
    this.timers.dpd = this.env.clock.setTimer(withJitter(wait, 0.05, this.env.rand01) || wait, () => {
      void this.queue.run(() => this.onDpdDue());
    });
  }

  /** Set by informational.ts: one R-U-THERE round (or joins the one in flight); resolves with its verdict. */
  probe: (() => Promise<'alive' | 'dead'>) | undefined;

  /** Ends the DPD round in flight: its waiters learn the verdict. */
  settleDpd(verdict: 'alive' | 'dead'): void {
    this.dpd.timer?.cancel();
    this.dpd.timer = undefined;
    this.dpd.outstanding.clear();
    const waiters = this.dpd.waiters;
    this.dpd.waiters = [];
    for (const w of waiters) w(verdict);
  }

  private async onDpdDue(): Promise<void> {
    const peer = this.peer;
    if (!peer || !this.isUp || this.dpd.timer) return;
    if (this.env.clock.now() - this.lastInboundAt < peer.dpdDelayMs) return this.armDpd();
    if (await this.kernelSawInbound()) return this.armDpd();
    void this.probe?.();
  }

  /** ESP received (the kernel's inbound byte counters grew) counts as inbound traffic. */
  private kernelSawInbound(): Promise<boolean> {
    return common.kernelSawInbound(this);
  }

  private armKeepalive(): void {
    this.timers.keepalive?.cancel();
    this.timers.keepalive = common.natKeepaliveTimer(this, () => this.armKeepalive());
  }

  /** Tears the SA down locally (kernel state of its children unless `keepKernel`). Idempotent. */
  async destroy(reason: string, opts: { keepKernel?: boolean } = {}): Promise<void> {
    if (this.state === 'destroyed') return;
    for (const t of Object.values(this.timers)) t?.cancel();
    this.timers = {};
    this.settleDpd('dead');
    for (const f of this.flights.values()) f.timer?.cancel();
    this.flights.clear();
    for (const child of [...this.children.values()]) {
      if (!opts.keepKernel) await uninstallChild(this.env.kernel, this.host.book, child, this.local, this.remote);
      destroyChildSecrets(child);
      if (child.state !== 'destroyed') this.transitionChild(child, 'destroyed', reason);
    }
    this.children.clear();
    this.keys?.destroy();
    this.crypto?.destroy();
    this.hs.shared?.fill(0);
    this.transition('destroyed', reason);
    this.host.onDestroyed(this);
  }

  // ---- phase 2 SAs -----------------------------------------------------------

  transitionChild(c: ChildSa, to: ChildState, reason: string): void {
    common.transitionChildOf(this, c, to, reason, 1);
  }

  /** Set by quick-mode.ts: rekeys a phase 2 SA (make-before-break). */
  rekeyChild: ((c: ChildSa) => Promise<void>) | undefined;

  scheduleChildTimers(c: ChildSa): void {
    common.scheduleChildTimers(this, c, (x) => this.rekeyChild?.(x));
  }

  /** Takes over a phase 2 SA from another ISAKMP SA of the same peer. */
  adopt(c: ChildSa): void {
    this.children.set(c.uid, c);
    if (c.state !== 'installed' && c.state !== 'rekeying') return;
    if (!c.replacedBy) return this.scheduleChildTimers(c);
    // Superseded by the peer's Quick Mode: never re-keyed (its retirement timer stays), expires here.
    common.armChildExpiry(this, c);
  }

  removeChild(c: ChildSa, reason: string): Promise<void> {
    return common.removeChild(this, c, reason);
  }
}
