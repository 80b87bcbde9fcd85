import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/util/clock.js';
import { runPaced } from '../../src/util/paced.js';

describe('runPaced', () => {
  it('runs every task, at most maxConcurrent at once, each after up to jitterMs; a failure stops nothing', async () => {
    const clock = new FakeClock();
    const t0 = clock.now();
    let running = 0;
    let most = 0;
    const started: number[] = [];
    const errors: number[] = [];
    const tasks = Array.from({ length: 10 }, (_, i) => async () => {
      started.push(clock.now() - t0);
      running++;
      most = Math.max(most, running);
      await new Promise<void>((r) => clock.setTimer(100, r));
      running--;
      if (i === 3) throw new Error('task 3 failed');
    });
    let seed = 7;
    const rand = () => {
      seed = (seed * 48271) % 0x7fffffff;
      return seed / 0x7fffffff;
    };
    let done = false;
    void runPaced(tasks, { maxConcurrent: 3, jitterMs: 50 }, clock, rand, (i) => errors.push(i)).then(() => {
      done = true;
    });
    for (let t = 0; t < 2000 && !done; t += 10) await clock.advance(10);
    expect(done).toBe(true);
    expect(started).toHaveLength(10);
    expect(most).toBe(3);
    expect(errors).toEqual([3]);
    // 10 tasks of 100 ms, 3 at a time, each after up to 50 ms: 4 rounds, at most 4 x 150 ms.
    expect(Math.max(...started)).toBeLessThanOrEqual(3 * 150 + 50);
    expect(Math.max(...started)).toBeGreaterThanOrEqual(300);
    // The first three start within the jitter, at different times.
    expect(started.slice(0, 3).every((s) => s <= 50)).toBe(true);
    expect(new Set(started.slice(0, 3)).size).toBeGreaterThan(1);
  });

  it('no tasks: resolves at once', async () => {
    await runPaced([], { maxConcurrent: 4, jitterMs: 1000 }, new FakeClock(), Math.random, () => {});
  });
});
