import { describe, expect, it } from 'vitest';
import { systemClock, TimerHeap } from '../../src/util/clock.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** Polls until `cond` holds (generous: the machine may be loaded). */
async function until(cond: () => boolean, maxMs = 10_000): Promise<void> {
  const end = Date.now() + maxMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await sleep(5);
  }
}

describe('TimerHeap (the system clock scheduler)', () => {
  it('fires timers in deadline order, ties in creation order, never early', async () => {
    const heap = new TimerHeap();
    const fired: string[] = [];
    const start = performance.now();
    const at: Record<string, number> = {};
    const add = (name: string, ms: number) =>
      heap.add(ms, () => {
        fired.push(name);
        at[name] = performance.now() - start;
      });
    add('c', 60);
    add('a', 20);
    add('b1', 40);
    add('b2', 40);
    add('zero', 0);
    add('neg', -5);
    expect(heap.size).toBe(6);
    await until(() => heap.size === 0);
    expect(fired).toEqual(['zero', 'neg', 'a', 'b1', 'b2', 'c']);
    expect(at.a).toBeGreaterThanOrEqual(19);
    expect(at.b1).toBeGreaterThanOrEqual(39);
    expect(at.c).toBeGreaterThanOrEqual(59);
    expect(heap.size).toBe(0);
  });

  it('cancelled timers never fire, wherever they sit in the heap; cancel is idempotent', async () => {
    const heap = new TimerHeap();
    const fired: number[] = [];
    const timers = Array.from({ length: 200 }, (_, i) => heap.add((i * 7919) % 50, () => fired.push(i)));
    for (let i = 0; i < 200; i += 3) timers[i]?.cancel();
    timers[0]?.cancel();
    expect(heap.size).toBe(200 - 67);
    await until(() => heap.size === 0);
    const expected = Array.from({ length: 200 }, (_, i) => i)
      .filter((i) => i % 3 !== 0)
      .sort((a, b) => ((a * 7919) % 50) - ((b * 7919) % 50) || a - b);
    expect(fired).toEqual(expected);
    timers[1]?.cancel(); // already fired: no effect
    expect(heap.size).toBe(0);
  });

  it('a callback may cancel a timer due in the same turn, and timers it adds wait for the next turn', async () => {
    const heap = new TimerHeap();
    const fired: string[] = [];
    let later: { cancel(): void } | undefined;
    heap.add(10, () => {
      fired.push('first');
      later?.cancel();
      heap.add(0, () => fired.push('added'));
    });
    later = heap.add(10, () => fired.push('cancelled'));
    heap.add(10, () => fired.push('third'));
    await until(() => heap.size === 0);
    expect(fired).toEqual(['first', 'third', 'added']);
  });

  it('an earlier timer added after a later one re-arms the underlying timer', async () => {
    const heap = new TimerHeap();
    const fired: string[] = [];
    heap.add(5000, () => fired.push('late'));
    heap.add(10, () => fired.push('early'));
    await until(() => fired.length > 0);
    expect(fired).toEqual(['early']);
    expect(heap.size).toBe(1);
  });

  it('uses an injected monotonic clock for deadlines', async () => {
    let t = 1000;
    const heap = new TimerHeap(() => t);
    const fired: string[] = [];
    heap.add(100, () => fired.push('x'));
    t = 1200; // the clock says it is overdue: it fires at the next wake-up
    await until(() => heap.size === 0);
    expect(fired).toEqual(['x']);
  });

  it('systemClock timers run and cancel through the shared heap', async () => {
    const fired: string[] = [];
    const a = systemClock.setTimer(10, () => fired.push('a'));
    systemClock.setTimer(20, () => fired.push('b'));
    a.cancel();
    await until(() => fired.length > 0);
    await sleep(30);
    expect(fired).toEqual(['b']);
  });
});
