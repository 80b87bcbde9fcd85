import type { KeyExchange } from '../crypto/dh.js';
import type { IkeSaKeys } from '../crypto/ikev2/keys.js';
import type { Identity } from '../sa/identity.js';
import * as common from '../sa/ike-sa-common.js';
import type { ChildPolicy, PeerPolicy } from '../sa/policy.js';
import type { IkeProposalSpec, IkeSuite } from '../sa/proposal.js';
import { type ChildState, type IkeState, transitionIke } from '../sa/state.js';
import { type Timer, withJitter } from '../util/clock.js';
import { SerialQueue } from '../util/serial-queue.js';
import { MalformedMessageError } from '../wire/errors.js';
import { checkExchangeRules, EXCHANGE, type IkeMessage, isNotify, name, type Payload } from '../wire/ikev2/index.js';
import { type ChildSa, destroyChildSecrets, spiHex, uninstallChild } from './child-sa.js';
import type { Endpoint, EngineEnv } from './env.js';
import { CreateChildTask, respondCreateChild } from './exchanges/create-child.js';
import { respondIkeAuth } from './exchanges/ike-auth.js';
import { respondIkeInit } from './exchanges/ike-init.js';
import { IkeRekeyTask, respondIkeRekey } from './exchanges/ike-rekey.js';
import { DeleteChildTask, DeleteIkeTask, LivenessTask, respondInformational } from './exchanges/informational.js';
import { N, P } from './payloads.js';
import type { PolicyBook } from './policy-book.js';
import { encodePlain, type MessageProtector } from './protect.js';
import { livenessSchedule, type RetransmitSchedule } from './retransmit.js';
import { type InboundMessage, type OutboundMessage, TaskManager, type TaskManagerEnv } from './task-manager.js';

/** What an IKE SA needs from its manager. */
export interface IkeSaHost {
  readonly env: EngineEnv;
  readonly book: PolicyBook;
  reqidFor(peer: string, child: string): number;
  /** A fresh local IKE SPI, unique among our SAs. */
  newSpi(): Buffer;
  /** A fresh SA serial number. */
  newUid(): number;
  /** Responder: the peer policy for an authenticated-to-be identity arriving from `remote`. */
  resolvePeer(id: Identity, remote: Endpoint): PeerPolicy | undefined;
  /** The SA reached `established` (after IKE_AUTH). */
  onEstablished(sa: IkeSa, initialContact: boolean): void;
  /** The SA failed to establish, or an exchange timed out on an established SA. */
  onFailure(sa: IkeSa, reason: string, phase: 'establish' | 'liveness' | 'exchange'): void;
  /** The peer is deleting this IKE SA (called before it is destroyed). */
  onPeerDeleting?(sa: IkeSa): void;
  /** The peer deleted this IKE SA (called once it is destroyed). */
  onPeerDelete(sa: IkeSa): void;
  /** A Child SA was installed (orphan cleanup, metrics). */
  onChildInstalled?(sa: IkeSa): void;
  /** The SA is gone; remove it from every table. */
  onDestroyed(sa: IkeSa): void;
  /** A new IKE SA replaces `old` (IKE SA rekey). */
  onRekeyed(old: IkeSa, fresh: IkeSa): void;
  /**
   * We refused the peer's answer to our rekey of `sa` (not an error notify): the peer may
   * have moved to an IKE SA we do not have and refuse further work on this one. A fresh IKE
   * SA replaces it, make before break.
   */
  onRekeyAnswerRefused?(sa: IkeSa): void;
  /** Whether INITIAL_CONTACT should accompany the first IKE SA to this peer. */
  wantsInitialContact(peer: PeerPolicy): boolean;
  /** An RFC 6311 IKEV2_MESSAGE_ID_SYNC request (message ID 0) arrived; the host answers it. */
  onMessageIdSync?(sa: IkeSa, msg: InboundMessage<Payload>): Promise<void>;
  /** Configured peers (a responder's IKE_SA_INIT reads their CAs for CERTREQ before it knows the peer). */
  peerNames?(): string[];
  /** Candidate peers for a responder SA from this address (indexed; before the identity is known). */
  candidatesFor?(addr: string): PeerPolicy[];
  peer?(name: string): { readonly policy: PeerPolicy } | undefined;
}

export type Role = 'initiator' | 'responder';

const DEFAULT_SA_RETRANSMIT = { baseMs: 2000, factor: 1.8, maxTimeoutMs: 30_000, tries: 5, jitter: 0.2 };

/**
 * What the task manager needs from its IKE SA, as one small object with
 * methods (an SA lives for hours; six closures each would be kept as long).
 */
class SaTaskEnv implements TaskManagerEnv<Payload> {
  readonly clock: EngineEnv['clock'];
  readonly random: () => number;
  constructor(
    private readonly sa: IkeSa,
    readonly schedule: RetransmitSchedule,
  ) {
    this.clock = sa.env.clock;
    this.random = sa.env.rand01;
  }
  encode(msg: OutboundMessage<Payload>, messageId: number, response: boolean): Buffer[] {
    return this.sa.encodeForTasks(msg, messageId, response);
  }
  send(datagrams: Buffer[]): void {
    this.sa.sendDatagrams(datagrams);
  }
  respond(msg: InboundMessage<Payload>): Promise<OutboundMessage<Payload>> {
    return this.sa.respondForTasks(msg);
  }
  onTimeout(task: string): void {
    this.sa.onTaskTimeoutForTasks(task);
  }
  onRetransmit(task: string, attempt: number): void {
    this.sa.env.emit({ type: 'retransmit', peer: this.sa.peerName, exchange: task, attempt });
  }
  onIdsChanged(): void {
    this.sa.env.emit({ type: 'ike.msgid', peer: this.sa.peerName, sa: this.sa.label });
  }
}

/**
 * One IKE SA: its negotiated state, its Child SAs, its task manager and its
 * timers. All inbound processing runs through `queue`, so an await on the
 * kernel never interleaves two messages of one SA.
 */
export class IkeSa {
  state: IkeState = 'created';
  readonly queue = new SerialQueue();
  readonly tm: TaskManager<Payload>;
  readonly children = new Map<string, ChildSa>();
  peer: PeerPolicy | undefined;
  remoteId: Identity | undefined;
  suite: IkeSuite | undefined;
  keys: IkeSaKeys | undefined;
  protector: MessageProtector | undefined;
  ni: Buffer = Buffer.alloc(0);
  nr: Buffer = Buffer.alloc(0);
  /** Our KE for IKE_SA_INIT (initiator), kept until the response arrives. */
  ke: KeyExchange | undefined;
  /** IKE_SA_INIT request and response bytes, kept until AUTH is verified. */
  initRequest: Buffer | undefined;
  initResponse: Buffer | undefined;
  nat = { local: false, remote: false };
  fragmentation = false;
  initialContactSent = false;
  readonly createdAt: number;
  establishedAt = 0;
  lastInboundAt = 0;
  lastLivenessAt = 0;
  livenessFailures = 0;
  rekeyAt = 0;
  expireAt = 0;
  lastError: { code: string; message: string; at: number } | undefined;
  /** Key in the manager's half-open table while this responder SA is half-open. */
  halfOpenKey: string | undefined;
  /** The IKE SA that took over this one's children (IKE SA rekey). */
  successor: IkeSa | undefined;
  /** Being replaced after a configuration change: deleted once its successor is up. */
  retiring = false;
  /** A replacement IKE SA was started because the peer said it lost this one. */
  replacementStarted = false;
  /** Responder SPI of an IKE_SA_INIT response, adopted once the response is accepted. */
  pendingSpiR: Buffer | undefined;
  /** Proposals a responder selects from (known before the peer's identity). */
  responderProposals: IkeProposalSpec[] = [];
  /**
   * The manager's verdict on the IKE_SA_INIT request that created this
   * responder SA, for the payloads it was computed over (respondIkeInit
   * need not select the proposal a second time). Cleared once used.
   */
  initVerdict: { payloads: readonly Payload[]; suite: IkeSuite; num: number } | undefined;
  /** RFC 7427 hash algorithms the peer announced in IKE_SA_INIT (empty: none, classic signature methods). */
  peerSignatureHashes: number[] = [];
  /** The peer's CERTREQ data for X.509 (concatenated SHA-1 SPKI hashes), if it sent any. */
  peerCertReq: Buffer | undefined;
  /** AUTH methods used by each side and the peer's certificate subject, once verified. */
  authUsed: { local?: number; remote?: number; remoteSubject?: string } = {};
  /** Child rekeys the peer ran while ours was in flight: old child uid -> the peer's new child. */
  /** Made on first use: most SAs never see a rekey collision. */
  private childCollisionMap: Map<string, ChildSa> | undefined;
  private get childCollisions(): Map<string, ChildSa> {
    this.childCollisionMap ??= new Map();
    return this.childCollisionMap;
  }
  private childSeq = 0;
  /** The peer announced IKEV2_MESSAGE_ID_SYNC_SUPPORTED in IKE_AUTH (RFC 6311); we always do. */
  peerMsgIdSync = false;
  private timers: { rekey?: Timer; expire?: Timer; dpd?: Timer; keepalive?: Timer; halfOpen?: Timer } = {};

  constructor(
    readonly host: IkeSaHost,
    readonly uid: number,
    readonly role: Role,
    public spiI: Buffer,
    public spiR: Buffer,
    public local: Endpoint,
    public remote: Endpoint,
    peer?: PeerPolicy,
  ) {
    this.peer = peer;
    this.createdAt = host.env.clock.now();
    this.tm = new TaskManager<Payload>(new SaTaskEnv(this, peer?.retransmit ?? DEFAULT_SA_RETRANSMIT));
  }

  /** For SaTaskEnv (the task manager's view of this SA). */
  encodeForTasks(msg: OutboundMessage<Payload>, messageId: number, response: boolean): Buffer[] {
    return this.encode(msg, messageId, response);
  }
  respondForTasks(msg: InboundMessage<Payload>): Promise<OutboundMessage<Payload>> {
    return this.respond(msg);
  }
  onTaskTimeoutForTasks(task: string): void {
    this.onTaskTimeout(task);
  }

  get env(): EngineEnv {
    return this.host.env;
  }
  get isInitiator(): boolean {
    return this.role === 'initiator';
  }
  /** The SPI that identifies this SA on our side. */
  get ourSpi(): Buffer {
    return this.isInitiator ? this.spiI : this.spiR;
  }
  get peerName(): string {
    return this.peer?.name ?? `${this.remote.addr}:${this.remote.port}`;
  }
  get label(): string {
    // Every state change and message-ID event carries it: made again only when an SPI Buffer is replaced.
    const c = this.labelCache;
    if (c && c.spiI === this.spiI && c.spiR === this.spiR) return c.text;
    const text = [this.spiI.toString('hex'), '_i ', this.spiR.toString('hex'), '_r'].join('');
    this.labelCache = { spiI: this.spiI, spiR: this.spiR, text };
    return text;
  }
  private labelCache: { spiI: Buffer; spiR: Buffer; text: string } | undefined;

  /** Superseded by an IKE SA rekey: its deletion is not a loss of the relationship. */
  get rekeyedAway(): boolean {
    return this.wasRekeyed;
  }
  private wasRekeyed = false;

  transition(to: IkeState, reason: string): void {
    if (to === 'rekeyed') this.wasRekeyed = true;
    transitionIke(this, to, reason, (c) =>
      this.env.emit({ type: 'ike.state', peer: this.peerName, sa: this.label, from: c.from, to: c.to, reason }),
    );
  }

  nextChildUid(): string {
    this.childSeq++;
    return `${this.uid}.${this.childSeq}`;
  }

  // ---- outbound ----------------------------------------------------------

  private encode(msg: OutboundMessage<Payload>, messageId: number, response: boolean): Buffer[] {
    const fields = {
      spiI: this.spiI,
      spiR: this.spiR,
      exchangeType: msg.exchange,
      messageId,
      initiator: this.isInitiator,
      response,
    };
    if (msg.exchange === EXCHANGE.IKE_SA_INIT) {
      const bytes = encodePlain(fields, msg.payloads);
      if (response) this.initResponse = bytes;
      else this.initRequest = bytes;
      return [bytes];
    }
    if (!this.protector) throw new Error(`IKE SA ${this.label}: no keys to protect ${name(EXCHANGE, msg.exchange)}`);
    if (msg.exchange === EXCHANGE.IKE_AUTH && msg.payloads.some((p) => p.type === 39)) {
      // RFC 6311: we can resynchronise message IDs after a restart (see checkpoint.ts).
      msg = { ...msg, payloads: [...msg.payloads, P.notify(N.IKEV2_MESSAGE_ID_SYNC_SUPPORTED)] };
    }
    return this.protector.seal(fields, msg.payloads, this.fragmentation ? (this.peer?.fragmentSize ?? 1280) : 0);
  }

  sendDatagrams(datagrams: Buffer[]): void {
    for (const data of datagrams) this.env.send({ data, local: this.local, remote: this.remote });
  }

  /** Moves IKE traffic to port 4500 (NAT-T float), RFC 7296 2.23. */
  floatToNatT(): void {
    common.floatToNatT(this);
  }

  // ---- inbound -----------------------------------------------------------

  /** Handles one decoded message addressed to this SA. Call through `queue`. */
  async handle(raw: Buffer, msg: IkeMessage, from: Endpoint, to?: Endpoint): Promise<void> {
    if (this.state === 'destroyed') return;
    const h = msg.header;
    const response = h.flags.response;
    let payloads: Payload[];
    if (h.exchangeType === EXCHANGE.IKE_SA_INIT) {
      if (response) {
        this.initResponse = raw;
        this.pendingSpiR = h.spiR;
      } else {
        this.initRequest = raw;
      }
      payloads = msg.payloads;
    } else {
      if (!this.protector) return this.drop('encrypted message before keys exist', from);
      const opened = this.protector.open(raw, h, msg.payloads);
      if (opened.kind === 'drop') return this.drop(opened.reason, from);
      if (opened.kind === 'fragment-pending') return;
      payloads = opened.payloads;
      this.lastInboundAt = this.env.clock.now();
      if (to && to.port === 4500 && this.local.port !== 4500) this.local = { ...this.local, port: 4500 };
      this.followPeerAddress(from);
    }
    const rules = checkExchangeRules(
      h.exchangeType,
      response,
      msg.payloads,
      h.exchangeType === EXCHANGE.IKE_SA_INIT ? undefined : payloads,
    );
    const inbound: InboundMessage<Payload> = { exchange: h.exchangeType, messageId: h.messageId, response, payloads };
    if (!rules.ok) {
      if (response || this.tm.isRetransmittedRequest(h.messageId)) return this.drop(`rules: ${rules.reason}`, from);
      // A request that breaks the payload rules gets the error notify as its answer.
      await this.tm.onRequest({ ...inbound, payloads: [P.notify(rules.notify)] });
      return;
    }
    if (
      h.exchangeType === EXCHANGE.IKE_AUTH &&
      payloads.some((p) => isNotify(p) && p.notifyType === N.IKEV2_MESSAGE_ID_SYNC_SUPPORTED)
    )
      this.peerMsgIdSync = true;
    if (
      !response &&
      h.messageId === 0 &&
      h.exchangeType === EXCHANGE.INFORMATIONAL &&
      this.host.onMessageIdSync &&
      payloads.some((p) => isNotify(p) && p.notifyType === N.IKEV2_MESSAGE_ID_SYNC)
    ) {
      await this.host.onMessageIdSync(this, inbound);
      return;
    }
    if (response) {
      const r = await this.tm.onResponse(inbound);
      if (r === 'unexpected') this.drop(`unexpected response ${h.messageId}`, from);
    } else {
      await this.tm.onRequest(inbound);
    }
  }

  private async respond(msg: InboundMessage<Payload>): Promise<OutboundMessage<Payload>> {
    // A request we turned into an error notify above is answered as-is.
    const only = msg.payloads[0];
    if (
      msg.payloads.length === 1 &&
      only?.type === 41 &&
      only.notifyType < 16384 &&
      msg.exchange !== EXCHANGE.INFORMATIONAL
    ) {
      return { exchange: msg.exchange, payloads: [only] };
    }
    switch (msg.exchange) {
      case EXCHANGE.IKE_SA_INIT:
        return respondIkeInit(this, msg);
      case EXCHANGE.IKE_AUTH:
        return respondIkeAuth(this, msg);
      case EXCHANGE.CREATE_CHILD_SA:
        return respondCreateChild(this, msg);
      case EXCHANGE.INFORMATIONAL:
        return respondInformational(this, msg);
      default:
        return { exchange: msg.exchange, payloads: [P.notify(N.INVALID_SYNTAX)] };
    }
  }

  private drop(reason: string, from: Endpoint): void {
    this.env.emit({ type: 'packet.dropped', peer: this.peerName, reason, from: `${from.addr}:${from.port}` });
  }

  /** After NAT detection, follow the peer's latest authenticated source (RFC 7296 2.23). */
  private followPeerAddress(from: Endpoint): void {
    if (!this.nat.remote && !this.nat.local) return;
    if (from.addr === this.remote.addr && from.port === this.remote.port) return;
    const old = this.remote;
    this.remote = { ...from };
    this.env.emit({
      type: 'nat.mapping',
      peer: this.peerName,
      from: `${old.addr}:${old.port}`,
      to: `${from.addr}:${from.port}`,
    });
    this.onRemoteMoved?.(old);
  }

  /** Set by the manager: re-install outbound SAs when the peer's NAT mapping changed. */
  onRemoteMoved: ((old: Endpoint) => void) | undefined;

  // ---- lifecycle ---------------------------------------------------------

  /** Called by the IKE_AUTH exchange on both sides when authentication succeeded. */
  markEstablished(initialContact: boolean): void {
    this.enterEstablished('authenticated');
    this.host.onEstablished(this, initialContact);
  }

  /** Established bookkeeping shared by IKE_AUTH and IKE SA rekeys. */
  enterEstablished(reason: string): void {
    const now = this.env.clock.now();
    this.establishedAt = now;
    this.lastInboundAt = now;
    this.transition('established', reason);
    this.timers.halfOpen?.cancel();
    this.initRequest = undefined;
    this.initResponse = undefined;
    this.armIkeLifetime(now);
    this.armDpd();
    this.armKeepalive();
  }

  /** Lowest nonce of the exchange that created this IKE SA (rekey collisions). */
  get minNonce(): Buffer {
    return Buffer.compare(this.ni, this.nr) <= 0 ? this.ni : this.nr;
  }

  /** The peer's IKE SA rekey that completed while ours was in flight (RFC 7296 2.8.2). */
  ikeCollision: IkeSa | undefined;

  respondIkeRekey(msg: InboundMessage<Payload>): Promise<OutboundMessage<Payload>> {
    return respondIkeRekey(this, msg);
  }

  /** After a failed IKE rekey, try again well before expiry. */
  scheduleIkeRekeyRetry(): void {
    const left = this.expireAt - this.env.clock.now();
    const wait = Math.max(1000, Math.min(30_000, left / 4)) * (0.5 + this.env.rand01() / 2);
    this.timers.rekey?.cancel();
    this.timers.rekey = this.env.clock.setTimer(wait, () => {
      void this.queue.run(() => this.rekeyIke());
    });
  }

  /** Starts an IKE SA rekey (timer or operator). */
  async rekeyIke(): Promise<void> {
    if (this.state !== 'established' || this.tm.hasTask('ike-rekey')) return;
    this.env.emit({ type: 'rekey.started', peer: this.peerName, kind: 'ike' });
    await this.tm.enqueue(new IkeRekeyTask(this));
  }

  /** Responder: give up on a half-open SA that never authenticates. */
  armHalfOpen(ms: number): void {
    this.timers.halfOpen = this.env.clock.setTimer(ms, () => {
      if (this.state === 'connecting' || this.state === 'authenticating') {
        void this.queue.run(() => this.destroy('half-open timeout'));
      }
    });
  }

  /** Child SA serial counter (checkpoints: restored uids must not be reissued). */
  get childCounter(): number {
    return this.childSeq;
  }

  /**
   * Checkpoint restore: re-arms the lifetime, liveness and keepalive timers
   * of an SA rebuilt from saved state, relative to now. A rekey deadline that
   * passed while the daemon was down fires at once.
   */
  resumeTimers(childSeq: number): void {
    this.childSeq = Math.max(this.childSeq, childSeq);
    const now = this.env.clock.now();
    this.timers.rekey?.cancel();
    this.timers.expire?.cancel();
    if (this.peer) {
      this.timers.rekey = this.env.clock.setTimer(Math.max(0, this.rekeyAt - now), () => {
        void this.queue.run(() => this.rekeyIke());
      });
      this.timers.expire = this.env.clock.setTimer(Math.max(0, this.expireAt - now), () => {
        void this.queue.run(() => this.destroy('IKE SA lifetime expired'));
      });
    }
    this.armDpd();
    this.armKeepalive();
  }

  /** `now` is the establishment time, so expiresAt is exactly establishedAt + lifetime. */
  private armIkeLifetime(now: number): void {
    const peer = this.peer;
    if (!peer) return;
    const margin = withJitter(peer.rekeyMarginMs, peer.rekeyJitter, this.env.rand01);
    this.expireAt = now + peer.ikeLifetimeMs;
    this.rekeyAt = this.expireAt - margin;
    this.timers.rekey?.cancel();
    this.timers.expire?.cancel();
    this.timers.rekey = this.env.clock.setTimer(this.rekeyAt - now, () => {
      void this.queue.run(() => this.rekeyIke());
    });
    this.timers.expire = this.env.clock.setTimer(peer.ikeLifetimeMs, () => {
      void this.queue.run(() => this.destroy('IKE SA lifetime expired'));
    });
  }

  /** Liveness: probe only when nothing authenticated came in within the delay. */
  armDpd(): void {
    const peer = this.peer;
    this.timers.dpd?.cancel();
    if (!peer || peer.dpdDelayMs <= 0) return;
    const quietFor = this.env.clock.now() - this.lastInboundAt;
    const wait = Math.max(0, peer.dpdDelayMs - quietFor);
    this.timers.dpd = this.env.clock.setTimer(withJitter(wait, 0.05, this.env.rand01) || wait, () => {
      void this.queue.run(() => this.onDpdDue());
    });
  }

  private async onDpdDue(): Promise<void> {
    const peer = this.peer;
    if (!peer || this.state !== 'established') return;
    if (this.env.clock.now() - this.lastInboundAt < peer.dpdDelayMs) return this.armDpd();
    if (await this.kernelSawInbound()) return this.armDpd();
    if (this.tm.busy || this.tm.hasTask('liveness')) return this.armDpd();
    // Not awaited: the answer is processed through this SA's queue, which this job holds.
    void this.probe();
  }

  /**
   * Sends a liveness check now (also `coatictl dpd`). Resolves when answered
   * or declared dead. Never await it from inside `queue`: the answer needs it.
   */
  probe(timeoutMs?: number): Promise<'alive' | 'dead'> {
    const peer = this.peer;
    const timeout = timeoutMs ?? peer?.dpdTimeoutMs ?? 5000;
    this.lastLivenessAt = this.env.clock.now();
    this.env.emit({ type: 'liveness.sent', peer: this.peerName });
    return new Promise((resolve) => {
      void this.tm.enqueue(
        new LivenessTask(livenessSchedule(timeout), (alive) => {
          if (alive) {
            this.livenessFailures = 0;
            this.armDpd();
          } else {
            this.livenessFailures++;
          }
          resolve(alive ? 'alive' : 'dead');
        }),
        true,
      );
    });
  }

  /** Kernel counters of our inbound ESP SAs count as inbound traffic. */
  private kernelSawInbound(): Promise<boolean> {
    return common.kernelSawInbound(this);
  }

  private armKeepalive(): void {
    this.timers.keepalive?.cancel();
    this.timers.keepalive = common.natKeepaliveTimer(this, () => this.armKeepalive());
  }

  private onTaskTimeout(task: string): void {
    const phase =
      this.state === 'established' || this.state === 'rekeying'
        ? task === 'liveness'
          ? 'liveness'
          : 'exchange'
        : 'establish';
    if (phase === 'liveness') {
      // Not dead if anything authenticated (IKE, or ESP by the kernel's counters) came in
      // while the probe was out: a lost probe answer is not a lost peer.
      void this.queue.run(async () => {
        if (this.state === 'destroyed') return;
        if (this.lastInboundAt > this.lastLivenessAt || (await this.kernelSawInbound())) {
          this.armDpd();
          return;
        }
        this.declareTimeout(task, phase);
      });
      return;
    }
    this.declareTimeout(task, phase);
  }

  private declareTimeout(task: string, phase: 'establish' | 'liveness' | 'exchange'): void {
    this.lastError = { code: 'TIMEOUT', message: `${task}: no response after retransmits`, at: this.env.clock.now() };
    this.host.onFailure(this, `${task} timed out`, phase);
  }

  recordError(code: string, message: string): void {
    this.lastError = { code, message, at: this.env.clock.now() };
  }

  /**
   * Tears the SA down locally: timers, tasks, kernel state of its children
   * (unless `keepKernel`), secrets. Idempotent.
   */
  async destroy(reason: string, opts: { keepKernel?: boolean } = {}): Promise<void> {
    if (this.state === 'destroyed') return;
    for (const t of Object.values(this.timers)) t?.cancel();
    this.timers = {};
    this.tm.destroy();
    for (const child of this.children.values()) {
      if (!opts.keepKernel) await uninstallChild(this.env.kernel, this.host.book, child, this.local, this.remote);
      destroyChildSecrets(child);
      if (child.state !== 'destroyed') {
        this.transitionChild(child, 'destroyed', opts.keepKernel ? `${reason} (kernel SAs kept)` : reason);
      }
    }
    this.children.clear();
    this.keys?.destroy();
    this.transition('destroyed', reason);
    this.host.onDestroyed(this);
  }

  // ---- Child SAs ---------------------------------------------------------

  transitionChild(c: ChildSa, to: ChildState, reason: string): void {
    common.transitionChildOf(this, c, to, reason);
  }

  /** Rekey (soft) and expiry (hard) timers of a Child SA; they die with it. */
  scheduleChildTimers(c: ChildSa): void {
    common.scheduleChildTimers(this, c, (x) => this.rekeyChild(x));
  }

  /** Starts a CREATE_CHILD_SA for a configured child. */
  async createChild(name: string): Promise<void> {
    const policy = this.peer?.children.find((c) => c.name === name);
    if (!policy || this.state !== 'established') return;
    await this.tm.enqueue(
      new CreateChildTask(this, policy, undefined, (r) => {
        if (!r.ok)
          this.env.emit({ type: 'child.failed', peer: this.peerName, child: name, code: r.code, reason: r.message });
      }),
    );
  }

  /** Rekeys a Child SA make-before-break: the new pair is installed before the old one is deleted. */
  async rekeyChild(old: ChildSa): Promise<void> {
    // The child may have moved to the IKE SA that replaced this one (IKE SA rekey).
    if (!this.children.has(old.uid)) {
      const next = this.successor;
      if (next && next.state !== 'destroyed') void next.queue.run(() => next.rekeyChild(old));
      return;
    }
    if (this.state === 'rekeying') {
      // An IKE SA rekey is in flight: rekey the child on whichever SA owns it afterwards.
      this.env.clock.setTimer(1000, () => void this.queue.run(() => this.rekeyChild(old)));
      return;
    }
    if (old.state !== 'installed' || this.state === 'destroyed' || this.state === 'deleting') return;
    const policy = this.peer?.children.find((c) => c.name === old.name);
    if (!policy) return;
    if (this.tm.hasTask(`child-rekey:${old.uid}`)) return;
    this.env.emit({ type: 'rekey.started', peer: this.peerName, kind: 'child' });
    await this.tm.enqueue(
      new CreateChildTask(this, policy, old, (r) => {
        const peerNew = this.childCollisions.get(old.uid);
        this.childCollisions.delete(old.uid);
        if (r.ok) {
          this.childReplaced(old, r.child, 'initiator', peerNew);
          this.env.emit({ type: 'rekey.completed', peer: this.peerName, kind: 'child' });
          return;
        }
        if (peerNew) return; // the peer's rekey replaced it; it deletes the old pair
        this.env.emit({ type: 'rekey.failed', peer: this.peerName, kind: 'child', code: r.code, reason: r.message });
        if (old.state === 'rekeying') this.transitionChild(old, 'installed', `rekey failed: ${r.message}`);
        if (r.code === 'CHILD_SA_NOT_FOUND' && old.state === 'installed') {
          this.replaceLostChild(old, policy);
          return;
        }
        // Retry later, before the hard expiry.
        this.retryChildRekey(old);
      }),
    );
  }

  /**
   * A new Child SA replaces `old`. As initiator we delete the redundant pair:
   * normally `old`; after a collision the pair made by the exchange with the
   * lowest nonce (RFC 7296 2.8.1). As responder we note a collision if our own
   * rekey of `old` is in flight, otherwise the initiator deletes `old`.
   */
  childReplaced(old: ChildSa, fresh: ChildSa, by: 'initiator' | 'responder', peerNew?: ChildSa): void {
    if (by === 'responder') {
      if (this.tm.hasTask(`child-rekey:${old.uid}`)) this.childCollisions.set(old.uid, fresh);
      if (old.state === 'installed' || old.state === 'rekeying')
        this.transitionChild(old, 'rekeyed', 'rekeyed by peer');
      old.replacedBy = fresh.uid;
      return;
    }
    if (old.state === 'installed' || old.state === 'rekeying') this.transitionChild(old, 'rekeyed', 'rekeyed');
    old.replacedBy = fresh.uid;
    if (peerNew && Buffer.compare(fresh.minNonce, peerNew.minNonce) < 0) {
      // Our exchange had the lowest nonce: our new pair is the redundant one.
      void this.tm.enqueue(new DeleteChildTask(this, [fresh]));
      return;
    }
    if (old.state !== 'deleting' && old.state !== 'destroyed') void this.tm.enqueue(new DeleteChildTask(this, [old]));
  }

  /**
   * `gone` (a Child SA the peer's rekey made) was deleted by the peer before it deleted the
   * pair it replaced: the peer did not take our response (RFC 7296 1.3.3 leaves the old pair
   * in place until the rekey's initiator deletes it). The old pair is the current one again,
   * with its timers, so the peer's next rekey of it is accepted instead of CHILD_SA_NOT_FOUND.
   */
  restoreReplaced(gone: ChildSa): void {
    for (const o of this.children.values()) {
      if (o.replacedBy !== gone.uid || o.state !== 'rekeyed') continue;
      delete o.replacedBy;
      this.transitionChild(o, 'installed', 'its replacement was deleted by the peer');
      this.scheduleChildTimers(o);
    }
  }

  /**
   * RFC 7296 2.25: the peer answered CHILD_SA_NOT_FOUND to our rekey of `old`, so it holds no
   * such pair. A new Child SA of the same configuration is made from scratch (unless another
   * one already carries traffic), and `old` is deleted once it is up: retrying the rekey, as
   * before, failed the same way until `old` expired, with the peer's half of the traffic lost.
   */
  private replaceLostChild(old: ChildSa, policy: ChildPolicy): void {
    const sibling = [...this.children.values()].some(
      (c) => c !== old && c.name === old.name && (c.state === 'installed' || c.state === 'rekeying'),
    );
    if (sibling) {
      void this.tm.enqueue(new DeleteChildTask(this, [old]));
      return;
    }
    void this.tm.enqueue(
      new CreateChildTask(this, policy, undefined, (r) => {
        if (!r.ok) {
          this.env.emit({
            type: 'child.failed',
            peer: this.peerName,
            child: old.name,
            code: r.code,
            reason: r.message,
          });
          this.retryChildRekey(old);
          return;
        }
        if (old.state === 'installed' || old.state === 'rekeying')
          this.transitionChild(old, 'rekeyed', 'replaced: the peer did not know it');
        old.replacedBy = r.child.uid;
        if (old.state !== 'deleting' && old.state !== 'destroyed')
          void this.tm.enqueue(new DeleteChildTask(this, [old]));
      }),
    );
  }

  /** A failed rekey of `old` is tried again later, before its hard expiry. */
  private retryChildRekey(old: ChildSa): void {
    if (old.state !== 'installed') return;
    const retryIn = Math.min(30_000, Math.max(1000, (old.expireAt - this.env.clock.now()) / 4));
    old.timers.rekey?.cancel();
    old.timers.rekey = this.env.clock.setTimer(retryIn * (0.5 + this.env.rand01() / 2), () => {
      void this.queue.run(() => this.rekeyChild(old));
    });
  }

  /** Refusal for a peer's rekey of `c`, or undefined to accept it. */
  childRekeyCollision(c: ChildSa): number | undefined {
    if (this.state === 'rekeying') return N.TEMPORARY_FAILURE;
    if (c.state === 'deleting' || c.state === 'destroyed' || c.state === 'rekeyed') return N.CHILD_SA_NOT_FOUND;
    return undefined;
  }

  /** Removes a Child SA from the kernel and from this IKE SA. */
  removeChild(c: ChildSa, reason: string): Promise<void> {
    return common.removeChild(this, c, reason);
  }

  /** Deletes Child SAs through the peer (INFORMATIONAL Delete). */
  async deleteChildren(children: ChildSa[]): Promise<void> {
    if (children.length) await this.tm.enqueue(new DeleteChildTask(this, children));
  }

  /** Deletes this IKE SA through the peer, then locally. */
  async delete(reason: string): Promise<void> {
    if (this.state === 'destroyed' || this.state === 'deleting' || this.tm.hasTask('ike-delete')) return;
    if (this.state !== 'established' && this.state !== 'rekeying' && this.state !== 'rekeyed') {
      await this.destroy(reason);
      return;
    }
    await this.tm.enqueue(
      new DeleteIkeTask(this, reason, { baseMs: 500, factor: 2, maxTimeoutMs: 2000, tries: 2, jitter: 0.1 }),
      true,
    );
  }

  describeChild(c: ChildSa): string {
    return `${c.name} ${spiHex(c.spiIn)}_i ${spiHex(c.spiOut)}_o`;
  }
}

export function isMalformed(err: unknown): err is MalformedMessageError {
  return err instanceof MalformedMessageError;
}
