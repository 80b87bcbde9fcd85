/**
 * Mass teardown: what deleting N IKE SAs (with their Child SAs and policies) at once
 * costs per pair, for several N. A partition or a dead-peer wave takes down many
 * relationships together, so the cost per pair must not grow with N.
 *
 *   node dist/bench/teardown.js [--n 500,2000] [--runs 2]
 *
 * Each N runs in a fresh process: two `Ikev2Manager`s in one process with memory kernels
 * and coatid's V8 flags, datagrams handed over with `setImmediate`, PSK + X25519 +
 * AES-GCM and a tunnel-mode Child SA per pair (the handshake bench's configuration). N pairs are
 * established in batches of 50, then the initiator terminates every one of them at once;
 * the figure is both sides' CPU from the terminations until neither side holds an SA,
 * divided by N. The reference is the same figure at the smallest N, in the same run:
 * the ratio largest/smallest N says how the cost per pair grows (1.0 = flat).
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { defaultRandom } from '../src/crypto/random.js';
import { Ikev2Manager } from '../src/ikev2/manager.js';
import { MemoryKernel } from '../src/kernel/memory/memory-kernel.js';
import { parseIdentity } from '../src/sa/identity.js';
import { parseTrafficSelector } from '../src/sa/traffic-selector.js';
import { systemClock } from '../src/util/clock.js';
import { applyDaemonV8Flags } from '../src/util/v8-flags.js';
import { ESP_GCM, IKE_GCM_X25519, peerPolicy } from '../test/helpers/ike-pair.js';
import { initiatorId, responderId, tsHost } from './handshake-common.js';

interface Result {
  n: number;
  establishUsPerPair: number;
  teardownUsPerPair: number;
  teardownWallMs: number;
}

const A = '198.51.100.1';
const B = '198.51.100.2';
const BATCH = 50;

async function runOne(n: number): Promise<Result> {
  applyDaemonV8Flags();
  const mgrs: Record<'i' | 'r', Ikev2Manager> = {} as never;
  let up = 0;
  let waiter: { n: number; done: () => void } | undefined;
  const failures: string[] = [];
  const make = (role: 'i' | 'r', addr: string, other: 'i' | 'r'): Ikev2Manager => {
    const kernel = new MemoryKernel({ now: () => Date.now() });
    const ini = role === 'i';
    const m = new Ikev2Manager(
      {
        clock: systemClock,
        random: defaultRandom,
        rand01: Math.random,
        kernel,
        send: (d) => {
          const p = Buffer.from(d.data);
          setImmediate(() =>
            mgrs[other].receive(p, { addr, port: d.local.port }, { addr: d.remote.addr, port: d.remote.port }),
          );
        },
        emit: (ev) => {
          if (ini && ev.type === 'child.state' && ev.from === 'creating' && ev.to === 'installed') {
            up++;
            if (waiter && up >= waiter.n) {
              const w = waiter;
              waiter = undefined;
              w.done();
            }
          }
        },
        log: { debug() {}, info() {}, warn() {}, error: (msg) => failures.push(`${role}: ${msg}`) },
        sourceFor: async () => addr,
      },
      { cookieThreshold: 1e6, halfOpenPerAddress: 1e6, halfOpenTimeoutMs: 120_000 },
    );
    for (let i = 0; i < n; i++)
      m.setPeer(
        peerPolicy(
          { name: 'x', addr },
          { name: ini ? `r${i}` : `i${i}`, addr: ini ? B : A },
          {
            localId: parseIdentity(ini ? initiatorId(i) : responderId),
            remoteId: parseIdentity(ini ? responderId : initiatorId(i)),
            auth: { kind: 'psk', secret: Buffer.from('bench-psk-0123456789') },
            dpdAction: 'clear',
            start: 'none',
            ikeProposals: [IKE_GCM_X25519],
          },
          {
            name: 'c',
            mode: 'tunnel',
            localTs: [parseTrafficSelector(tsHost(ini ? '10.1' : '10.2', i))],
            remoteTs: [parseTrafficSelector(tsHost(ini ? '10.2' : '10.1', i))],
            espProposals: [ESP_GCM],
          },
        ),
      );
    return m;
  };
  mgrs.i = make('i', A, 'r');
  mgrs.r = make('r', B, 'i');
  const cpuUs = (c: NodeJS.CpuUsage) => c.user + c.system;

  const e0 = process.cpuUsage();
  for (let from = 0; from < n; from += BATCH) {
    const to = Math.min(from + BATCH, n);
    const batch = new Promise<void>((done) => {
      waiter = { n: to, done };
    });
    for (let i = from; i < to; i++) mgrs.i.initiate(`r${i}`).catch((err: Error) => failures.push(err.message));
    await Promise.race([
      batch,
      new Promise((_, rej) => setTimeout(() => rej(new Error('establish timed out')), 30_000)),
    ]);
  }
  const establish = cpuUs(process.cpuUsage(e0));
  if (mgrs.r.allSas().length !== n) throw new Error(`responder holds ${mgrs.r.allSas().length} IKE SAs, not ${n}`);

  const t0 = process.cpuUsage();
  const w0 = performance.now();
  await Promise.all(Array.from({ length: n }, (_, i) => mgrs.i.terminate(`r${i}`)));
  const until = w0 + 60_000;
  while ((mgrs.i.allSas().length > 0 || mgrs.r.allSas().length > 0) && performance.now() < until)
    await new Promise((r) => setTimeout(r, 5));
  const teardown = cpuUs(process.cpuUsage(t0));
  const wall = performance.now() - w0;
  const left = mgrs.i.allSas().length + mgrs.r.allSas().length;
  if (left > 0) throw new Error(`${left} IKE SAs left 60 s after the terminations`);
  if (failures.length) throw new Error(`errors: ${failures.slice(0, 3).join('; ')}`);
  return { n, establishUsPerPair: establish / n, teardownUsPerPair: teardown / n, teardownWallMs: wall };
}

function inChild(n: number): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), ['--child', String(n)], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let result: Result | undefined;
    child.on('message', (m) => {
      result = m as Result;
    });
    child.on('exit', (code) => (result ? resolve(result) : reject(new Error(`N=${n}: child exited ${code}`))));
  });
}

function opt(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : dflt;
}

async function main(): Promise<void> {
  const child = process.argv.indexOf('--child');
  if (child >= 0) {
    const r = await runOne(Number(process.argv[child + 1]));
    process.send?.(r);
    process.exit(0);
  }
  const ns = opt('--n', '500,2000')
    .split(',')
    .map((s) => {
      const n = Number(s);
      if (!Number.isInteger(n) || n < 1) throw new Error(`--n: "${s}" is not a positive whole number`);
      return n;
    });
  const runs = Number(opt('--runs', '2'));
  console.log(`mass teardown: N=${ns.join(',')}, ${runs} run(s) each, alternating; both sides in one process`);
  const by = new Map<number, Result[]>();
  for (let r = 0; r < runs; r++)
    for (const n of ns) {
      const res = await inChild(n);
      by.set(n, [...(by.get(n) ?? []), res]);
      console.log(
        `  N=${String(n).padStart(5)} run ${r}: establish ${res.establishUsPerPair.toFixed(0)} µs/pair, teardown ${res.teardownUsPerPair.toFixed(0)} µs/pair (${res.teardownWallMs.toFixed(0)} ms wall)`,
      );
    }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const med = new Map([...by].map(([n, rs]) => [n, median(rs.map((r) => r.teardownUsPerPair))]));
  const lo = Math.min(...ns);
  const hi = Math.max(...ns);
  console.log(`\nteardown CPU per pair (median), both sides:`);
  for (const n of ns) console.log(`  N=${String(n).padStart(5)}  ${med.get(n)!.toFixed(0)} µs`);
  if (hi !== lo)
    console.log(
      `growth N=${hi} / N=${lo}: ${(med.get(hi)! / med.get(lo)!).toFixed(2)} (1.00 = a flat cost per pair; O(N) per pair would be ${(hi / lo).toFixed(1)})`,
    );
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
