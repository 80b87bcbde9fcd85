/**
 * Time is injected: the composition root passes `systemClock`, tests pass a
 * `FakeClock` and step it. Timers are named after protocol events by their
 * owners and die with them (`cancel`).
 */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Runs fn after ms milliseconds unless cancelled. */
  setTimer(ms: number, fn: () => void): Timer;
}

/**
 * One pending timer of a `TimerHeap`, and its handle. No closures: an IKE SA
 * keeps about five of these alive for hours (rekey, expiry, liveness).
 */
class HeapTimer implements Timer {
  constructor(
    readonly owner: TimerHeap,
    readonly at: number,
    readonly seq: number,
    public fn: (() => void) | undefined,
    /** Index in the heap; -1 once fired or cancelled. */
    public pos: number,
  ) {}

  cancel(): void {
    this.owner.remove(this);
  }
}

/** Longest delay one setTimeout takes (Node fires anything longer after 1 ms). */
const TIMEOUT_MAX = 2 ** 31 - 1;

/**
 * All timers of a process on one Node timer: a binary heap ordered by
 * deadline (then creation order), with a single unref'd setTimeout armed for
 * the earliest. Thousands of SAs with their rekey, expiry and liveness timers
 * cost one heap entry each instead of a Node Timeout, a timer list per
 * distinct (jittered) duration, a closure and a handle. Deadlines are on the
 * monotonic clock, as Node's own timers are. Exact: a timer never fires early.
 */
export class TimerHeap {
  private readonly heap: HeapTimer[] = [];
  private seq = 0;
  private handle: ReturnType<typeof setTimeout> | undefined;
  private armedFor = Number.POSITIVE_INFINITY;

  constructor(private readonly mono: () => number = () => performance.now()) {}

  /** Live timers (tests). */
  get size(): number {
    return this.heap.length;
  }

  add(ms: number, fn: () => void): Timer {
    const delay = ms > 0 ? ms : 0; // NaN and negatives: due now
    const t = new HeapTimer(this, this.mono() + delay, this.seq++, fn, this.heap.length);
    this.heap.push(t);
    this.up(t.pos);
    if (t.pos === 0) this.arm();
    return t;
  }

  remove(t: HeapTimer): void {
    const i = t.pos;
    if (i < 0) return;
    t.pos = -1;
    t.fn = undefined;
    const last = this.heap.pop() as HeapTimer;
    if (last !== t) {
      this.heap[i] = last;
      last.pos = i;
      this.down(i);
      this.up(last.pos);
    }
    // An early wake-up finds nothing due and re-arms: no need to re-arm here.
    if (this.heap.length === 0) this.disarm();
  }

  private readonly fire = (): void => {
    this.handle = undefined;
    this.armedFor = Number.POSITIVE_INFINITY;
    const now = this.mono();
    // Timers added by these callbacks wait for the next turn, as with setTimeout.
    const limit = this.seq;
    try {
      for (;;) {
        const top = this.heap[0];
        if (!top || top.at > now || top.seq >= limit) break;
        const fn = top.fn;
        this.remove(top);
        fn?.();
      }
    } finally {
      // Also after a throwing callback (it surfaces as an uncaught exception, as
      // with setTimeout): the timers still due run on the next turn.
      this.arm();
    }
  };

  private arm(): void {
    const top = this.heap[0];
    if (!top) return this.disarm();
    if (this.handle !== undefined && this.armedFor <= top.at) return;
    if (this.handle !== undefined) clearTimeout(this.handle);
    const wait = Math.min(TIMEOUT_MAX, Math.max(0, Math.ceil(top.at - this.mono())));
    this.handle = setTimeout(this.fire, wait);
    this.handle.unref?.();
    this.armedFor = top.at;
  }

  private disarm(): void {
    if (this.handle !== undefined) clearTimeout(this.handle);
    this.handle = undefined;
    this.armedFor = Number.POSITIVE_INFINITY;
  }

  private less(a: HeapTimer, b: HeapTimer): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  private up(i: number): void {
    const h = this.heap;
    const t = h[i] as HeapTimer;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = h[p] as HeapTimer;
      if (!this.less(t, parent)) break;
      h[i] = parent;
      parent.pos = i;
      i = p;
    }
    h[i] = t;
    t.pos = i;
  }

  private down(i: number): void {
    const h = this.heap;
    const n = h.length;
    const t = h[i] as HeapTimer;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && this.less(h[r] as HeapTimer, h[l] as HeapTimer) ? r : l;
      const child = h[c] as HeapTimer;
      if (!this.less(child, t)) break;
      h[i] = child;
      child.pos = i;
      i = c;
    }
    h[i] = t;
    t.pos = i;
  }
}

const systemTimers = new TimerHeap();

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer: (ms, fn) => systemTimers.add(ms, fn),
};

interface Pending {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/** Deterministic clock for tests: timers fire only when `advance` passes them. */
export class FakeClock implements Clock {
  private t: number;
  private seq = 0;
  private pending: Pending[] = [];

  constructor(start = 1_700_000_000_000) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  setTimer(ms: number, fn: () => void): Timer {
    const p: Pending = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.pending.push(p);
    return {
      cancel: () => {
        p.cancelled = true;
      },
    };
  }

  /** Number of live timers (for leak checks: timers must die with their SA). */
  get timerCount(): number {
    return this.pending.filter((p) => !p.cancelled).length;
  }

  /** Time of the next live timer, or undefined. */
  nextAt(): number | undefined {
    let best: number | undefined;
    for (const p of this.pending) if (!p.cancelled && (best === undefined || p.at < best)) best = p.at;
    return best;
  }

  /**
   * Advances time by ms, firing due timers in order. `settle` is awaited
   * after each timer so async work it started can run before the next one.
   */
  async advance(ms: number, settle: () => Promise<void> = flushMicrotasks): Promise<void> {
    const target = this.t + ms;
    for (;;) {
      this.pending = this.pending.filter((p) => !p.cancelled);
      let next: Pending | undefined;
      for (const p of this.pending) {
        if (p.at <= target && (!next || p.at < next.at || (p.at === next.at && p.seq < next.seq))) next = p;
      }
      if (!next) break;
      this.t = Math.max(this.t, next.at);
      next.cancelled = true;
      next.fn();
      await settle();
    }
    this.t = target;
    await settle();
  }
}

/** Lets queued promise continuations and immediates run. */
export async function flushMicrotasks(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r));
}

/** Uniform jitter: returns ms scaled by a random factor in [1 - frac, 1]. */
export function withJitter(ms: number, frac: number, random: () => number = Math.random): number {
  return Math.round(ms * (1 - frac * random()));
}

/**
 * Resolves once `done()` holds (checked now and every `stepMs` on `clock`), with true, or
 * with false when `maxMs` passed first.
 */
export function pollUntil(clock: Clock, done: () => boolean, maxMs: number, stepMs = 100): Promise<boolean> {
  const start = clock.now();
  return new Promise<boolean>((resolve) => {
    const check = () => {
      if (done()) return resolve(true);
      if (clock.now() - start > maxMs) return resolve(false);
      clock.setTimer(stepMs, check);
    };
    check();
  });
}
