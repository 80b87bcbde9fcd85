import type { Clock } from './clock.js';

interface Waiting {
  task: () => Promise<unknown>;
  jitterMs: number;
  holdMaxMs: number;
  resolve: (v: unknown) => void;
  reject: (err: unknown) => void;
}

/**
 * One host's budget of negotiations it starts in bulk: start-up of both engines and the
 * ones a reload starts. At most `maxConcurrent` tasks hold a slot at once. A task takes
 * its slot in random order among those waiting (IKEv1 and IKEv2 start-ups, queued one
 * engine after the other, interleave), starts after a random delay of up to its `jitterMs`
 * (holding the slot meanwhile), and keeps the slot until the promise it returns settles
 * (a task that stands for an initiation resolves once the SA is up or gone), or at most
 * `holdMaxMs` from its start: an initiation to a peer that is down goes on without the
 * slot once the peer has failed to answer for that long. So a fleet-wide restart, or a
 * reload that changed the mesh defaults and with them every peer, does not leave as one
 * herd, and start-up and reload running together (or an IKEv1 and an IKEv2 engine) share
 * the one cap instead of each having its own.
 */
export class InitiationGate {
  private readonly waiting: Waiting[] = [];
  private running = 0;
  private max: number;

  constructor(
    private readonly clock: Clock,
    private readonly rand01: () => number,
    maxConcurrent = 32,
  ) {
    this.max = Math.max(1, maxConcurrent);
  }

  get maxConcurrent(): number {
    return this.max;
  }

  /** A new cap (a reload changed `startup.max_concurrent_initiations`); tasks holding slots keep them. */
  set maxConcurrent(n: number) {
    this.max = Math.max(1, Math.floor(n));
    this.pump();
  }

  /** Tasks holding a slot (in their jitter delay or running). */
  get inFlight(): number {
    return this.running;
  }

  /** Tasks waiting for a slot. */
  get queued(): number {
    return this.waiting.length;
  }

  /** Runs `task` in its turn; settles as the task's promise does. */
  run<T>(task: () => Promise<T>, jitterMs = 0, holdMaxMs = Number.POSITIVE_INFINITY): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.waiting.push({ task, jitterMs, holdMaxMs, resolve: resolve as (v: unknown) => void, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.running < this.max && this.waiting.length > 0) {
      // A random waiting task: swap it with the last and pop (order is not kept anyway).
      const i = Math.min(this.waiting.length - 1, Math.floor(this.rand01() * this.waiting.length));
      const w = this.waiting[i] as Waiting;
      this.waiting[i] = this.waiting[this.waiting.length - 1] as Waiting;
      this.waiting.pop();
      this.running++;
      let held = true;
      const free = () => {
        if (!held) return;
        held = false;
        this.running--;
        this.pump();
      };
      const go = () => {
        const limit = Number.isFinite(w.holdMaxMs) ? this.clock.setTimer(w.holdMaxMs, free) : undefined;
        let p: Promise<unknown>;
        try {
          p = w.task();
        } catch (err) {
          p = Promise.reject(err);
        }
        p.then(w.resolve, w.reject).finally(() => {
          limit?.cancel();
          free();
        });
      };
      const delay = this.rand01() * w.jitterMs;
      if (delay > 0) this.clock.setTimer(delay, go);
      else go();
    }
  }
}
