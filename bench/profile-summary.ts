/**
 * Where a bench peer's CPU went, from the V8 CPU profile that `--profile DIR`
 * writes (bench/handshake.ts, bench/handshake-v1.ts): time per handshake by
 * group (node:crypto, garbage collector, coati's own modules by directory,
 * Node internals), and the functions with the most self time.
 *
 *   node dist/bench/profile-summary.js DIR/coati-resp-k2000-r0.cpuprofile --k 2000 [--top 25]
 *
 * A sampling profile attributes a native call (OpenSSL, a syscall) to the JS
 * function that made it, so "node:crypto" is the time inside node:crypto's
 * wrappers and the OpenSSL work under them. The profile covers the whole
 * process (module loading and set-up too, listed as such), not only the
 * measured window; "(idle)" is time the thread waited and is left out of the
 * total.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  /** µs of CPU per handshake, idle left out. */
  totalUsPerHs: number;
  groups: { group: string; usPerHs: number; share: number }[];
  top: { fn: string; usPerHs: number; share: number }[];
}

/** The group a sample's frame belongs to. */
export function groupOf(url: string, functionName: string): string {
  if (!url) {
    if (functionName.startsWith('(')) return functionName; // (garbage collector), (idle), (program)
    return 'native';
  }
  if (url.startsWith('node:')) {
    const mod = url.slice(5);
    if (mod.startsWith('internal/crypto') || mod === 'crypto') return 'node:crypto';
    if (mod.startsWith('internal/modules') || mod.startsWith('internal/bootstrap')) return 'node: module loading';
    return 'node: other';
  }
  const dist = url.indexOf('/dist/');
  const rel = dist >= 0 ? url.slice(dist + 6) : url;
  const parts = rel.split('/');
  if (parts[0] === 'src') return `coati ${parts.slice(0, Math.min(3, parts.length - 1)).join('/')}`;
  return `harness ${parts.slice(0, -1).join('/')}`;
}

export function summarize(p: CpuProfile, k: number, topN = 25): ProfileSummary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const groups = new Map<string, number>();
  const fns = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const n = byId.get(p.samples[i] as number);
    if (!n) continue;
    const dt = p.timeDeltas[i] ?? 0;
    const { functionName, url, lineNumber } = n.callFrame;
    const g = groupOf(url, functionName);
    if (g === '(idle)') continue;
    total += dt;
    groups.set(g, (groups.get(g) ?? 0) + dt);
    const fn = `${functionName || '(anonymous)'} ${url.split('/').slice(-2).join('/')}:${lineNumber + 1}`;
    fns.set(fn, (fns.get(fn) ?? 0) + dt);
  }
  const rows = <T extends string>(m: Map<string, number>, key: T) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .map(
        ([name, us]) =>
          ({ [key]: name, usPerHs: us / k, share: us / total }) as { [P in T]: string } & {
            usPerHs: number;
            share: number;
          },
      );
  return { totalUsPerHs: total / k, groups: rows(groups, 'group'), top: rows(fns, 'fn').slice(0, topN) };
}

function main(argv: string[]): void {
  const file = argv.find((a) => !a.startsWith('--'));
  const opt = (name: string, dflt: number) => {
    const i = argv.indexOf(name);
    return i >= 0 ? Number(argv[i + 1]) : dflt;
  };
  const k = opt('--k', 1);
  if (!file || !(k > 0)) {
    process.stderr.write('usage: profile-summary FILE.cpuprofile --k HANDSHAKES [--top N]\n');
    process.exit(2);
  }
  const s = summarize(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, k, opt('--top', 25));
  const line = (name: string, us: number, share: number) =>
    `${us.toFixed(1).padStart(9)} ${`${(share * 100).toFixed(1)}%`.padStart(6)}  ${name}`;
  const out = [`${file}: ${s.totalUsPerHs.toFixed(0)} µs of CPU per handshake (K=${k}, idle left out)`, 'by group:'];
  for (const g of s.groups) if (g.share >= 0.002) out.push(line(g.group, g.usPerHs, g.share));
  out.push('most self time:');
  for (const f of s.top) out.push(line(f.fn, f.usPerHs, f.share));
  process.stdout.write(`${out.join('\n')}\n`);
}

if (process.argv[1]?.endsWith('profile-summary.js')) main(process.argv.slice(2));
