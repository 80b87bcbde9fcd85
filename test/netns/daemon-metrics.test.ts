/**
 * Prometheus metrics of a running daemon: `[metrics] prometheus_listen` on
 * node1, /metrics fetched from inside its namespace.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, waitFor } from '../harness/netns.js';
import { ctl, DaemonMesh, type DaemonNode } from '../helpers/daemon.js';

const PORT = 9477;
let lab: Lab;
let mesh: DaemonMesh;
let n1: DaemonNode;

/** GET /metrics with node's fetch, run inside the node's namespace. */
async function scrape(n: DaemonNode): Promise<string> {
  const script = `fetch('http://127.0.0.1:${PORT}/metrics').then(async (r) => { if (!r.ok) throw new Error('HTTP ' + r.status); process.stdout.write(await r.text()); })`;
  return (await n.ns.exec([process.execPath, '-e', script], { timeoutMs: 10_000 })).stdout;
}

/** Samples of one metric: labels text -> value. */
function samples(text: string, name: string): { labels: Record<string, string>; value: number }[] {
  const out: { labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split('\n')) {
    const m = line.match(/^([a-z_:]+)(?:\{(.*)\})? (\S+)$/);
    if (!m || m[1] !== name) continue;
    const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    out.push({ labels: labels as Record<string, string>, value: Number(m[3]) });
  }
  return out;
}

beforeAll(async () => {
  lab = await Lab.create({ label: 'daemon-metrics' });
  mesh = await DaemonMesh.create(lab, {
    n: 3,
    extraMain: (n) => (n.name === 'node1' ? `[metrics]\nprometheus_listen = "127.0.0.1:${PORT}"\n` : ''),
  });
  n1 = mesh.node('node1');
  mesh.startAll();
  await mesh.waitMesh();
});

afterAll(async () => {
  await lab?.destroy();
});

describe('/metrics', () => {
  it('peers up, handshake counters, the handshake latency histogram', async () => {
    const text = await scrape(n1);
    expect(samples(text, 'coati_peers_up')).toEqual([{ labels: {}, value: 2 }]);
    const perPeer = samples(text, 'coati_peer_up');
    expect(perPeer.map((s) => [s.labels.peer, s.value]).sort()).toEqual([
      ['node2', 1],
      ['node3', 1],
    ]);
    const hs = samples(text, 'coati_handshakes_total');
    expect(hs.reduce((a, s) => a + s.value, 0)).toBeGreaterThanOrEqual(2);
    for (const s of hs) expect(s.labels.version).toBe('2');
    const count = samples(text, 'coati_handshake_duration_seconds_count');
    expect(count.reduce((a, s) => a + s.value, 0)).toBeGreaterThanOrEqual(2);
    const buckets = samples(text, 'coati_handshake_duration_seconds_bucket');
    const inf = buckets.filter((b) => b.labels.le === '+Inf');
    expect(inf.reduce((a, s) => a + s.value, 0)).toBe(count.reduce((a, s) => a + s.value, 0));
    expect(new Set(buckets.map((b) => b.labels.le)).size).toBeGreaterThan(5);
    expect(samples(text, 'coati_handshake_duration_seconds_sum')[0]?.value).toBeGreaterThan(0);
    expect(text).toMatch(/^# TYPE coati_handshake_duration_seconds histogram$/m);
  });

  it('counters follow operations: a child rekey and a liveness check are counted', async () => {
    const before = await scrape(n1);
    const sum = (t: string, name: string, pred: (l: Record<string, string>) => boolean = () => true) =>
      samples(t, name)
        .filter((s) => pred(s.labels))
        .reduce((a, s) => a + s.value, 0);
    expect((await ctl(n1, 'rekey', 'node2', '--child')).code).toBe(0);
    expect((await ctl(n1, 'dpd', 'node3')).code).toBe(0);
    await new Promise((r) => setTimeout(r, 500));
    const after = await scrape(n1);
    expect(sum(after, 'coati_rekeys_total')).toBeGreaterThan(sum(before, 'coati_rekeys_total'));
    expect(sum(after, 'coati_liveness_checks_sent_total')).toBe(sum(before, 'coati_liveness_checks_sent_total') + 1);
  });

  it('per-SA byte and packet gauges, one per installed Child SA and direction', async () => {
    // Right after the child rekey above the old Child SA is still installed until its Delete
    // completes, and is counted too; wait until the gauges and `status` describe the same SAs.
    const { text, spis } = await waitFor(
      'SA gauges matching the Child SAs in status',
      async () => {
        const text = await scrape(n1);
        const st = await mesh.status(n1);
        const spis = new Set(st?.peers.flatMap((p) => p.children.flatMap((c) => [c.spiIn, c.spiOut])));
        const gauged = new Set(samples(text, 'coati_sa_bytes').map((s) => s.labels.spi));
        return spis.size === 4 && gauged.size === 4 && [...gauged].every((x) => spis.has(x as string))
          ? { text, spis }
          : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 200 },
    );
    for (const name of ['coati_sa_bytes', 'coati_sa_packets']) {
      expect(text).toMatch(new RegExp(`^# TYPE ${name} gauge$`, 'm'));
      const s = samples(text, name);
      expect(s).toHaveLength(4);
      for (const x of s) {
        expect(spis.has(x.labels.spi as string)).toBe(true);
        expect(['in', 'out']).toContain(x.labels.direction);
        expect(['node2', 'node3']).toContain(x.labels.peer);
        // The memory kernel backend carries no ESP traffic: its counters stay 0.
        expect(x.value).toBe(0);
      }
      const dirs = s.map((x) => `${x.labels.peer}/${x.labels.direction}`).sort();
      expect(dirs).toEqual(['node2/in', 'node2/out', 'node3/in', 'node3/out']);
    }
  });
});
