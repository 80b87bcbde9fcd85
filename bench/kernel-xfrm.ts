/**
 * Policy install cost on the host kernel: add N tunnel policies (subnet
 * selectors, pipelined requests) into a fresh netns for N = 1k and 5k, with the
 * kernel's default SPD hash thresholds and with thresholds at /24, and report
 * per-operation cost and the 5k/1k ratio (1.0 = linear total cost).
 * SAs cannot be measured here (no ESP in the host kernel).
 *
 * Run (root): npx tsc -p . && node dist/bench/kernel-xfrm.js
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { PolicySpec } from '../src/kernel/types.js';
import { XfrmKernel } from '../src/kernel/xfrm/kernel.js';
import { DEFAULT_OWNERSHIP } from '../src/kernel/xfrm/ownership.js';

const CONCURRENCY = 64;

function policy(i: number): PolicySpec {
  return {
    selector: { src: '10.0.0.0/24', dst: `10.${1 + (i >> 8)}.${i & 255}.0/24` },
    dir: 'out',
    action: 'allow',
    priority: DEFAULT_OWNERSHIP.priorityMin + 10,
    templates: [
      {
        src: '192.0.2.1',
        dst: `198.18.${i >> 8}.${i & 255}`,
        proto: 'esp',
        mode: 'tunnel',
        reqid: DEFAULT_OWNERSHIP.reqidMin + (i % 0xffff),
      },
    ],
  };
}

async function pipelined(n: number, op: (i: number) => Promise<void>): Promise<number> {
  const t0 = process.hrtime.bigint();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < n) await op(next++);
    }),
  );
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

interface Row {
  n: number;
  mode: string;
  addMs: number;
  addUsPerOp: number;
  dumpMs: number;
  deleteUsPerOp: number;
}

async function run(n: number, mode: 'default' | 'hthresh24'): Promise<Row> {
  const ns = `coati-b-${randomBytes(4).toString('hex')}`;
  execFileSync('ip', ['netns', 'add', ns]);
  const k = await XfrmKernel.open({
    netns: ns,
    events: false,
    timeoutMs: 30_000,
    ...(mode === 'hthresh24' ? { hashThresholds: { v4: { lbits: 24, rbits: 24 }, v6: { lbits: 64, rbits: 64 } } } : {}),
  });
  try {
    const addMs = await pipelined(n, (i) => k.addPolicy(policy(i)));
    const t0 = process.hrtime.bigint();
    const listed = await k.listPolicies();
    const dumpMs = Number(process.hrtime.bigint() - t0) / 1e6;
    if (listed.length !== n) throw new Error(`dump returned ${listed.length} of ${n}`);
    const delMs = await pipelined(n, (i) => k.deletePolicy({ selector: policy(i).selector, dir: 'out' }));
    return { n, mode, addMs, addUsPerOp: (addMs * 1000) / n, dumpMs, deleteUsPerOp: (delMs * 1000) / n };
  } finally {
    await k.close();
    execFileSync('ip', ['netns', 'del', ns]);
  }
}

const rows: Row[] = [];
for (const mode of ['default', 'hthresh24'] as const) {
  await run(500, mode); // warm-up
  for (const n of [1000, 5000]) rows.push(await run(n, mode));
}
console.table(
  rows.map((r) => ({
    mode: r.mode,
    n: r.n,
    'add total ms': r.addMs.toFixed(0),
    'add µs/op': r.addUsPerOp.toFixed(1),
    'dump ms': r.dumpMs.toFixed(1),
    'delete µs/op (incl. ownership GET)': r.deleteUsPerOp.toFixed(1),
  })),
);
for (const mode of ['default', 'hthresh24']) {
  const [a, b] = rows.filter((r) => r.mode === mode);
  if (a && b)
    console.log(
      `${mode}: add per-op cost ratio 5k/1k = ${(b.addUsPerOp / a.addUsPerOp).toFixed(2)}, delete ${(b.deleteUsPerOp / a.deleteUsPerOp).toFixed(2)}`,
    );
}
