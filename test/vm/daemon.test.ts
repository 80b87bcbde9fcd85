/**
 * The real data plane end to end (see test/vm/README.md, "daemon tests"): two
 * `coatid` daemons with the xfrm backend, one per network namespace inside the
 * qemu VM, negotiate IKEv2 (PSK, AES-GCM), install ESP SAs and policies in a
 * stock Debian kernel, and traffic flows through them. Then one daemon is
 * SIGKILLed (and, in the hard-reboot variant, its namespace's SAs and policies
 * flushed) and restarted 3 s later while a UDP stream runs through the tunnel:
 * the outage and loss are measured and printed, and the relationship must come
 * back with exactly one IKE SA and one Child SA pair per side.
 *
 * The guest side is test/vm/guest/daemon-e2e.ts (one `RESULT {json}` line per
 * scenario); each scenario is one vitest test here. One VM for the file.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildForGuest, type RunResult, Vm, vmAssets } from './harness.js';
import { packCoati } from './pack.js';

interface Result {
  name: string;
  ok: boolean;
  detail: Record<string, unknown> & {
    problems?: string[];
    kernel?: { ca: KSa[]; cb: KSa[] };
    stream?: { sent: number; received: number; lost: number; longestGapMs: number };
    replies?: number;
    timeline?: string[];
  };
}

interface KSa {
  src: string;
  dst: string;
  spi: string;
  mode: string;
  aead: string;
  bytes: number;
  packets: number;
}

function explain(r: RunResult): string {
  return `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr.slice(-4000)}`;
}

let vm: Vm;
let raw: RunResult;
const results = new Map<string, Result>();

beforeAll(async () => {
  vmAssets(); // fails with "run bash .ci/vm-setup.sh first" when qemu or the kernel cache is missing
  // The guest runs dist/ from the 9p share: compile while the VM boots.
  const build = buildForGuest([
    'dist/test/vm/guest/daemon-e2e.js',
    'dist/test/vm/guest/pair-lib.js',
    'dist/src/daemon/coatid.js',
    'dist/src/control/cli/coatictl.js',
  ]);
  build.catch(() => {});
  vm = await Vm.boot();
  await build;
  packCoati('daemon-pkg.tar'); // coatid from 9p starts in 10-28 s under TCG: the guest unpacks this into tmpfs
  raw = await vm.run('node dist/test/vm/guest/daemon-e2e.js --pkg-tar daemon-pkg.tar', { timeoutMs: 330_000 });
  for (const m of raw.stdout.matchAll(/^RESULT (.*)$/gm)) {
    const r = JSON.parse(m[1]!) as Result;
    results.set(r.name, r);
  }
}, 420_000);

afterAll(async () => {
  await vm?.close();
});

function get(name: string): Result {
  const r = results.get(name);
  expect(r, `no result for "${name}"; ${explain(raw)}`).toBeDefined();
  return r as Result;
}

const show = (r: Result) => JSON.stringify(r.detail, null, 1);

describe('two coatid daemons with the xfrm backend in the VM', () => {
  test('the guest script ran to the end', () => {
    expect(results.has('setup'), explain(raw)).toBe(false);
    expect(raw.code, explain(raw)).toBe(0);
  });

  for (const mode of ['transport', 'tunnel'] as const) {
    test(`${mode} mode, AES-GCM: pings pass through ESP, kernel counters > 0 in both namespaces, SPIs equal crosswise`, () => {
      const r = get(`${mode} mode`);
      expect(r.detail.problems, show(r)).toEqual([]);
      expect(r.detail.replies, show(r)).toBe(5);
      const sas = [...(r.detail.kernel?.ca ?? []), ...(r.detail.kernel?.cb ?? [])];
      expect(sas, show(r)).toHaveLength(4);
      for (const sa of sas) {
        expect(sa.mode).toBe(mode);
        expect(sa.aead).toMatch(/^rfc4106\(gcm\(aes\)\)/);
        expect(sa.packets, show(r)).toBeGreaterThanOrEqual(5);
      }
      expect(r.ok, show(r)).toBe(true);
    });
  }

  for (const [name, label] of [
    ['SIGKILL + restart after 3 s', 'SIGKILL'],
    ['hard reboot (kill + flush) + restart after 3 s', 'hard reboot'],
  ] as const) {
    test(`${label} of one daemon during a 20 ms UDP stream: comes back with one IKE SA and one Child SA pair per side, stale SAs purged`, () => {
      const r = get(name);
      const s = r.detail.stream;
      console.log(
        `${label}: outage (longest gap) ${s?.longestGapMs} ms, lost ${s?.lost} of ${s?.sent} datagrams; ` +
          `settled ${r.detail.upAfterRestartMs} ms after the restart\n  ${(r.detail.timeline ?? []).join('\n  ')}`,
      );
      expect(r.detail.problems, show(r)).toEqual([]);
      expect(r.detail.replaced, show(r)).toBe(true);
      expect(r.detail.newSasCounted, show(r)).toBe(true);
      expect(s?.received, show(r)).toBeGreaterThan(0);
      expect(r.ok, show(r)).toBe(true);
    });
  }
});
