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

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(ms, fn) {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref?.();
    return { cancel: () => clearTimeout(t) };
  },
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
