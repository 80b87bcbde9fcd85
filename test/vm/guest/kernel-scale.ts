/**
 * Runs INSIDE the test VM (real ESP kernel; started by bench/kernel-vm-scale.ts):
 * SA + policy installation cost at scale through coati's XfrmKernel.
 *
 * For each mode and each N, in a fresh network namespace: N SA pairs (AES-GCM,
 * tunnel mode, one peer per pair as in a mesh: local 192.0.2.1 <-> peer i, distinct
 * SPIs and reqids) with out/in/fwd policies each (priority in coati's band),
 * all requests pipelined ~64 in flight. Phases, each timed on its own:
 * addSa (2N), addPolicy (3N), getSa (2N), listSas / listPolicies (full dumps),
 * deletePolicy (3N), deleteSa (2N; both deletes include coati's ownership GET).
 * CPU per phase: process.cpuUsage() system time = the kernel's work (netlink
 * requests are processed in the sending process's context), user time = node.
 * Kernel memory: /proc/meminfo Slab and SUnreclaim before/after the SAs and the policies.
 *
 * Prints one `SCALE {json}` line per (mode, N) and `SCALE-DONE` at the end.
 *
 *   node dist/test/vm/guest/kernel-scale.js [--n 1000,5000] [--modes sel32,sel24,sel24-h24] [--warmup 100]
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { PolicyDir, PolicySpec, SaSpec } from '../../../src/kernel/types.js';
import { XfrmKernel, type XfrmKernelOptions } from '../../../src/kernel/xfrm/kernel.js';
import { DEFAULT_OWNERSHIP } from '../../../src/kernel/xfrm/ownership.js';

const CONCURRENCY = 64;
const LOCAL_OUTER = '192.0.2.1';
const PRIORITY = DEFAULT_OWNERSHIP.priorityMin + 0x100;

/**
 * sel32: host-to-host /32 selectors, kernel default thresholds (v4 32/32: /32 is hashed).
 * sel32-h32: the same with hashThresholds v4 32/32 set explicitly (should equal sel32).
 * sel24: per-peer /24 subnets, default thresholds (not hashed: inexact tree).
 * sel24-h24: /24 subnets with hashThresholds v4 24/24 (hashed).
 */
const MODES = {
  sel32: { prefix: 32, hthresh: undefined },
  'sel32-h32': { prefix: 32, hthresh: { lbits: 32, rbits: 32 } },
  sel24: { prefix: 24, hthresh: undefined },
  'sel24-h24': { prefix: 24, hthresh: { lbits: 24, rbits: 24 } },
} as const;
type Mode = keyof typeof MODES;

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? def) : def;
}

/** Peer i's outer (tunnel endpoint) address: 100.64.0.1 + i. */
const peerOuter = (i: number) => `100.${64 + ((i + 1) >> 16)}.${((i + 1) >> 8) & 255}.${(i + 1) & 255}`;
/** Peer i's inner address (/32) or subnet (/24): 10.(1 + i/256).(i%256).x */
const peerInner = (i: number, prefix: number) =>
  prefix === 32 ? `10.${1 + (i >> 8)}.${i & 255}.1/32` : `10.${1 + (i >> 8)}.${i & 255}.0/24`;
const localInner = (prefix: number) => (prefix === 32 ? '10.0.0.1/32' : '10.0.0.0/24');

interface PairSpecs {
  out: SaSpec;
  in: SaSpec;
  policies: PolicySpec[];
}

function pair(i: number, prefix: number): PairSpecs {
  const mk = (src: string, dst: string, spi: number, reqid: number): SaSpec => ({
    src,
    dst,
    spi,
    proto: 'esp',
    mode: 'tunnel',
    reqid,
    algorithms: { aead: { name: 'rfc4106(gcm(aes))', key: randomBytes(36), icvBits: 128 } },
    replayWindow: 32,
  });
  const out = mk(LOCAL_OUTER, peerOuter(i), 0xc1000000 + i, DEFAULT_OWNERSHIP.reqidMin + 1 + 2 * i);
  const inn = mk(peerOuter(i), LOCAL_OUTER, 0xc2000000 + i, DEFAULT_OWNERSHIP.reqidMin + 2 + 2 * i);
  const pol = (dir: PolicyDir, sa: SaSpec): PolicySpec => ({
    selector:
      dir === 'out'
        ? { src: localInner(prefix), dst: peerInner(i, prefix) }
        : { src: peerInner(i, prefix), dst: localInner(prefix) },
    dir,
    action: 'allow',
    priority: PRIORITY,
    templates: [{ src: sa.src, dst: sa.dst, proto: 'esp', mode: 'tunnel', reqid: sa.reqid }],
  });
  return { out, in: inn, policies: [pol('out', out), pol('in', inn), pol('fwd', inn)] };
}

/** CPU time of the last pipelined() call: system time is the kernel's XFRM work (netlink requests run in the sender's context). */
let lastCpu = { userUs: 0, sysUs: 0 };

/** Run op(0..n-1) with CONCURRENCY requests in flight; wall milliseconds. */
async function pipelined(n: number, op: (i: number) => Promise<unknown>): Promise<number> {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < n) await op(next++);
    }),
  );
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const c = process.cpuUsage(c0);
  lastCpu = { userUs: c.user / n, sysUs: c.system / n };
  return ms;
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = process.hrtime.bigint();
  const r = await fn();
  return [r, Number(process.hrtime.bigint() - t0) / 1e6];
}

function meminfo(): { slabKb: number; sunreclaimKb: number } {
  const txt = readFileSync('/proc/meminfo', 'utf8');
  const get = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(txt)?.[1] ?? Number.NaN);
  return { slabKb: get('Slab'), sunreclaimKb: get('SUnreclaim') };
}

/** Active objects of a slab cache (/proc/slabinfo), if readable. */
function slabObjects(cache: string): number | undefined {
  try {
    const line = readFileSync('/proc/slabinfo', 'utf8')
      .split('\n')
      .find((l) => l.startsWith(`${cache} `));
    return line ? Number(line.split(/\s+/)[1]) : undefined;
  } catch {
    return undefined;
  }
}

function settle(): void {
  // Drop reclaimable slab (dentries/inodes of the 9p share, etc.) so Slab deltas are mostly XFRM.
  try {
    execFileSync('sh', ['-c', 'sync; echo 2 > /proc/sys/vm/drop_caches']);
  } catch {
    /* best effort */
  }
}

async function runOne(mode: Mode, n: number): Promise<Record<string, unknown>> {
  const { prefix, hthresh } = MODES[mode];
  const ns = `scale-${randomBytes(3).toString('hex')}`;
  execFileSync('ip', ['netns', 'add', ns]);
  const opts: XfrmKernelOptions = { netns: ns, events: false, timeoutMs: 120_000 };
  if (hthresh) opts.hashThresholds = { v4: hthresh };
  const k = await XfrmKernel.open(opts);
  try {
    const pairs = Array.from({ length: n }, (_, i) => pair(i, prefix));
    const sas = pairs.flatMap((p) => [p.out, p.in]);
    const policies = pairs.flatMap((p) => p.policies);

    settle();
    const m0 = meminfo();
    const xs0 = slabObjects('xfrm_state');
    const addSaMs = await pipelined(sas.length, (i) => k.addSa(sas[i] as SaSpec));
    const cpu: Record<string, typeof lastCpu> = { addSa: lastCpu };
    settle();
    const m1 = meminfo();
    const xs1 = slabObjects('xfrm_state');
    const addPolicyMs = await pipelined(policies.length, (i) => k.addPolicy(policies[i] as PolicySpec));
    cpu.addPolicy = lastCpu;
    settle();
    const m2 = meminfo();
    // Policy counts, SPD hash buckets and the thresholds in force; SAD count and buckets.
    const ipCount = (what: string) =>
      execFileSync('ip', ['-n', ns, '-s', '-s', 'xfrm', what, 'count'], { encoding: 'utf8' })
        .trim()
        .replace(/\s+/g, ' ');
    const spdInfo = ipCount('policy');
    const sadInfo = ipCount('state');

    let missing = 0;
    const getSaMs = await pipelined(sas.length, async (i) => {
      const sa = sas[i] as SaSpec;
      if (!(await k.getSa({ dst: sa.dst, spi: sa.spi, proto: 'esp' }))) missing++;
    });
    cpu.getSa = lastCpu;
    const [listedSas, listSasMs] = await timed(() => k.listSas());
    const [listedPolicies, listPoliciesMs] = await timed(() => k.listPolicies());
    if (missing || listedSas.length !== sas.length || listedPolicies.length !== policies.length) {
      throw new Error(
        `${mode} N=${n}: getSa missing ${missing}, listSas ${listedSas.length}/${sas.length}, listPolicies ${listedPolicies.length}/${policies.length}`,
      );
    }
    const deletePolicyMs = await pipelined(policies.length, (i) => {
      const p = policies[i] as PolicySpec;
      return k.deletePolicy({ selector: p.selector, dir: p.dir });
    });
    cpu.deletePolicy = lastCpu;
    const deleteSaMs = await pipelined(sas.length, (i) => {
      const sa = sas[i] as SaSpec;
      return k.deleteSa({ dst: sa.dst, spi: sa.spi, proto: 'esp' });
    });
    cpu.deleteSa = lastCpu;
    const left = (await k.listSas()).length + (await k.listPolicies()).length;
    if (left !== 0) throw new Error(`${mode} N=${n}: ${left} SAs/policies left after deleting`);

    const us = (ms: number, ops: number) => (ms * 1000) / ops;
    return {
      mode,
      prefix,
      hthresh: hthresh ?? 'kernel default (v4 32/32)',
      n,
      sas: sas.length,
      policies: policies.length,
      addSaMs,
      addSaUs: us(addSaMs, sas.length),
      addPolicyMs,
      addPolicyUs: us(addPolicyMs, policies.length),
      getSaUs: us(getSaMs, sas.length),
      deletePolicyUs: us(deletePolicyMs, policies.length),
      deleteSaUs: us(deleteSaMs, sas.length),
      /** Per operation: guest kernel (system) and node (user) CPU µs of each phase. */
      cpu,
      listSasMs,
      listPoliciesMs,
      slabKbPerSa: (m1.slabKb - m0.slabKb) / sas.length,
      sunreclaimKbPerSa: (m1.sunreclaimKb - m0.sunreclaimKb) / sas.length,
      slabKbPerPolicy: (m2.slabKb - m1.slabKb) / policies.length,
      slabKbPerPair: (m2.slabKb - m0.slabKb) / n,
      xfrmStateObjects: xs0 !== undefined && xs1 !== undefined ? xs1 - xs0 : undefined,
      meminfo: { before: m0, afterSas: m1, afterPolicies: m2 },
      spdInfo,
      sadInfo,
    };
  } finally {
    await k.close();
    execFileSync('ip', ['netns', 'del', ns]);
  }
}

async function main(): Promise<void> {
  const ns = arg('n', '1000,5000').split(',').map(Number);
  const modes = arg('modes', 'sel32,sel32-h32,sel24,sel24-h24').split(',') as Mode[];
  for (const m of modes) if (!(m in MODES)) throw new Error(`unknown mode ${m}`);
  const warmup = Number(arg('warmup', '100'));
  process.stdout.write(
    `SCALE-INFO ${JSON.stringify({ kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(), node: process.version, concurrency: CONCURRENCY })}\n`,
  );
  if (warmup > 0) await runOne('sel32', warmup); // JIT, crypto module loading (gcm, aes, ghash)
  for (const mode of modes) {
    for (const n of ns) {
      const t0 = Date.now();
      const row = await runOne(mode, n);
      process.stdout.write(`SCALE ${JSON.stringify({ ...row, wallMs: Date.now() - t0 })}\n`);
    }
  }
  process.stdout.write('SCALE-DONE\n');
}

main().catch((err) => {
  process.stdout.write(`SCALE-ERROR ${JSON.stringify({ error: String(err), stack: (err as Error).stack })}\n`);
  process.exit(1);
});
