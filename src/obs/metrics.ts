/**
 * Prometheus metrics fed by bus events, on a private prom-client Registry
 * (never the global default). Per-SA byte/packet gauges are filled on each
 * scrape from a collector the daemon provides (it reads kernel counters).
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EventBus } from './events.js';

export interface SaCounters {
  peer: string;
  child: string;
  /** SPI as hex. */
  spi: string;
  direction: 'in' | 'out';
  bytes: number | bigint;
  packets: number | bigint;
}

export interface InitiationBudget {
  /** Initiations waiting for a slot. */
  queued: number;
  /** Initiations holding a slot. */
  inFlight: number;
  /** `startup.max_concurrent_initiations`. */
  maxConcurrent: number;
}

export interface MetricsOptions {
  bus: EventBus;
  /** Reads per-SA kernel counters; called once per scrape. Errors are reported and the SA gauges left empty. */
  collectSa?: () => SaCounters[] | Promise<SaCounters[]>;
  /** The paced-initiation budget (start-up, reload) at scrape time. */
  initiations?: () => InitiationBudget;
  onCollectError?: (err: unknown) => void;
}

export class CoatiMetrics {
  readonly registry = new Registry();
  readonly #unsub: (() => void)[] = [];
  readonly #opts: MetricsOptions;
  readonly #peerUp: Gauge<'peer'>;
  readonly #saBytes: Gauge<'peer' | 'child' | 'spi' | 'direction'>;
  readonly #saPackets: Gauge<'peer' | 'child' | 'spi' | 'direction'>;

  constructor(opts: MetricsOptions) {
    this.#opts = opts;
    const r = [this.registry];
    const up = new Gauge({ name: 'coati_peers_up', help: 'Peers with an established IKE SA', registers: r });
    this.#peerUp = new Gauge({
      name: 'coati_peer_up',
      help: '1 if the peer is up, 0 if down',
      labelNames: ['peer'],
      registers: r,
    });
    const handshakes = new Counter({
      name: 'coati_handshakes_total',
      help: 'Completed IKE handshakes',
      labelNames: ['version', 'role'],
      registers: r,
    });
    const failures = new Counter({
      name: 'coati_handshake_failures_total',
      help: 'Failed IKE handshakes by stable reason code',
      labelNames: ['version', 'reason'],
      registers: r,
    });
    const latency = new Histogram({
      name: 'coati_handshake_duration_seconds',
      help: 'Time from first request to established IKE SA',
      labelNames: ['version', 'role'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: r,
    });
    const liveness = new Counter({
      name: 'coati_liveness_checks_sent_total',
      help: 'Liveness (DPD) checks sent',
      registers: r,
    });
    const dead = new Counter({
      name: 'coati_dead_peers_total',
      help: 'Peers declared dead by liveness checks',
      registers: r,
    });
    const rekeys = new Counter({
      name: 'coati_rekeys_total',
      help: 'Rekeys by kind and phase',
      labelNames: ['kind', 'phase'],
      registers: r,
    });
    const rekeyFailures = new Counter({
      name: 'coati_rekey_failures_total',
      help: 'Rekeys we started that did not complete, by kind and code (the peer error notify, TIMEOUT, or why we refused its answer)',
      labelNames: ['kind', 'code'],
      registers: r,
    });
    const retransmits = new Counter({
      name: 'coati_retransmits_total',
      help: 'Retransmitted requests',
      labelNames: ['exchange'],
      registers: r,
    });
    const cookies = new Counter({ name: 'coati_cookies_sent_total', help: 'COOKIE notifies sent', registers: r });
    const kernelErrors = new Counter({
      name: 'coati_kernel_errors_total',
      help: 'Kernel IPsec operation failures',
      labelNames: ['op', 'code'],
      registers: r,
    });
    const dropped = new Counter({
      name: 'coati_packets_dropped_total',
      help: 'Dropped IKE packets',
      labelNames: ['reason'],
      registers: r,
    });
    const reloads = new Counter({
      name: 'coati_config_reloads_total',
      help: 'Successful configuration reloads',
      registers: r,
    });
    const labels = ['peer', 'child', 'spi', 'direction'] as const;
    this.#saBytes = new Gauge({
      name: 'coati_sa_bytes',
      help: 'Bytes through a Child SA (kernel counter)',
      labelNames: labels,
      registers: r,
    });
    this.#saPackets = new Gauge({
      name: 'coati_sa_packets',
      help: 'Packets through a Child SA (kernel counter)',
      labelNames: labels,
      registers: r,
    });

    const budget = opts.initiations;
    if (budget) {
      new Gauge({
        name: 'coati_paced_initiations_queued',
        help: 'Start-up and reload initiations waiting for a slot (startup.max_concurrent_initiations)',
        registers: r,
        collect() {
          this.set(budget().queued);
        },
      });
      new Gauge({
        name: 'coati_paced_initiations_in_flight',
        help: 'Start-up and reload initiations holding a slot',
        registers: r,
        collect() {
          this.set(budget().inFlight);
        },
      });
    }

    const upPeers = new Set<string>();
    const b = opts.bus;
    this.#unsub.push(
      b.on('peer.up', (e) => {
        upPeers.add(e.peer);
        this.#peerUp.set({ peer: e.peer }, 1);
        up.set(upPeers.size);
      }),
      b.on('peer.down', (e) => {
        upPeers.delete(e.peer);
        this.#peerUp.set({ peer: e.peer }, 0);
        up.set(upPeers.size);
      }),
      b.on('handshake.completed', (e) => {
        const l = { version: String(e.version), role: e.role };
        handshakes.inc(l);
        latency.observe(l, e.latencyMs / 1000);
      }),
      b.on('handshake.failed', (e) => failures.inc({ version: String(e.version), reason: e.reason })),
      b.on('liveness.sent', () => liveness.inc()),
      b.on('liveness.dead', () => dead.inc()),
      b.on('rekey.started', (e) => rekeys.inc({ kind: e.kind, phase: 'started' })),
      b.on('rekey.completed', (e) => rekeys.inc({ kind: e.kind, phase: 'completed' })),
      b.on('rekey.failed', (e) => {
        rekeys.inc({ kind: e.kind, phase: 'failed' });
        rekeyFailures.inc({ kind: e.kind, code: e.code });
      }),
      b.on('retransmit', (e) => retransmits.inc({ exchange: e.exchange })),
      b.on('cookie.sent', () => cookies.inc()),
      b.on('kernel.error', (e) => kernelErrors.inc({ op: e.op, code: e.code })),
      b.on('packet.dropped', (e) => dropped.inc({ reason: e.reason })),
      b.on('config.reloaded', (e) => {
        reloads.inc();
        for (const p of e.removed) {
          upPeers.delete(p);
          this.#peerUp.remove({ peer: p });
        }
        up.set(upPeers.size);
      }),
    );
  }

  /** Refresh the per-SA gauges from the collector. */
  async #collect(): Promise<void> {
    const fn = this.#opts.collectSa;
    if (fn === undefined) return;
    this.#saBytes.reset();
    this.#saPackets.reset();
    try {
      for (const sa of await fn()) {
        const l = { peer: sa.peer, child: sa.child, spi: sa.spi, direction: sa.direction };
        this.#saBytes.set(l, Number(sa.bytes));
        this.#saPackets.set(l, Number(sa.packets));
      }
    } catch (err) {
      this.#opts.onCollectError?.(err);
    }
  }

  /** Prometheus text exposition. */
  async exposition(): Promise<string> {
    await this.#collect();
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Metric values for other outputs (Graphite). */
  async snapshot(): Promise<Awaited<ReturnType<Registry['getMetricsAsJSON']>>> {
    await this.#collect();
    return this.registry.getMetricsAsJSON();
  }

  close(): void {
    for (const u of this.#unsub.splice(0)) u();
  }
}
