/**
 * Host-side packing for the guest scripts that run coatid in the VM
 * (test/vm/guest/pair-lib.ts unpacks both tarballs into the guest's tmpfs).
 * Each test file uses its own tarball names: vitest runs files in parallel,
 * and a guest must never read a tarball another file is rewriting.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, VM_CACHE } from './harness.js';

/**
 * Runtime dependencies of coatid: the closure of package.json `dependencies`
 * over the hoisted node_modules (read each time: a new dependency must not
 * break the guest's copy).
 */
export function runtimeDeps(): string[] {
  const seen = new Set<string>();
  const visit = (pkgJson: string) => {
    const deps = Object.keys(
      (JSON.parse(readFileSync(pkgJson, 'utf8')) as { dependencies?: Record<string, string> }).dependencies ?? {},
    );
    for (const d of deps) {
      if (seen.has(d) || !existsSync(join(REPO_ROOT, 'node_modules', d, 'package.json'))) continue;
      seen.add(d);
      visit(join(REPO_ROOT, 'node_modules', d, 'package.json'));
    }
  };
  visit(join(REPO_ROOT, 'package.json'));
  return [...seen].sort();
}

/**
 * coatid loads ~150 modules: over 9p that took 10-28 s per daemon start in the
 * guest. One tarball (`.cache/vm/<tarName>`, unpacked into the guest's tmpfs)
 * makes it one 9p read.
 */
export function packCoati(tarName: string): void {
  execFileSync(
    'tar',
    [
      '-cf',
      join(VM_CACHE, tarName),
      '--exclude=*.map',
      '--exclude=*.d.ts',
      'package.json',
      'dist/src',
      'native/binding.gyp',
      'native/build/Release/coati_native.node',
      ...runtimeDeps().map((d) => `node_modules/${d}`),
    ],
    { cwd: REPO_ROOT },
  );
}

/**
 * The initramfs has no packet capture tool and no nft: the host's binaries
 * (the first of each group of alternatives that exists, e.g. `['dumpcap',
 * 'tcpdump']`) and their `ldd` libraries go into `.cache/vm/<tarName>` as
 * `<tool>` and `lib/` (same glibc: the initramfs carries the host's ld.so).
 * Returns the tools packed (none if the host has none of them: no tarball).
 */
export function packHostTools(tarName: string, groups: string[][]): string[] {
  const tar = join(VM_CACHE, tarName);
  rmSync(tar, { force: true });
  const stage = join(VM_CACHE, `${tarName}.stage`);
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(join(stage, 'lib'), { recursive: true });
  const packed: string[] = [];
  for (const group of groups) {
    for (const tool of group) {
      let path: string;
      try {
        path = execFileSync('bash', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim();
      } catch {
        continue;
      }
      if (!path) continue;
      cpSync(path, join(stage, tool), { dereference: true });
      const libs = execFileSync('ldd', [path], { encoding: 'utf8' })
        .split('\n')
        .map((l) => l.match(/=> (\/\S+)/)?.[1])
        .filter((l): l is string => !!l && existsSync(l));
      for (const l of libs) cpSync(l, join(stage, 'lib', l.split('/').pop() as string), { dereference: true });
      packed.push(tool);
      break;
    }
  }
  if (packed.length) execFileSync('tar', ['-cf', tar, '-C', stage, '.']);
  rmSync(stage, { recursive: true, force: true });
  return packed;
}
