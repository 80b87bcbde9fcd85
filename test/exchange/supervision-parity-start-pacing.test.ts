/**
 * Start-up pacing, IKEv1 as IKEv2: a host with many `start = now` peers initiates them in
 * random order, each after a random delay of up to `jitterMs`, with at most
 * `maxConcurrent` initiations in flight (from the first message until the SA is up or has
 * failed), so a fleet-wide restart is not a thundering herd. IKEv1 used to start them all
 * at once, in configuration order.
 */
import { describe, expect, it } from 'vitest';
import type { PeerPolicy } from '../../src/sa/policy.js';
import { Mesh, peerPolicy } from '../helpers/ike-pair.js';
import { V1Mesh, v1Policy } from '../helpers/ike1-pair.js';
import type { LinkNode } from '../helpers/pair-base.js';

const SPOKES = 12;
const PACING = { maxConcurrent: 3, jitterMs: 500 };

interface Engine {
  setPeer(p: PeerPolicy): void;
  start(pacing: Partial<typeof PACING>): Promise<void>;
  established(name: string): readonly unknown[];
  connecting(name: string): readonly unknown[];
  terminate(name: string): Promise<number>;
}
const engine = (n: LinkNode) => n.manager as unknown as Engine;

/** A hub with SPOKES start = now peers; a spoke answers only (start = none). */
function hubAndSpokes(version: 1 | 2, retransmit?: PeerPolicy['retransmit']) {
  const m = version === 1 ? new V1Mesh(21) : new Mesh(21);
  const policy = version === 1 ? v1Policy : peerPolicy;
  const hub = m.add('hub', '10.0.0.1');
  // One attempt of 4 s, no retransmission: an unanswered initiation holds its slot that long.
  const slow: Partial<PeerPolicy> = {
    retransmit: retransmit ?? { baseMs: 4000, factor: 1, maxTimeoutMs: 4000, tries: 0, jitter: 0 },
  };
  const spokes: LinkNode[] = [];
  for (let i = 0; i < SPOKES; i++) {
    const s = m.add(`s${i}`, `10.0.1.${i + 1}`);
    spokes.push(s);
    engine(hub).setPeer(policy(hub, s, { ...slow, start: 'now', restartBackoffMaxMs: 2000 }));
    engine(s).setPeer(policy(s, hub, { start: 'none' }));
  }
  return { m, hub, spokes };
}

describe.each([1, 2] as const)('IKEv%i start-up pacing', (version) => {
  it('at most maxConcurrent in flight, random order, spread over the jitter; all come up', async () => {
    const { m, hub, spokes } = hubAndSpokes(version);
    for (const s of spokes) s.up = false; // nobody answers yet: every initiation stays in flight
    const t0 = m.clock.now();
    await engine(hub).start(PACING);
    const inFlight = () => spokes.filter((s) => engine(hub).connecting(s.name).length > 0).length;
    const firstSend = new Map<string, number>();
    let most = 0;
    for (let t = 0; t < 3900; t += 10) {
      await m.advance(10, 10);
      for (const w of m.sent)
        if (w.from.addr === hub.addr && !firstSend.has(w.to.addr)) firstSend.set(w.to.addr, m.clock.now() - t0);
      most = Math.max(most, inFlight());
    }
    expect(most).toBe(PACING.maxConcurrent);
    // Only the first maxConcurrent started: each holds its slot until its attempt fails.
    expect(firstSend.size).toBe(PACING.maxConcurrent);
    const times = [...firstSend.values()];
    expect(Math.max(...times)).toBeLessThanOrEqual(PACING.jitterMs);
    expect(new Set(times).size).toBeGreaterThan(1);
    // The spokes answer from now on: every one comes up, in an order other than the configuration's.
    for (const s of spokes) s.up = true;
    for (let t = 0; t < 60_000 && spokes.some((s) => engine(hub).established(s.name).length === 0); t += 100) {
      await m.advance(100, 25);
      for (const w of m.sent)
        if (w.from.addr === hub.addr && !firstSend.has(w.to.addr)) firstSend.set(w.to.addr, m.clock.now() - t0);
      expect(inFlight()).toBeLessThanOrEqual(PACING.maxConcurrent + 3); // + the first three's retries
    }
    for (const s of spokes) expect(engine(hub).established(s.name)).toHaveLength(1);
    const order = [...firstSend.entries()].sort((a, b) => a[1] - b[1]).map(([addr]) => addr);
    expect(order).toHaveLength(SPOKES);
    expect(order).not.toEqual(spokes.map((s) => s.addr));
  });

  it('an in-flight start-up whose SA goes without an outcome (terminated while connecting) frees its slot', async () => {
    const { m, hub, spokes } = hubAndSpokes(version);
    for (const s of spokes) s.up = false;
    await engine(hub).start(PACING);
    await m.advance(PACING.jitterMs + 10, 10);
    const first = spokes.filter((s) => engine(hub).connecting(s.name).length > 0);
    expect(first).toHaveLength(PACING.maxConcurrent);
    // The operator terminates the three attempts in flight: no SA is up, none failed.
    for (const s of first) await engine(hub).terminate(s.name);
    expect(first.filter((s) => engine(hub).connecting(s.name).length > 0)).toEqual([]);
    // The next three start (their slots were held for ever before).
    await m.advance(PACING.jitterMs + 10, 10);
    const next = spokes.filter((s) => !first.includes(s) && engine(hub).connecting(s.name).length > 0);
    expect(next).toHaveLength(PACING.maxConcurrent);
  });

  it('a peer that does not answer gives its slot up at its second retransmission; its initiation goes on', async () => {
    // 1 s, 2 s, 4 s, ...: 63 s until an attempt fails; the slot is held for 1 + 2 = 3 s at most.
    const retransmit = { baseMs: 1000, factor: 2, maxTimeoutMs: 30_000, tries: 5, jitter: 0 };
    const { m, hub, spokes } = hubAndSpokes(version, retransmit);
    for (const s of spokes) s.up = false;
    const pacing = { maxConcurrent: 3, jitterMs: 0 };
    await engine(hub).start(pacing);
    const contacted = () => spokes.filter((s) => m.sent.some((w) => w.to.addr === s.addr)).length;
    await m.advance(2990, 10);
    expect(contacted()).toBe(3);
    // Each 3 s the next three go; before, all twelve waited for the first three's 63 s.
    await m.advance(20, 10);
    expect(contacted()).toBe(6);
    await m.advance(6000, 10);
    expect(contacted()).toBe(12);
    // The first three are still being retransmitted to (no retry: the same attempt).
    const inFlight = spokes.filter((s) => engine(hub).connecting(s.name).length > 0);
    expect(inFlight).toHaveLength(12);
    // Up once they answer.
    for (const s of spokes) s.up = true;
    for (let t = 0; t < 60_000 && spokes.some((s) => engine(hub).established(s.name).length === 0); t += 100)
      await m.advance(100, 25);
    for (const s of spokes) expect(engine(hub).established(s.name)).toHaveLength(1);
  });
});
