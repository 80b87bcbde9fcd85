import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import {
  CoatiMetrics,
  EventBus,
  Logger,
  type SaCounters,
  startGraphitePush,
  startMetricsServer,
} from '../../src/obs/index.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function emitSample(bus: EventBus): void {
  bus.emit({ type: 'peer.up', peer: 'web2', reason: 'established' });
  bus.emit({ type: 'peer.up', peer: 'web3', reason: 'established' });
  bus.emit({ type: 'peer.down', peer: 'web3', reason: 'dead' });
  bus.emit({ type: 'handshake.completed', peer: 'web2', version: 2, role: 'initiator', latencyMs: 30 });
  bus.emit({ type: 'handshake.completed', peer: 'web3', version: 2, role: 'initiator', latencyMs: 700 });
  bus.emit({ type: 'handshake.failed', peer: 'web4', version: 1, reason: 'AUTHENTICATION_FAILED' });
  bus.emit({ type: 'liveness.sent', peer: 'web3' });
  bus.emit({ type: 'liveness.dead', peer: 'web3', silentMs: 150_000 });
  bus.emit({ type: 'rekey.started', peer: 'web2', kind: 'child' });
  bus.emit({
    type: 'rekey.failed',
    peer: 'web2',
    kind: 'child',
    code: 'CHILD_SA_NOT_FOUND',
    reason: 'peer refused the Child SA',
  });
  bus.emit({ type: 'retransmit', peer: 'web4', exchange: 'IKE_SA_INIT', attempt: 1 });
  bus.emit({ type: 'cookie.sent', addr: '192.0.2.9' });
  bus.emit({ type: 'kernel.error', op: 'addSa', code: 'EEXIST' });
}

describe('Prometheus endpoint', () => {
  test('serves metrics derived from bus events and the SA collector', async () => {
    const bus = new EventBus();
    const sas: SaCounters[] = [
      { peer: 'web2', child: 'web2', spi: 'c0ffee01', direction: 'in', bytes: 12345n, packets: 67 },
    ];
    const budget = { queued: 40, inFlight: 16, maxConcurrent: 16 };
    const metrics = new CoatiMetrics({ bus, collectSa: () => sas, initiations: () => budget });
    cleanups.push(() => metrics.close());
    const server = await startMetricsServer({ metrics, port: 0 });
    cleanups.push(() => server.close());
    emitSample(bus);

    const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const body = await res.text();
    for (const line of [
      'coati_peers_up 1',
      'coati_peer_up{peer="web2"} 1',
      'coati_peer_up{peer="web3"} 0',
      'coati_handshakes_total{version="2",role="initiator"} 2',
      'coati_handshake_failures_total{version="1",reason="AUTHENTICATION_FAILED"} 1',
      'coati_handshake_duration_seconds_bucket{le="0.05",version="2",role="initiator"} 1',
      'coati_handshake_duration_seconds_bucket{le="1",version="2",role="initiator"} 2',
      'coati_handshake_duration_seconds_count{version="2",role="initiator"} 2',
      'coati_liveness_checks_sent_total 1',
      'coati_dead_peers_total 1',
      'coati_rekeys_total{kind="child",phase="started"} 1',
      'coati_rekeys_total{kind="child",phase="failed"} 1',
      'coati_rekey_failures_total{kind="child",code="CHILD_SA_NOT_FOUND"} 1',
      'coati_retransmits_total{exchange="IKE_SA_INIT"} 1',
      'coati_cookies_sent_total 1',
      'coati_kernel_errors_total{op="addSa",code="EEXIST"} 1',
      'coati_sa_bytes{peer="web2",child="web2",spi="c0ffee01",direction="in"} 12345',
      'coati_sa_packets{peer="web2",child="web2",spi="c0ffee01",direction="in"} 67',
      'coati_paced_initiations_queued 40',
      'coati_paced_initiations_in_flight 16',
    ]) {
      expect(body.split('\n')).toContain(line);
    }

    // SA gauges follow the collector: a deleted SA disappears on the next scrape.
    sas.length = 0;
    budget.queued = 0;
    const again = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
    expect(again).not.toContain('spi="c0ffee01"');
    // The budget gauges are read at scrape time.
    expect(again.split('\n')).toContain('coati_paced_initiations_queued 0');
    expect((await fetch(`http://127.0.0.1:${server.port}/other`)).status).toBe(404);
  });

  test('uses its own registry, not the global one', async () => {
    const a = new CoatiMetrics({ bus: new EventBus() });
    const b = new CoatiMetrics({ bus: new EventBus() }); // same metric names: would throw on a shared registry
    cleanups.push(
      () => a.close(),
      () => b.close(),
    );
    const { register } = await import('prom-client');
    expect(register.getSingleMetric('coati_peers_up')).toBeUndefined();
  });

  test('a failing SA collector is reported and the scrape still succeeds', async () => {
    const errors: unknown[] = [];
    const metrics = new CoatiMetrics({
      bus: new EventBus(),
      collectSa: () => {
        throw new Error('netlink gone');
      },
      onCollectError: (e) => errors.push(e),
    });
    cleanups.push(() => metrics.close());
    expect(await metrics.exposition()).toContain('coati_peers_up 0');
    expect(errors).toHaveLength(1);
  });
});

describe('Graphite push', () => {
  async function tcpServer(): Promise<{ port: number; received: Promise<string>; server: Server }> {
    let resolve!: (s: string) => void;
    const received = new Promise<string>((r) => {
      resolve = r;
    });
    const server = createServer((sock) => {
      let data = '';
      sock.on('data', (d) => {
        data += d.toString();
      });
      sock.on('end', () => resolve(data));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const addr = server.address();
    return { port: typeof addr === 'object' && addr !== null ? addr.port : 0, received, server };
  }

  test('sends prefix.metric value timestamp lines from the registry', async () => {
    const bus = new EventBus();
    const metrics = new CoatiMetrics({ bus });
    cleanups.push(() => metrics.close());
    const srv = await tcpServer();
    cleanups.push(() => new Promise((r) => srv.server.close(r)));
    emitSample(bus);
    const pusher = startGraphitePush({
      metrics,
      host: '127.0.0.1',
      port: srv.port,
      prefix: 'coati.web1',
      intervalMs: 60_000,
      now: () => 1700000000,
    });
    cleanups.push(() => pusher.stop());
    expect(await pusher.pushOnce()).toBe(true);
    const lines = (await srv.received).trim().split('\n');
    expect(lines).toContain('coati.web1.coati_peers_up 1 1700000000');
    expect(lines).toContain('coati.web1.coati_handshakes_total.initiator.2 2 1700000000');
    expect(lines).toContain('coati.web1.coati_kernel_errors_total.EEXIST.addSa 1 1700000000');
    expect(lines).toContain('coati.web1.coati_handshake_duration_seconds_count.initiator.2 2 1700000000');
    expect(lines.some((l) => l.includes('_bucket'))).toBe(false);
    for (const l of lines) expect(l).toMatch(/^[A-Za-z0-9_.-]+ -?[\d.e+-]+ 1700000000$/);
  });

  test('an unreachable target is logged, not thrown', async () => {
    const metrics = new CoatiMetrics({ bus: new EventBus() });
    cleanups.push(() => metrics.close());
    const srv = await tcpServer();
    const port = srv.port;
    await new Promise((r) => srv.server.close(r)); // nothing listens there now
    const lines: string[] = [];
    const log = new Logger({ format: 'journal', level: 'info', sink: (l) => lines.push(l) });
    const pusher = startGraphitePush({ metrics, host: '127.0.0.1', port, prefix: 'coati', intervalMs: 60_000, log });
    cleanups.push(() => pusher.stop());
    expect(await pusher.pushOnce()).toBe(false);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^<4>coati: graphite push failed target=127\.0\.0\.1:\d+ err="?ECONNREFUSED/);
  });
});
