import type { Clock, Timer } from '../util/clock.js';
import { type RetransmitSchedule, retransmitTimeout } from './retransmit.js';

/**
 * Message-level view the task manager works with: plaintext payloads of one
 * exchange. The IKE SA turns these into datagrams (encryption, fragments).
 */
export interface OutboundMessage<P> {
  exchange: number;
  payloads: P[];
}

export interface InboundMessage<P> {
  exchange: number;
  messageId: number;
  response: boolean;
  payloads: P[];
}

export type TaskOutcome =
  /** Exchange complete; the next task may start. */
  | { kind: 'done' }
  /** Rebuild and resend with the same message ID (IKE_SA_INIT COOKIE / INVALID_KE retries). */
  | { kind: 'retry' }
  /** The exchange failed; the task has already recorded why. */
  | { kind: 'failed'; reason: string };

/** An initiator-side task: builds one request and handles its response. */
export interface InitiatorTask<P> {
  readonly name: string;
  /** Builds the request. May await the kernel (SPI allocation). */
  build(): Promise<OutboundMessage<P>> | OutboundMessage<P>;
  onResponse(msg: InboundMessage<P>): Promise<TaskOutcome> | TaskOutcome;
  /** Retransmissions exhausted, or the SA went away before completion. */
  onAbort(reason: 'timeout' | 'destroyed'): void;
  /** When this task fails, the tasks queued behind it cannot run (IKE_SA_INIT before IKE_AUTH). */
  readonly fatalOnFailure?: boolean;
  /** Optional per-task schedule (liveness checks use a short one). */
  readonly retransmit?: RetransmitSchedule;
  /**
   * A fixed message ID outside the window (RFC 6311 sync uses 0): the
   * exchange does not advance the counter; the task may `resync` it.
   */
  readonly messageId?: number;
}

/** Message-ID state carried over a daemon restart (checkpoint). */
export interface TaskManagerResume {
  nextOut: number;
  nextIn: number;
  /** The answer to the peer's last request, so a retransmission after the restart is still answered. */
  lastResponse?: { messageId: number; datagrams: Buffer[] };
  /**
   * Our inbound counter may be behind (crash-time checkpoint): accept the
   * first authenticated request at or ahead of it instead of only an exact match.
   */
  acceptAhead?: boolean;
}

export interface TaskManagerEnv<P> {
  clock: Clock;
  random: () => number;
  schedule: RetransmitSchedule;
  /** Encodes and sends; returns the datagrams so retransmits reuse the bytes. */
  encode(msg: OutboundMessage<P>, messageId: number, response: boolean): Buffer[];
  send(datagrams: Buffer[]): void;
  /** Answers a request; the IKE SA dispatches by exchange to responder tasks. */
  respond(msg: InboundMessage<P>): Promise<OutboundMessage<P>>;
  /** A task timed out after all retransmits: the IKE SA decides what follows. */
  onTimeout(task: string): void;
  onRetransmit?(task: string, attempt: number): void;
  /** A message ID advanced (checkpoints follow it). */
  onIdsChanged?(): void;
}

interface Active<P> {
  task: InitiatorTask<P>;
  messageId: number;
  datagrams: Buffer[];
  attempt: number;
  timer: Timer | undefined;
  /** Cut short once already (expedite); further calls change nothing. */
  expedited?: boolean;
}

/**
 * Owns message IDs and the window (size 1 each way), retransmission, the
 * cached response for retransmitted requests, and the order tasks run in.
 * It never decides protocol content: tasks build and process payloads.
 */
export class TaskManager<P> {
  private queue: InitiatorTask<P>[] = [];
  private active: Active<P> | undefined;
  private nextOutId: number;
  private nextInId: number;
  private lastResponse: { messageId: number; datagrams: Buffer[] } | undefined;
  private destroyed = false;
  private acceptAhead = false;

  constructor(
    private readonly env: TaskManagerEnv<P>,
    ids: { nextOut: number; nextIn: number } = { nextOut: 0, nextIn: 0 },
  ) {
    this.nextOutId = ids.nextOut;
    this.nextInId = ids.nextIn;
  }

  /** Message IDs for status and checkpoints. */
  get ids(): { nextOut: number; nextIn: number } {
    return { nextOut: this.nextOutId, nextIn: this.nextInId };
  }
  /** The cached answer to the peer's last request (checkpoints). */
  get cachedResponse(): { messageId: number; datagrams: Buffer[] } | undefined {
    return this.lastResponse;
  }

  /** Restores message-ID state saved before a restart (before any task runs). */
  resume(r: TaskManagerResume): void {
    this.nextOutId = r.nextOut >>> 0;
    this.nextInId = r.nextIn >>> 0;
    this.lastResponse = r.lastResponse;
    this.acceptAhead = r.acceptAhead ?? false;
  }

  /**
   * Moves the counters forward after a message-ID synchronisation
   * (RFC 6311); never backwards. The request in flight keeps its ID.
   */
  resync(ids: { nextOut: number; nextIn: number }): void {
    const ahead = (a: number, b: number) => (a - b) >>> 0 < 0x80000000;
    if (ahead(ids.nextOut, this.nextOutId)) this.nextOutId = ids.nextOut >>> 0;
    if (ahead(ids.nextIn, this.nextInId)) this.nextInId = ids.nextIn >>> 0;
    this.acceptAhead = false;
    this.env.onIdsChanged?.();
  }

  get busy(): boolean {
    return this.active !== undefined;
  }
  get activeTask(): string | undefined {
    return this.active?.task.name;
  }
  get queued(): readonly string[] {
    return this.queue.map((t) => t.name);
  }
  hasTask(name: string): boolean {
    return this.active?.task.name === name || this.queue.some((t) => t.name === name);
  }

  /** Adds a task; `front` puts it ahead of queued ones (e.g. deletes). */
  async enqueue(task: InitiatorTask<P>, front = false): Promise<void> {
    if (this.destroyed) {
      task.onAbort('destroyed');
      return;
    }
    if (front) this.queue.unshift(task);
    else this.queue.push(task);
    await this.pump();
  }

  /** Starts the next task if the window is free. */
  async pump(): Promise<void> {
    while (!this.active && !this.destroyed) {
      const task = this.queue.shift();
      if (!task) return;
      await this.start(task, task.messageId ?? this.nextOutId);
    }
  }

  /** When a request (first send or retransmission) last went out; 0 = never. */
  lastRequestSentAt = 0;

  private async start(task: InitiatorTask<P>, messageId: number): Promise<void> {
    const msg = await task.build();
    if (this.destroyed) {
      task.onAbort('destroyed');
      return;
    }
    const datagrams = this.env.encode(msg, messageId, false);
    this.active = { task, messageId, datagrams, attempt: 0, timer: undefined };
    this.lastRequestSentAt = this.env.clock.now();
    this.env.send(datagrams);
    this.arm();
  }

  private arm(): void {
    const a = this.active;
    if (!a) return;
    const schedule = a.task.retransmit ?? this.env.schedule;
    a.timer = this.env.clock.setTimer(retransmitTimeout(schedule, a.attempt, this.env.random), () => {
      if (this.active !== a) return;
      if (a.attempt >= schedule.tries) {
        this.active = undefined;
        a.task.onAbort('timeout');
        this.env.onTimeout(a.task.name);
        return;
      }
      a.attempt++;
      this.env.onRetransmit?.(a.task.name, a.attempt);
      this.lastRequestSentAt = this.env.clock.now();
      this.env.send(a.datagrams);
      this.arm();
    });
  }

  /**
   * Caps the time left for the request in flight: one more send now, and a
   * timeout after `ms` with no further retransmits. Used to confirm quickly
   * when the peer says (unauthenticated) that it lost our SA.
   */
  expedite(ms: number): boolean {
    const a = this.active;
    if (!a || a.expedited) return false;
    a.expedited = true;
    a.timer?.cancel();
    this.lastRequestSentAt = this.env.clock.now();
    this.env.send(a.datagrams);
    a.timer = this.env.clock.setTimer(ms, () => {
      if (this.active !== a) return;
      this.active = undefined;
      a.task.onAbort('timeout');
      this.env.onTimeout(a.task.name);
    });
    return true;
  }

  /** A response arrived (already authenticated and decoded by the IKE SA). */
  async onResponse(msg: InboundMessage<P>): Promise<'handled' | 'unexpected'> {
    const a = this.active;
    if (!a || msg.messageId !== a.messageId) return 'unexpected';
    a.timer?.cancel();
    const outcome = await a.task.onResponse(msg);
    if (this.active !== a) return 'handled';
    this.active = undefined;
    if (outcome.kind === 'retry') {
      await this.start(a.task, a.messageId);
      return 'handled';
    }
    if (outcome.kind === 'failed' && a.task.fatalOnFailure) {
      for (const t of this.queue.splice(0)) t.onAbort('destroyed');
    }
    if (a.task.messageId === undefined) {
      // Never backwards: a message-ID sync may have moved the counter past this request.
      const next = (a.messageId + 1) >>> 0;
      if ((next - this.nextOutId) >>> 0 < 0x80000000) this.nextOutId = next;
      this.env.onIdsChanged?.();
    }
    await this.pump();
    return 'handled';
  }

  /**
   * A request arrived. Returns 'retransmit' when it repeats the last one
   * (the cached response was resent), 'ignored' when its ID is out of window.
   */
  async onRequest(msg: InboundMessage<P>): Promise<'answered' | 'retransmit' | 'ignored'> {
    if (this.lastResponse && msg.messageId === this.lastResponse.messageId) {
      this.env.send(this.lastResponse.datagrams);
      return 'retransmit';
    }
    if (msg.messageId !== this.nextInId) {
      const ahead = (msg.messageId - this.nextInId) >>> 0 < 0x80000000;
      if (!this.acceptAhead || !ahead) return 'ignored';
    }
    this.acceptAhead = false;
    const reply = await this.env.respond(msg);
    const datagrams = this.env.encode(reply, msg.messageId, true);
    this.lastResponse = { messageId: msg.messageId, datagrams };
    this.nextInId = (msg.messageId + 1) >>> 0;
    this.env.onIdsChanged?.();
    if (!this.destroyed) this.env.send(datagrams);
    return 'answered';
  }

  /** True if the message ID belongs to a request we already answered. */
  isRetransmittedRequest(messageId: number): boolean {
    return this.lastResponse?.messageId === messageId;
  }

  /** Cancels timers and aborts all tasks. Idempotent. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    const a = this.active;
    this.active = undefined;
    a?.timer?.cancel();
    a?.task.onAbort('destroyed');
    for (const t of this.queue.splice(0)) t.onAbort('destroyed');
  }
}
