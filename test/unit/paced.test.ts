import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/util/clock.js';
import { InitiationGate } from '../../src/util/paced.js';

describe('InitiationGate pacing', () => {
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
    const gate = new InitiationGate(clock, rand, 3);
    void Promise.all(tasks.map((t, i) => gate.run(t, 50).catch(() => errors.push(i)))).then(() => {
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

  it('a task that outlives holdMaxMs gives its slot up then, and still settles with its own result', async () => {
    const clock = new FakeClock();
    const gate = new InitiationGate(clock, () => 0, 1);
    const t0 = clock.now();
    const started: number[] = [];
    const slow = (ms: number, v: string) => () => {
      started.push(clock.now() - t0);
      return new Promise<string>((r) => clock.setTimer(ms, () => r(v)));
    };
    const a = gate.run(slow(10_000, 'a'), 0, 3000);
    const b = gate.run(slow(100, 'b'), 0, 3000);
    const c = gate.run(slow(100, 'c'), 0, 3000);
    await clock.advance(2999);
    expect(started).toEqual([0]);
    await clock.advance(1);
    // a is past its hold: b has the slot (a still runs); c follows b's end, not a's.
    expect(started).toEqual([0, 3000]);
    await clock.advance(100);
    expect(started).toEqual([0, 3000, 3100]);
    await clock.advance(100);
    expect(await Promise.all([b, c])).toEqual(['b', 'c']);
    await clock.advance(10_000);
    await expect(a).resolves.toBe('a');
    expect(gate.inFlight).toBe(0);
  });
});

describe('InitiationGate', () => {
  it('one cap for every submitter; a slot is held until the task settles; a new cap applies at once', async () => {
    const clock = new FakeClock();
    const gate = new InitiationGate(clock, () => 0.5, 2);
    const release: (() => void)[] = [];
    const ran: string[] = [];
    const hold = (name: string) => () =>
      new Promise<string>((r) => {
        ran.push(name);
        release.push(() => r(name));
      });
    // Two submitters (start-up, reload) on the one gate.
    const results = [gate.run(hold('s1')), gate.run(hold('s2')), gate.run(hold('r1'), 100), gate.run(hold('r2'), 100)];
    await clock.advance(0);
    expect(ran).toEqual(['s1', 's2']);
    expect(gate.inFlight).toBe(2);
    expect(gate.queued).toBe(2);
    release.shift()?.();
    await clock.advance(0);
    // A waiting task takes the slot (rand 0.5 of [r1, r2]: r2); it starts after its jitter
    // (0.5 x 100 ms), holding the slot meanwhile.
    expect(gate.inFlight).toBe(2);
    expect(gate.queued).toBe(1);
    expect(ran).toEqual(['s1', 's2']);
    await clock.advance(50);
    expect(ran).toEqual(['s1', 's2', 'r2']);
    gate.maxConcurrent = 3;
    await clock.advance(50);
    expect(ran).toEqual(['s1', 's2', 'r2', 'r1']);
    while (release.length) release.shift()?.();
    expect(await Promise.all(results)).toEqual(['s1', 's2', 'r1', 'r2']);
    expect(gate.inFlight).toBe(0);
  });

  it('waiting tasks take slots in random order: two submitters queued one after the other interleave', async () => {
    const clock = new FakeClock();
    let seed = 11;
    const rand = () => {
      seed = (seed * 48271) % 0x7fffffff;
      return seed / 0x7fffffff;
    };
    const gate = new InitiationGate(clock, rand, 1);
    const order: string[] = [];
    const task = (name: string) => async () => {
      order.push(name);
    };
    const v2 = Array.from({ length: 10 }, (_, i) => gate.run(task(`v2-${i}`)));
    const v1 = Array.from({ length: 10 }, (_, i) => gate.run(task(`v1-${i}`)));
    await Promise.all([...v2, ...v1]);
    expect(order).toHaveLength(20);
    expect(new Set(order).size).toBe(20);
    // Not every IKEv2 task before every IKEv1 one (the daemon queues the engines one after the other).
    const lastV2 = Math.max(...order.map((n, i) => (n.startsWith('v2') ? i : -1)));
    const firstV1 = order.findIndex((n) => n.startsWith('v1'));
    expect(firstV1).toBeLessThan(lastV2);
  });

  it('a task that throws, at once or later, rejects its own run only and frees its slot', async () => {
    const clock = new FakeClock();
    const gate = new InitiationGate(clock, Math.random, 1);
    const a = gate.run(() => {
      throw new Error('sync');
    });
    const b = gate.run(() => Promise.reject(new Error('async')));
    const c = gate.run(async () => 'c');
    await expect(a).rejects.toThrow('sync');
    await expect(b).rejects.toThrow('async');
    await expect(c).resolves.toBe('c');
    expect(gate.inFlight).toBe(0);
  });
});
