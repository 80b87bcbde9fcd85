/**
 * Test traffic: a continuous, sequence-numbered UDP stream between two namespaces
 * (a tiny Node script at each end) and ping helpers.
 *
 * The receiver appends one line `seq sentMs recvMs` per datagram to its log; the sender
 * prints `{"sent":N}` when stopped. Both run on the same host clock, so one-way delay and
 * the longest gap between arrivals (the outage) are measured directly.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileTail, HarnessError, type Netns, type Proc, randomId, waitFor } from './netns.js';

const RECEIVER = `
import dgram from 'node:dgram';
import { openSync, writeSync } from 'node:fs';
const [bind, port, out] = process.argv.slice(2);
const fd = openSync(out, 'a');
const sock = dgram.createSocket(bind.includes(':') ? 'udp6' : 'udp4');
sock.on('message', (msg) => {
  if (msg.length < 12) return;
  const seq = msg.readUInt32BE(0);
  const sent = msg.readDoubleBE(4);
  writeSync(fd, seq + ' ' + sent.toFixed(3) + ' ' + (performance.timeOrigin + performance.now()).toFixed(3) + '\\n');
});
sock.bind(Number(port), bind, () => console.log('ready'));
process.on('SIGTERM', () => process.exit(0));
`;

const SENDER = `
import dgram from 'node:dgram';
const [dst, port, interval, size, src] = process.argv.slice(2);
const sock = dgram.createSocket(dst.includes(':') ? 'udp6' : 'udp4');
let seq = 0, errors = 0;
const buf = Buffer.alloc(Math.max(12, Number(size)));
const tick = () => {
  buf.writeUInt32BE(seq >>> 0, 0);
  buf.writeDoubleBE(performance.timeOrigin + performance.now(), 4);
  seq++;
  sock.send(buf, Number(port), dst, (err) => { if (err) errors++; });
};
const start = () => { console.log('started'); tick(); setInterval(tick, Number(interval)); };
if (src) sock.bind(0, src, start); else start();
process.on('SIGTERM', () => { console.log(JSON.stringify({ sent: seq, errors })); process.exit(0); });
`;

export interface StreamStats {
  sent: number;
  received: number;
  /** Distinct sequence numbers sent but never received. */
  lost: number;
  duplicates: number;
  reordered: number;
  intervalMs: number;
  /** Longest time between two consecutive arrivals (ms); with no loss it is about intervalMs. */
  longestGapMs: number;
  /** Sequence numbers on both sides of the longest gap. */
  gapAfterSeq: number;
  gapBeforeSeq: number;
  /** Arrival time (epoch ms) of the datagram before the longest gap. */
  gapStartMs: number;
  maxDelayMs: number;
}

export interface UdpStreamOptions {
  from: Netns;
  to: Netns;
  /** Destination address (receiver binds it). */
  dst: string;
  /** Source address for the sender (optional). */
  src?: string;
  port?: number;
  intervalMs?: number;
  size?: number;
}

/** Analyses receiver lines `seq sentMs recvMs`. */
export function analyseStream(lines: string, sent: number, intervalMs: number): StreamStats {
  const rows = lines
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ').map(Number) as [number, number, number]);
  const seen = new Set<number>();
  let duplicates = 0;
  let reordered = 0;
  let maxSeq = -1;
  let maxDelayMs = 0;
  let longestGapMs = 0;
  let gapAfterSeq = -1;
  let gapBeforeSeq = -1;
  let gapStartMs = 0;
  for (let i = 0; i < rows.length; i++) {
    const [seq, sentMs, recvMs] = rows[i]!;
    if (seen.has(seq)) duplicates++;
    seen.add(seq);
    if (seq < maxSeq) reordered++;
    maxSeq = Math.max(maxSeq, seq);
    maxDelayMs = Math.max(maxDelayMs, recvMs - sentMs);
    const prev = rows[i - 1];
    if (prev && recvMs - prev[2] > longestGapMs) {
      longestGapMs = recvMs - prev[2];
      gapAfterSeq = prev[0];
      gapBeforeSeq = seq;
      gapStartMs = prev[2];
    }
  }
  const total = Math.max(sent, maxSeq + 1);
  return {
    sent: total,
    received: rows.length,
    lost: total - seen.size,
    duplicates,
    reordered,
    intervalMs,
    longestGapMs: Math.round(longestGapMs),
    gapAfterSeq,
    gapBeforeSeq,
    gapStartMs,
    maxDelayMs: Math.round(maxDelayMs),
  };
}

export class UdpStream {
  private constructor(
    readonly opts: UdpStreamOptions,
    readonly sender: Proc,
    readonly receiver: Proc,
    readonly dataFile: string,
  ) {}

  static async start(opts: UdpStreamOptions): Promise<UdpStream> {
    const lab = opts.from.lab;
    const dir = lab.subdir(`udp-${randomId(2)}`);
    const rx = join(dir, 'receiver.mjs');
    const tx = join(dir, 'sender.mjs');
    writeFileSync(rx, RECEIVER);
    writeFileSync(tx, SENDER);
    const dataFile = join(dir, 'arrivals.txt');
    writeFileSync(dataFile, '');
    const port = opts.port ?? 40000 + Math.floor(Math.random() * 20000);
    const receiver = opts.to.spawn([process.execPath, rx, opts.dst, String(port), dataFile], {
      logFile: join(dir, 'receiver.log'),
    });
    await waitFor('UDP receiver ready', () => readFileSync(receiver.logFile, 'utf8').includes('ready'), {
      timeoutMs: 10_000,
      context: () => receiver.logTail(),
    });
    const sender = opts.from.spawn(
      [
        process.execPath,
        tx,
        opts.dst,
        String(port),
        String(opts.intervalMs ?? 20),
        String(opts.size ?? 64),
        opts.src ?? '',
      ],
      { logFile: join(dir, 'sender.log') },
    );
    await waitFor('UDP sender started', () => readFileSync(sender.logFile, 'utf8').includes('started'), {
      timeoutMs: 10_000,
      context: () => sender.logTail(),
    });
    return new UdpStream(opts, sender, receiver, dataFile);
  }

  /** Number of datagrams received so far. */
  receivedCount(): number {
    const t = readFileSync(this.dataFile, 'utf8');
    let n = 0;
    for (let i = t.indexOf('\n'); i >= 0; i = t.indexOf('\n', i + 1)) n++;
    return n;
  }

  /** Waits until `n` more datagrams have arrived (proves the path works now). */
  async waitFlowing(n = 5, timeoutMs = 10_000): Promise<void> {
    const base = this.receivedCount();
    await waitFor(`UDP stream ${this.opts.dst}: ${n} more datagrams`, () => this.receivedCount() >= base + n, {
      timeoutMs,
      context: () => `${this.sender.logTail(10)}\n${this.receiver.logTail(10)}`,
    });
  }

  /** Stats so far (sender still running: `sent` is estimated from the highest sequence). */
  stats(): StreamStats {
    return analyseStream(readFileSync(this.dataFile, 'utf8'), 0, this.opts.intervalMs ?? 20);
  }

  /** Stops both ends and returns the final statistics. */
  async stop(): Promise<StreamStats> {
    this.sender.kill('SIGTERM');
    await this.sender.wait(5000);
    // Let datagrams in flight arrive.
    await new Promise((r) => setTimeout(r, 100));
    this.receiver.kill('SIGTERM');
    await this.receiver.wait(5000);
    const m = /\{"sent":(\d+)/.exec(readFileSync(this.sender.logFile, 'utf8'));
    if (!m) throw new HarnessError(`UDP sender did not report its count\n${this.sender.logTail()}`);
    return analyseStream(readFileSync(this.dataFile, 'utf8'), Number(m[1]), this.opts.intervalMs ?? 20);
  }

  describe(s: StreamStats): string {
    return (
      `UDP stream every ${s.intervalMs} ms: sent ${s.sent}, received ${s.received}, lost ${s.lost}, ` +
      `duplicates ${s.duplicates}, longest gap ${s.longestGapMs} ms (after seq ${s.gapAfterSeq}, ` +
      `next seq ${s.gapBeforeSeq}), max one-way delay ${s.maxDelayMs} ms`
    );
  }

  logTail(): string {
    return `${this.sender.logTail(10)}\n${this.receiver.logTail(10)}\n--- arrivals ---\n${fileTail(this.dataFile, 5)}`;
  }
}

export interface PingResult {
  transmitted: number;
  received: number;
  lossPercent: number;
  avgRttMs: number | undefined;
  output: string;
}

/** Runs `ping` inside `ns`; never throws on packet loss. */
export async function ping(
  ns: Netns,
  dst: string,
  opts: {
    count?: number;
    intervalS?: number;
    /** Seconds to wait for the last reply (ping -W). */
    deadlineS?: number;
    src?: string;
    size?: number;
  } = {},
): Promise<PingResult> {
  const count = opts.count ?? 3;
  // -W (wait for the last reply), not -w: with -w, ping keeps sending until `count` replies.
  const args = ['ping', '-n', '-c', String(count), '-i', String(opts.intervalS ?? 0.2)];
  args.push('-W', String(opts.deadlineS ?? 2));
  if (opts.src) args.push('-I', opts.src);
  if (opts.size !== undefined) args.push('-s', String(opts.size));
  if (dst.includes(':')) args.push('-6');
  args.push(dst);
  const r = await ns.exec(args, {
    allowFail: true,
    timeoutMs: (count * (opts.intervalS ?? 0.2) + (opts.deadlineS ?? 2) + 10) * 1000,
  });
  const out = r.stdout + r.stderr;
  const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
  const rtt = /= [\d.]+\/([\d.]+)\//.exec(out);
  const transmitted = Number(m?.[1] ?? 0);
  const received = Number(m?.[2] ?? 0);
  return {
    transmitted,
    received,
    lossPercent: transmitted ? Math.round((100 * (transmitted - received)) / transmitted) : 100,
    avgRttMs: rtt ? Number(rtt[1]) : undefined,
    output: out,
  };
}

/** Pings until replies come back; throws with the ping output and `context()` on timeout. */
export async function waitPing(
  ns: Netns,
  dst: string,
  opts: { timeoutMs?: number; src?: string; context?: () => string } = {},
): Promise<number> {
  const t0 = Date.now();
  let last: PingResult | undefined;
  await waitFor(
    `ping ${dst} from ${ns.label} to succeed`,
    async () => {
      last = await ping(ns, dst, { count: 1, deadlineS: 1, ...(opts.src ? { src: opts.src } : {}) });
      return last.received > 0;
    },
    {
      timeoutMs: opts.timeoutMs ?? 10_000,
      intervalMs: 0,
      context: () => `${last?.output ?? ''}\n${opts.context?.() ?? ''}`,
    },
  );
  return Date.now() - t0;
}

/** Asserts that pings fail (e.g. before the tunnel is up, or during a partition). */
export async function expectNoPing(ns: Netns, dst: string, opts: { count?: number; src?: string } = {}) {
  const r = await ping(ns, dst, { count: opts.count ?? 2, deadlineS: 2, ...(opts.src ? { src: opts.src } : {}) });
  if (r.received > 0) throw new HarnessError(`expected ping ${dst} from ${ns.label} to fail, but:\n${r.output}`);
}
