/**
 * Opt-in Graphite plaintext push: every interval, one TCP connection that
 * sends `prefix.metric[.label...] value timestamp` lines from the same
 * registry as /metrics. Failures are logged, never thrown.
 */
import { connect, type Socket } from 'node:net';
import type { Logger } from './log.js';
import type { CoatiMetrics } from './metrics.js';

export interface GraphiteOptions {
  metrics: CoatiMetrics;
  host: string;
  port: number;
  prefix: string;
  intervalMs: number;
  log?: Logger;
  /** Seconds since the epoch; injectable for tests. */
  now?: () => number;
  /** Connect/write timeout (default 5 s). */
  timeoutMs?: number;
}

export interface GraphitePusher {
  /** One push now; resolves true on success, false on failure (already logged). */
  pushOnce(): Promise<boolean>;
  stop(): void;
}

const clean = (s: string) => s.replace(/[^A-Za-z0-9_-]/g, '_');

/** Graphite lines for a registry snapshot; histogram buckets are left out (sum and count are kept). */
export function graphiteLines(
  snapshot: Awaited<ReturnType<CoatiMetrics['snapshot']>>,
  prefix: string,
  ts: number,
): string[] {
  const lines: string[] = [];
  for (const m of snapshot) {
    for (const v of m.values) {
      const name = (v as { metricName?: string }).metricName ?? m.name;
      if (name.endsWith('_bucket')) continue;
      const labels = Object.entries(v.labels)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([, val]) => clean(String(val)));
      if (!Number.isFinite(v.value)) continue;
      lines.push(`${[prefix, name, ...labels].filter((p) => p !== '').join('.')} ${v.value} ${ts}`);
    }
  }
  return lines;
}

export function startGraphitePush(opts: GraphiteOptions): GraphitePusher {
  const now = opts.now ?? (() => Math.floor(Date.now() / 1000));
  let busy = false;
  let stopped = false;

  const send = (payload: string) =>
    new Promise<void>((resolve, reject) => {
      const sock: Socket = connect({ host: opts.host, port: opts.port });
      sock.setTimeout(opts.timeoutMs ?? 5000, () => sock.destroy(new Error('timed out')));
      sock.once('error', reject);
      sock.once('close', (hadError) => {
        if (!hadError) resolve();
      });
      sock.once('connect', () => sock.end(payload));
    });

  const pushOnce = async (): Promise<boolean> => {
    if (busy) return false;
    busy = true;
    try {
      const lines = graphiteLines(await opts.metrics.snapshot(), opts.prefix, now());
      await send(lines.length === 0 ? '' : `${lines.join('\n')}\n`);
      return true;
    } catch (err) {
      opts.log?.warn('graphite push failed', { target: `${opts.host}:${opts.port}`, err });
      return false;
    } finally {
      busy = false;
    }
  };

  const timer = setInterval(() => {
    if (!stopped) void pushOnce();
  }, opts.intervalMs);
  timer.unref();
  return {
    pushOnce,
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
