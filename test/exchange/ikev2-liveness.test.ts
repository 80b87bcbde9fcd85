import { describe, expect, it } from 'vitest';
import { Mesh, type Node } from '../helpers/ike-pair.js';

const pairs = (m: Mesh) => {
  const out: [Node, Node][] = [];
  const ns = [...m.nodes.values()];
  for (let i = 0; i < ns.length; i++) for (let j = i + 1; j < ns.length; j++) out.push([ns[i]!, ns[j]!]);
  return out;
};

/** Exactly one IKE SA and one Child SA per pair, with matching SPIs crosswise, and kernels to match. */
async function converged(m: Mesh): Promise<string[]> {
  const problems: string[] = [];
  for (const [a, b] of pairs(m)) {
    const sa = a.manager.established(b.name);
    const sb = b.manager.established(a.name);
    if (sa.length !== 1 || sb.length !== 1) {
      problems.push(`${a.name}-${b.name}: ${sa.length}/${sb.length} IKE SAs`);
      continue;
    }
    if (!sa[0]!.spiI.equals(sb[0]!.spiI)) problems.push(`${a.name}-${b.name}: different IKE SAs`);
    const ca = [...sa[0]!.children.values()].filter((c) => c.state === 'installed');
    const cb = [...sb[0]!.children.values()].filter((c) => c.state === 'installed');
    if (ca.length !== 1 || cb.length !== 1 || ca[0]!.spiIn !== cb[0]!.spiOut || ca[0]!.spiOut !== cb[0]!.spiIn) {
      problems.push(`${a.name}-${b.name}: children ${ca.length}/${cb.length}`);
    }
  }
  for (const n of m.nodes.values()) {
    const expected = 2 * (m.nodes.size - 1);
    const have = (await n.kernel.listSas()).filter((s) => s.algorithms).length;
    if (have !== expected) problems.push(`${n.name}: ${have} kernel SAs, expected ${expected}`);
  }
  return problems;
}

function mesh(n: number, seed = 7, over = {}) {
  const m = new Mesh(seed);
  for (let i = 1; i <= n; i++) m.add(`n${i}`, `10.0.${Math.floor(i / 250)}.${i % 250}`);
  m.fullMesh(over);
  return m;
}

describe('liveness and recovery (in-process, fake clock)', () => {
  it('declares a silent peer dead within dpd delay + timeout and restarts with backoff', async () => {
    const m = mesh(2, 7, { dpdDelayMs: 10_000, dpdTimeoutMs: 5_000 });
    const [a, b] = [m.node('n1'), m.node('n2')];
    await a.manager.initiate('n2');
    await m.settle();
    const t0 = m.clock.now();
    b.up = false; // partition: b is silent
    let deadAt = 0;
    for (let t = 0; t < 30_000 && !deadAt; t += 250) {
      await m.advance(250);
      if (a.events.some((e) => e.type === 'liveness.dead')) deadAt = m.clock.now();
    }
    expect(deadAt).toBeGreaterThan(0);
    expect(deadAt - t0).toBeLessThanOrEqual(10_000 + 5_000 + 500);
    expect(await a.kernel.listSas()).toHaveLength(0); // torn down, re-initiation in progress
    // ...but never in clear text: the policies stay (as traps) while the peer is re-established.
    const policies = await a.kernel.listPolicies();
    expect(policies.filter((p) => p.dir === 'out' && p.templates.length > 0)).toHaveLength(1);
    b.up = true; // heal
    const healAt = m.clock.now();
    let upAt = 0;
    for (let t = 0; t < 70_000 && !upAt; t += 250) {
      await m.advance(250);
      if (a.manager.established('n2').length === 1) upAt = m.clock.now();
    }
    expect(upAt).toBeGreaterThan(0);
    // The retry ladder was in progress; with restart_backoff_max=60s it lands within that.
    expect(upAt - healAt).toBeLessThanOrEqual(60_000);
  });

  it('rides out a partition shorter than the DPD timeout without teardown', async () => {
    const m = mesh(2, 7, { dpdDelayMs: 10_000, dpdTimeoutMs: 6_000 });
    const [a, b] = [m.node('n1'), m.node('n2')];
    await a.manager.initiate('n2');
    await m.settle();
    const before = a.manager.established('n2')[0];
    await m.advance(9_000);
    b.up = false;
    await m.advance(3_000); // the probe is sent during the partition
    b.up = true;
    await m.advance(20_000);
    expect(a.manager.established('n2')[0]).toBe(before);
    expect(a.events.some((e) => e.type === 'liveness.dead')).toBe(false);
  });

  it('a restarted peer (SIGKILL) brings the relationship back itself, with INITIAL_CONTACT purging the stale SA', async () => {
    const m = mesh(2);
    const [a] = [m.node('n1')];
    await a.manager.initiate('n2');
    await m.settle();
    const stale = a.manager.established('n2')[0];
    m.crash('n2');
    await m.advance(3_000);
    const b = await m.boot('n2');
    const bootAt = m.clock.now();
    let upAt = 0;
    for (let t = 0; t < 5000 && !upAt; t += 50) {
      await m.advance(50, 50);
      if (b.manager.established('n1').length) upAt = m.clock.now();
    }
    expect(upAt - bootAt).toBeLessThan(1000);
    await m.advance(5000);
    expect(stale?.state).toBe('destroyed');
    expect(a.events.some((e) => e.type === 'initial_contact.purge')).toBe(true);
    expect(await converged(m)).toEqual([]);
    expect(b.manager.established('n1')).toHaveLength(1);
  });

  it('a hard-rebooted peer (kernel flushed) comes back the same way', async () => {
    const m = mesh(2);
    await m.node('n1').manager.initiate('n2');
    await m.settle();
    m.crash('n2', true);
    await m.advance(3_000);
    await m.boot('n2');
    await m.advance(5000);
    expect(await converged(m)).toEqual([]);
  });

  it('both daemons restarted at the same moment converge on one IKE SA', async () => {
    const m = mesh(2);
    await m.node('n1').manager.initiate('n2');
    await m.settle();
    m.crash('n1');
    m.crash('n2');
    await m.advance(1000);
    await Promise.all([m.boot('n1'), m.boot('n2')]);
    await m.advance(30_000);
    expect(await converged(m)).toEqual([]);
  });

  it('a peer stopped gracefully (Delete) makes the survivor act per dpd_action', async () => {
    for (const action of ['restart', 'trap', 'clear'] as const) {
      const m = mesh(2, 7, { dpdAction: action });
      const [a, b] = [m.node('n1'), m.node('n2')];
      await a.manager.initiate('n2');
      await m.settle();
      b.manager.peer('n1')!.policy = { ...b.manager.peer('n1')!.policy, dpdAction: 'clear' };
      await b.manager.terminate('n1');
      await m.settle();
      if (action === 'restart') {
        expect(a.manager.established('n2')).toHaveLength(1);
      } else if (action === 'trap') {
        expect(a.manager.established('n2')).toHaveLength(0);
        expect((await a.kernel.listPolicies()).length).toBeGreaterThan(0);
        expect(await a.kernel.listSas()).toHaveLength(0);
      } else {
        expect(a.manager.established('n2')).toHaveLength(0);
        expect(await a.kernel.listPolicies()).toHaveLength(0);
      }
    }
  });

  it('a peer unreachable for days: backoff stays capped, timers stay flat, it returns', async () => {
    const m = mesh(2, 7, { restartBackoffMaxMs: 120_000 });
    const [a, b] = [m.node('n1'), m.node('n2')];
    b.up = false;
    await a.manager.initiate('n2');
    const timers: number[] = [];
    const heap: number[] = [];
    for (let h = 0; h < 72; h++) {
      await m.clock.advance(3600_000, async () => {
        m.queue.length = 0;
      });
      timers.push(m.clock.timerCount);
      heap.push(a.events.length);
      a.events.length = 0; // events are consumed by subscribers in the daemon
    }
    expect(Math.max(...timers)).toBeLessThanOrEqual(4);
    const rt = a.manager.peer('n2')!;
    expect(rt.nextRetryAt - m.clock.now()).toBeLessThanOrEqual(120_000);
    b.up = true;
    await m.advance(130_000, 1000);
    expect(a.manager.established('n2')).toHaveLength(1);
  });

  it('full mesh of 20 nodes started at once converges with no duplicates, 5 runs', async () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const m = mesh(20, seed);
      for (const n of m.nodes.values()) await n.manager.start({ maxConcurrent: 8, jitterMs: 200 });
      await m.advance(20_000, 100);
      expect(await converged(m), `seed ${seed}`).toEqual([]);
    }
  }, 120_000);
});

describe('liveness counts ESP, not only IKE', () => {
  it('a peer whose ESP keeps arriving is not declared dead while its IKE answers are lost', async () => {
    const m = mesh(2, 7, { dpdDelayMs: 10_000, dpdTimeoutMs: 5_000 });
    const [a, b] = [m.node('n1'), m.node('n2')];
    await a.manager.initiate('n2');
    await m.settle();
    const sa = a.manager.established('n2')[0]!;
    const inbound = [...sa.children.values()][0]!;
    // From now on b's IKE never reaches a, but its ESP does (the kernel counts it).
    m.filter = (w) => w.from.addr !== b.addr;
    for (let t = 0; t < 60; t++) {
      a.kernel.simulateTraffic({ dst: a.addr, spi: inbound.spiIn, proto: 'esp' }, 1000, 10);
      await m.advance(1000);
    }
    expect(a.events.some((e) => e.type === 'liveness.dead')).toBe(false);
    expect(a.manager.established('n2')[0]).toBe(sa);
  });

  it('an authenticated message that arrives while a probe is out keeps the peer alive', async () => {
    const m = mesh(2, 7, { dpdDelayMs: 10_000, dpdTimeoutMs: 4_000 });
    const [a, b] = [m.node('n1'), m.node('n2')];
    await a.manager.initiate('n2');
    await m.settle();
    const sa = a.manager.established('n2')[0]!;
    const sb = b.manager.established('n1')[0]!;
    // Only a's liveness requests and their answers are lost; b's own liveness check gets through.
    m.filter = (w) =>
      !(w.data[18] === 37 && w.data.length < 120 && (w.from.addr === a.addr) !== (((w.data[19] ?? 0) & 0x20) !== 0));
    const probe = sa.probe();
    await m.advance(1000);
    const theirs = sb.probe(); // b -> a request: authenticated inbound for a during a's probe
    await m.advance(6000);
    await theirs;
    expect(await probe).toBe('dead'); // the probe itself got no answer...
    expect(a.events.some((e) => e.type === 'liveness.dead')).toBe(false); // ...but the peer is not dead
    expect(a.manager.established('n2')[0]).toBe(sa);
  });
});
