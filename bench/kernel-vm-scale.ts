/**
 * SA + policy installation at scale on a real ESP kernel: boots the test VM
 * (test/vm: stock Debian kernel under qemu TCG, see test/vm/README.md) once and
 * runs test/vm/guest/kernel-scale.ts in it, which installs N SA pairs (AES-GCM,
 * tunnel) with out/in/fwd policies each through coati's XfrmKernel, ~64 requests
 * in flight, in a fresh netns per (mode, N), and times every phase.
 *
 * Reports per-operation cost (µs per SA add, policy add, GETSA, policy/SA delete)
 * for each N, the large/small ratio of each (≈ 1 = linear total cost, ≫ 1 =
 * superlinear), the full dump times, and kernel Slab per SA / policy / pair.
 *
 * Modes: sel32 = /32 host selectors with the kernel's default SPD hash thresholds
 * (v4 32/32: /32 selectors are already hashed); sel32-h32 = the same with
 * hashThresholds v4 32/32 set by coati (a no-op, for checking); sel24 = /24 subnet
 * selectors, default thresholds (not hashed: the inexact tree); sel24-h24 = /24 with
 * hashThresholds v4 24/24 (hashed).
 *
 * Run (root; `bash .ci/vm-setup.sh` once):
 *   npx tsc -p . && node dist/bench/kernel-vm-scale.js [--n 500,2500] \
 *     [--modes sel32,sel24,sel24-h24] [--out FILE]
 * Default N = 500,2500 keeps the VM run near 2 minutes under TCG (~1 ms per
 * netlink request there); --n 1000,5000 takes ~4-5 minutes.
 */
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, Vm } from '../test/vm/harness.js';

const GUEST_JS = 'dist/test/vm/guest/kernel-scale.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? def) : def;
}

interface Row {
  mode: string;
  n: number;
  sas: number;
  policies: number;
  addSaUs: number;
  addPolicyUs: number;
  getSaUs: number;
  deletePolicyUs: number;
  deleteSaUs: number;
  listSasMs: number;
  listPoliciesMs: number;
  slabKbPerSa: number;
  slabKbPerPolicy: number;
  slabKbPerPair: number;
  wallMs: number;
  /** Per operation, per phase: guest kernel (sys) and node (user) CPU µs. */
  cpu: Record<Phase, { userUs: number; sysUs: number }>;
  spdInfo: string;
  sadInfo: string;
}

const METRICS = ['addSaUs', 'addPolicyUs', 'getSaUs', 'deletePolicyUs', 'deleteSaUs'] as const;
const PHASES = ['addSa', 'addPolicy', 'getSa', 'deletePolicy', 'deleteSa'] as const;
type Phase = (typeof PHASES)[number];

async function main(): Promise<void> {
  const nArg = arg('n', '500,2500');
  const modes = arg('modes', 'sel32,sel24,sel24-h24');
  const out = arg('out', '');
  const src = join(REPO_ROOT, 'test/vm/guest/kernel-scale.ts');
  const js = join(REPO_ROOT, GUEST_JS);
  if (!existsSync(js) || statSync(js).mtimeMs < statSync(src).mtimeMs) {
    throw new Error(`${GUEST_JS} is missing or older than its source: run \`npx tsc -p .\` first`);
  }
  if (!existsSync(join(REPO_ROOT, 'native/build/Release/coati_native.node'))) {
    throw new Error('native/build/Release/coati_native.node is missing (build the native addon)');
  }

  const t0 = Date.now();
  const vm = await Vm.boot();
  console.log(`VM up in ${(vm.bootMs / 1000).toFixed(1)} s (${vm.readyLine})`);
  let res: Awaited<ReturnType<Vm['run']>>;
  try {
    res = await vm.run(`node ${GUEST_JS} --n ${nArg} --modes ${modes}`, { timeoutMs: 900_000 });
  } finally {
    await vm.close();
  }
  const wallS = (Date.now() - t0) / 1000;
  const lines = res.stdout.split('\n');
  const info = JSON.parse(lines.find((l) => l.startsWith('SCALE-INFO '))?.slice(11) ?? '{}') as Record<string, unknown>;
  const rows = lines.filter((l) => l.startsWith('SCALE {')).map((l) => JSON.parse(l.slice(6)) as Row);
  const err = lines.find((l) => l.startsWith('SCALE-ERROR '));
  if (res.code !== 0 || err || !lines.includes('SCALE-DONE')) {
    throw new Error(`guest run failed (rc ${res.code}): ${err ?? ''}\n${res.stderr.slice(-3000)}`);
  }

  console.table(
    rows.map((r) => ({
      mode: r.mode,
      'N pairs': r.n,
      'SA add µs': r.addSaUs.toFixed(0),
      'pol add µs': r.addPolicyUs.toFixed(0),
      'GETSA µs': r.getSaUs.toFixed(0),
      'pol del µs': r.deletePolicyUs.toFixed(0),
      'SA del µs': r.deleteSaUs.toFixed(0),
      'listSas ms': r.listSasMs.toFixed(0),
      'listPolicies ms': r.listPoliciesMs.toFixed(0),
      'Slab KB/SA': r.slabKbPerSa.toFixed(2),
      'Slab KB/pol': r.slabKbPerPolicy.toFixed(2),
      'Slab KB/pair': r.slabKbPerPair.toFixed(1),
    })),
  );

  console.log('guest CPU per operation, kernel (sys) / node (user) µs:');
  console.table(
    rows.map((r) => ({
      mode: r.mode,
      'N pairs': r.n,
      ...Object.fromEntries(PHASES.map((p) => [p, `${r.cpu[p].sysUs.toFixed(0)} / ${r.cpu[p].userUs.toFixed(0)}`])),
    })),
  );

  const ratios: Array<Record<string, string | number>> = [];
  for (const mode of [...new Set(rows.map((r) => r.mode))]) {
    const mine = rows.filter((r) => r.mode === mode).sort((a, b) => a.n - b.n);
    const small = mine[0];
    const large = mine[mine.length - 1];
    if (!small || !large || small === large) continue;
    const row: Record<string, string | number> = { mode, N: `${large.n}/${small.n}` };
    for (const m of METRICS) row[m] = Number((large[m] / small[m]).toFixed(2));
    for (const p of PHASES) row[`${p}Sys`] = Number((large.cpu[p].sysUs / small.cpu[p].sysUs).toFixed(2));
    // Dumps: per listed entry.
    row.listSasPerEntry = Number((large.listSasMs / large.sas / (small.listSasMs / small.sas)).toFixed(2));
    row.listPoliciesPerEntry = Number(
      (large.listPoliciesMs / large.policies / (small.listPoliciesMs / small.policies)).toFixed(2),
    );
    ratios.push(row);
  }
  console.log('per-operation cost ratio large/small (1 = linear total cost; *Sys = guest kernel CPU only):');
  console.table(ratios);
  for (const r of rows) console.log(`${r.mode} N=${r.n}: ${r.spdInfo} | ${r.sadInfo}`);
  console.log(
    `whole run ${wallS.toFixed(0)} s (boot ${(vm.bootMs / 1000).toFixed(1)} s, guest ${(res.ms / 1000).toFixed(0)} s)`,
  );

  const stamp = new Date().toISOString().replace(/[-:]/g, '').slice(0, 13);
  const file = out || join(REPO_ROOT, 'bench', 'results', `kernel-vm-scale-${stamp}.json`);
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(
    file,
    `${JSON.stringify({ date: new Date().toISOString(), guest: info, n: nArg, modes, bootMs: vm.bootMs, guestMs: res.ms, rows, ratios }, null, 2)}\n`,
  );
  console.log(`wrote ${file}`);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
