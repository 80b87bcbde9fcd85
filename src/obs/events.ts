/**
 * The typed event bus. The daemon creates one EventBus and passes it to the
 * IKE engine, kernel layer, config reloader; logs, metrics and admin-socket
 * event streams subscribe. Every event is also published on the
 * `node:diagnostics_channel` channel `coati:<type>` for external tooling.
 */
import diagnostics_channel from 'node:diagnostics_channel';

export type IkeVersion = 1 | 2;
export type Role = 'initiator' | 'responder';

/** Stable codes for failed handshakes (names follow the IKEv2 notify where there is one). */
export type HandshakeFailure =
  | 'NO_PROPOSAL_CHOSEN'
  | 'AUTHENTICATION_FAILED'
  | 'TS_UNACCEPTABLE'
  | 'INVALID_KE_PAYLOAD'
  | 'INVALID_SYNTAX'
  | 'TIMEOUT'
  | 'PEER_DELETED'
  | 'KERNEL_ERROR'
  | 'INTERNAL_ERROR';

/** The event catalogue: a discriminated union on `type`. SPIs are hex strings. */
export type CoatiEvent =
  | { type: 'ike.state'; peer: string; spiI: string; spiR: string; from: string; to: string; reason: string }
  | { type: 'child.state'; peer: string; child: string; spiIn: string; spiOut: string; from: string; to: string }
  | { type: 'handshake.completed'; peer: string; version: IkeVersion; role: Role; latencyMs: number }
  | { type: 'handshake.failed'; peer: string; version: IkeVersion; reason: HandshakeFailure; detail?: string }
  | { type: 'liveness.sent'; peer: string }
  | { type: 'liveness.dead'; peer: string; silentMs: number }
  | { type: 'rekey.started'; peer: string; kind: 'ike' | 'child' }
  | { type: 'rekey.completed'; peer: string; kind: 'ike' | 'child' }
  /**
   * A rekey we started did not complete. `code`: the peer's error notify, TIMEOUT, or why we
   * refused its answer (REFUSED_ANSWER for an IKE SA rekey; for a Child SA, the notify name
   * that fits, e.g. NO_PROPOSAL_CHOSEN or TS_UNACCEPTABLE; QUICK_MODE_FAILED in IKEv1).
   */
  | { type: 'rekey.failed'; peer: string; kind: 'ike' | 'child'; code: string; reason: string }
  | { type: 'retransmit'; peer: string; exchange: string; attempt: number }
  | { type: 'cookie.sent'; addr: string }
  | { type: 'kernel.error'; op: string; code: string; detail?: string }
  | { type: 'peer.up'; peer: string; reason: string }
  | { type: 'peer.down'; peer: string; reason: string }
  | { type: 'packet.dropped'; reason: string; from: string }
  | { type: 'config.reloaded'; added: string[]; removed: string[]; changed: string[]; restartNeeded: string[] };

export type EventType = CoatiEvent['type'];
export type EventOf<T extends EventType> = Extract<CoatiEvent, { type: T }>;
export type Listener<T extends EventType> = (ev: EventOf<T>) => void;

export const EVENT_TYPES: readonly EventType[] = [
  'ike.state',
  'child.state',
  'handshake.completed',
  'handshake.failed',
  'liveness.sent',
  'liveness.dead',
  'rekey.started',
  'rekey.completed',
  'rekey.failed',
  'retransmit',
  'cookie.sent',
  'kernel.error',
  'peer.up',
  'peer.down',
  'packet.dropped',
  'config.reloaded',
];

export interface EventBusOptions {
  /** Called when a listener throws; the emitter never sees listener errors. */
  onListenerError?: (err: unknown, ev: CoatiEvent) => void;
  /** Mirror events to diagnostics_channel (default true). */
  diagnostics?: boolean;
}

const NONE: readonly ((ev: CoatiEvent) => void)[] = [];

export class EventBus {
  readonly #byType = new Map<EventType, Set<(ev: CoatiEvent) => void>>();
  readonly #all = new Set<(ev: CoatiEvent) => void>();
  readonly #opts: EventBusOptions;
  readonly #channels = new Map<EventType, diagnostics_channel.Channel>();

  constructor(opts: EventBusOptions = {}) {
    this.#opts = opts;
  }

  /** Subscribe to one event type; returns the unsubscribe function. */
  on<T extends EventType>(type: T, fn: Listener<T>): () => void {
    let set = this.#byType.get(type);
    if (set === undefined) {
      set = new Set();
      this.#byType.set(type, set);
    }
    const f = fn as (ev: CoatiEvent) => void;
    set.add(f);
    return () => set.delete(f);
  }

  /** Subscribe to every event. */
  onAny(fn: (ev: CoatiEvent) => void): () => void {
    this.#all.add(fn);
    return () => this.#all.delete(fn);
  }

  emit(ev: CoatiEvent): void {
    const typed = this.#byType.get(ev.type);
    // No listener array when nobody listens; otherwise a copy, so listeners may unsubscribe while called.
    const fns = typed?.size || this.#all.size ? [...(typed ?? []), ...this.#all] : NONE;
    for (const fn of fns) {
      try {
        fn(ev);
      } catch (err) {
        try {
          this.#opts.onListenerError?.(err, ev);
        } catch {
          // a failing error handler must not reach the emitter either
        }
      }
    }
    if (this.#opts.diagnostics !== false) {
      let ch = this.#channels.get(ev.type);
      if (ch === undefined) {
        ch = diagnostics_channel.channel(`coati:${ev.type}`);
        this.#channels.set(ev.type, ch);
      }
      if (ch.hasSubscribers) ch.publish(ev);
    }
  }
}
