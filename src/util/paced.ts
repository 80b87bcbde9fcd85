import type { Clock } from './clock.js';

export interface Pacing {
  /** At most this many tasks run at once. */
  maxConcurrent: number;
  /** Each task starts after a random delay of up to this many ms once its slot is free. */
  jitterMs: number;
}

/**
 * Runs `tasks` with at most `maxConcurrent` at a time, each after a random delay of up to
 * `jitterMs` once a slot is free, so a burst of work against many peers (a reload that
 * changed the mesh defaults, and with them every peer) does not leave as one herd. A
 * task that throws is handed to `onError` and the others go on. Resolves when every
 * task has finished.
 */
export async function runPaced(
  tasks: readonly (() => Promise<unknown>)[],
  pacing: Pacing,
  clock: Clock,
  rand01: () => number,
  onError: (index: number, err: unknown) => void,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < tasks.length) {
      const i = next++;
      const delay = rand01() * pacing.jitterMs;
      if (delay > 0) await new Promise<void>((resolve) => clock.setTimer(delay, resolve));
      try {
        await (tasks[i] as () => Promise<unknown>)();
      } catch (err) {
        onError(i, err);
      }
    }
  };
  const workers = Math.max(1, Math.min(pacing.maxConcurrent, tasks.length));
  await Promise.all(Array.from({ length: workers }, worker));
}
