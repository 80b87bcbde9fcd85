/**
 * Postmortem scenarios with real coatid processes: network partitions between
 * two daemons of a three-node mesh (nftables drops in node2's namespace for
 * node1's address only; node3 keeps talking to both).
 *
 *  3. a partition longer than DPD delay + timeout: both ends declare the peer
 *     dead in time, keep re-initiating with a capped backoff, and are back soon
 *     after the heal;
 *  4. a partition shorter than the DPD timeout, with a liveness check in flight
 *     across it: no teardown, the same IKE SA before and after;
 *  7. a peer unreachable for 60 s: the survivor's memory, CPU and initiation rate
 *     stay flat, no half-open SAs pile up, and it reconnects on heal.
 *
 * DPD 2 s / 3 s, dpd_action = restart, restart backoff capped at 2 s,
 * IKE retransmits from 500 ms (x1.8, 3 tries). Memory kernel backend: "traffic
 * flows" = both ends have installed a Child SA pair with crosswise SPIs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Fault, partition } from '../harness/faults.js';
import { Lab, sleep } from '../harness/netns.js';
import { ctl, type DaemonNode } from '../helpers/daemon.js';
import { MeshProcs, report } from '../helpers/mesh-procs.js';

const DPD_DELAY = 2000;
const DPD_TIMEOUT = 3000;
const BACKOFF_MAX = 2000;
/** Longest single IKE retransmission wait: 500 ms * 1.8^3. */
const RETRANSMIT_MAX = 1458;

let lab: Lab;
let m: MeshProcs;
let n1: DaemonNode;
let n2: DaemonNode;
let n3: DaemonNode;
let fault: Fault | undefined;

beforeAll(async () => {
  lab = await Lab.create({ label: 'scen-partition' });
  m = await MeshProcs.create(lab, {
    n: 3,
    prefix: '10.82.0',
    peerExtra: () =>
      `dpd_delay = "${DPD_DELAY}ms"\ndpd_timeout = "${DPD_TIMEOUT}ms"\ndpd_action = "restart"\n` +
      `restart_backoff_max = "${BACKOFF_MAX}ms"\nretransmit_base = "500ms"\nretransmit_tries = 3\n`,
  });
  [n1, n2, n3] = m.nodes as [DaemonNode, DaemonNode, DaemonNode];
  m.startAll();
  await m.waitSettled();
});

afterAll(async () => {
  await fault?.heal().catch(() => {});
  await lab?.destroy();
});

const cut = async () => {
  fault = await partition(n2.ns, { peer: n1.addr });
  return Date.now();
};
const heal = async () => {
  await fault?.heal();
  fault = undefined;
  return Date.now();
};
const deadLine = (n: DaemonNode, peer: DaemonNode, after: number) =>
  m.firstLine(n, (l) => l.event === 'liveness.dead' && l.peer === peer.name, after);

describe('partition longer than the DPD timeout, then healed', () => {
  it('declares the peer dead within delay + timeout and is back within ~1 s + backoff of the heal', async () => {
    const before = await m.waitPair(n1, n2);
    const other = await m.waitPair(n1, n3);
    const cutAt = await cut();
    await sleep(DPD_DELAY + DPD_TIMEOUT + 3000);
    const dead1 = deadLine(n1, n2, cutAt);
    const dead2 = deadLine(n2, n1, cutAt);
    expect(dead1, m.logs()).toBeDefined();
    expect(dead2, m.logs()).toBeDefined();
    const detect1 = (dead1?.at ?? 0) - cutAt;
    const detect2 = (dead2?.at ?? 0) - cutAt;
    // Silence starts at most at the cut; the DPD timer carries jitter, hence the slack.
    expect(detect1).toBeLessThanOrEqual(DPD_DELAY + DPD_TIMEOUT + 1000);
    expect(detect2).toBeLessThanOrEqual(DPD_DELAY + DPD_TIMEOUT + 1000);
    const st = await m.status(n1);
    expect(st?.peers.find((p) => p.name === n2.name)?.state).not.toBe('up');
    const healAt = await heal();
    const flowAt = await m.waitFlow(n1, n2, healAt);
    const settledAt = await m.waitSettled();
    const after = await m.waitPair(n1, n2);
    expect(after.ikeSpiI).not.toBe(before.ikeSpiI);
    // The pair that was not partitioned kept its SA throughout.
    expect((await m.waitPair(n1, n3)).ikeSpiI).toBe(other.ikeSpiI);
    report('3 partition 8 s > DPD 2 s + 3 s, healed', {
      dead_detected_n1_ms: detect1,
      dead_detected_n2_ms: detect2,
      flow_after_heal_ms: flowAt - healAt,
      one_ike_sa_after_heal_ms: settledAt - healAt,
      bound_ms: 1000 + BACKOFF_MAX + RETRANSMIT_MAX,
    });
    expect(flowAt - healAt).toBeLessThan(1000 + BACKOFF_MAX + RETRANSMIT_MAX);
  }, 60_000);
});

describe('partition shorter than the DPD timeout', () => {
  it('keeps the same IKE SA, with a liveness check answered across the partition', async () => {
    const before = await m.waitPair(n1, n2);
    const cutAt = await cut();
    // A liveness check in flight across the partition: its retransmission after the heal is answered.
    const probe = ctl(n1, 'dpd', n2.name, '--json', '--timeout', '10');
    await sleep(1800);
    const healAt = await heal();
    const r = await probe;
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const res = JSON.parse(r.stdout) as { peers: { liveness?: string; rttMs?: number }[] };
    expect(res.peers[0]?.liveness).toBe('alive');
    await sleep(DPD_DELAY + DPD_TIMEOUT);
    expect(deadLine(n1, n2, cutAt)).toBeUndefined();
    expect(deadLine(n2, n1, cutAt)).toBeUndefined();
    const after = await m.waitPair(n1, n2);
    expect(after).toMatchObject({
      ikeSpiI: before.ikeSpiI,
      ikeSpiR: before.ikeSpiR,
      childIn: before.childIn,
      childOut: before.childOut,
    });
    expect(m.duplicates(m.nodes, { pending: true })).toEqual([]);
    report('4 partition 1.8 s < DPD timeout 3 s', {
      probe_rtt_ms: res.peers[0]?.rttMs ?? -1,
      partition_ms: healAt - cutAt,
      same_ike_sa: 'yes',
    });
  }, 30_000);
});

describe('peer unreachable for 60 s', () => {
  it('survivor stays flat (memory, CPU, initiation rate, half-open SAs) and reconnects on heal', async () => {
    await m.waitSettled();
    const cutAt = await cut();
    const samples: { t: number; rssKb: number; cpuTicks: number; attempts: number; pending: number }[] = [];
    const attemptsSince = (t: number) =>
      m
        .logLines(n1)
        .filter((l) => l.peer === n2.name && l.msg === 'IKE SA created -> connecting' && Date.parse(l.ts) >= t).length;
    while (Date.now() - cutAt < 60_000) {
      await sleep(5000);
      const p = m.procStats(n1);
      samples.push({
        t: Date.now() - cutAt,
        ...p,
        attempts: attemptsSince(cutAt),
        pending: m.ikeSas(n1).get(n2.name)?.pending.size ?? 0,
      });
    }
    const healAt = await heal();
    const flowAt = await m.waitFlow(n1, n2, healAt);
    await m.waitSettled();
    const at = (ms: number) => samples.find((s) => s.t >= ms) ?? samples[0]!;
    const last = samples[samples.length - 1]!;
    const first = at(10_000);
    const mid = at(35_000);
    const rssGrowthKb = last.rssKb - first.rssKb;
    const attemptsFirstHalf = mid.attempts - first.attempts;
    const attemptsSecondHalf = last.attempts - mid.attempts;
    const cpuMsPerS = ((last.cpuTicks - first.cpuTicks) * 10) / ((last.t - first.t) / 1000);
    report('7 peer unreachable 60 s (survivor node1)', {
      rss_kb_10s: first.rssKb,
      rss_kb_60s: last.rssKb,
      rss_growth_kb: rssGrowthKb,
      cpu_ms_per_s: cpuMsPerS,
      initiations_10_35s: attemptsFirstHalf,
      initiations_35_60s: attemptsSecondHalf,
      max_half_open: Math.max(...samples.map((s) => s.pending)),
      flow_after_heal_ms: flowAt - healAt,
    });
    expect(rssGrowthKb).toBeLessThan(8 * 1024);
    expect(cpuMsPerS).toBeLessThan(50);
    // Backoff capped at 2 s: a steady rate, neither growing nor stopping.
    expect(attemptsSecondHalf).toBeGreaterThan(0);
    expect(attemptsSecondHalf).toBeLessThanOrEqual(attemptsFirstHalf + 2);
    expect(Math.max(...samples.map((s) => s.pending))).toBeLessThanOrEqual(1);
    expect(flowAt - healAt).toBeLessThan(1000 + BACKOFF_MAX + RETRANSMIT_MAX);
  }, 120_000);
});
