/**
 * `npm run bench`: the quick variant of every bench, one after another, each in
 * its own process (so one bench's JIT state and heap do not colour the next).
 *
 *   crypto        node dist/bench/crypto.js 0.3
 *   wire          node dist/bench/wire.js 0.3
 *   kernel-xfrm   node dist/bench/kernel-xfrm.js         (root only: needs netns + XFRM)
 *   handshake     node dist/bench/handshake.js --k 50 --seconds 1   (root only)
 *   handshake-v1  node dist/bench/handshake-v1.js --k 20 --seconds 1   (root only; IKEv1 Main + Quick Mode)
 *   teardown      node dist/bench/teardown.js --n 200,800 --runs 1   (mass teardown cost per pair)
 *
 * Extra arguments are passed to the handshake bench (e.g. `-- --k 100,500`).
 * Exits non-zero if any bench failed.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const root = process.getuid?.() === 0;
const extra = process.argv.slice(2);

const benches: { name: string; args: string[]; needsRoot: boolean }[] = [
  { name: 'crypto', args: [join(HERE, 'crypto.js'), '0.3'], needsRoot: false },
  { name: 'wire', args: [join(HERE, 'wire.js'), '0.3'], needsRoot: false },
  { name: 'kernel-xfrm', args: [join(HERE, 'kernel-xfrm.js')], needsRoot: true },
  {
    name: 'handshake',
    args: [join(HERE, 'handshake.js'), ...(extra.length ? extra : ['--k', '50', '--seconds', '1'])],
    needsRoot: true,
  },
  {
    name: 'handshake-v1',
    args: [join(HERE, 'handshake-v1.js'), '--k', '20', '--seconds', '1'],
    needsRoot: true,
  },
  { name: 'teardown', args: [join(HERE, 'teardown.js'), '--n', '200,800', '--runs', '1'], needsRoot: false },
];

const failed: string[] = [];
for (const b of benches) {
  console.log(`\n===== ${b.name} =====`);
  if (b.needsRoot && !root) {
    console.log(`skipped: ${b.name} needs root`);
    continue;
  }
  const t0 = performance.now();
  const r = spawnSync(process.execPath, b.args, { stdio: 'inherit' });
  const s = ((performance.now() - t0) / 1000).toFixed(1);
  if (r.status !== 0) {
    failed.push(b.name);
    console.log(`${b.name}: FAILED (exit ${r.status ?? r.signal}) after ${s} s`);
  } else {
    console.log(`${b.name}: done in ${s} s`);
  }
}
if (failed.length) {
  console.log(`\nfailed: ${failed.join(', ')}`);
  process.exit(1);
}
