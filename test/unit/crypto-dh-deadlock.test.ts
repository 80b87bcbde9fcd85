/**
 * Regression test: X25519 and ECP exchanges in a tight loop under constant
 * GC must not deadlock (Node 20: exporting a generated key as JWK while GC
 * runs hangs; see src/crypto/dh.ts). The real dh.ts is transpiled (no type
 * check) into a temp dir and run in a child process with a timeout.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { expect, test } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Transpile the modules dh.ts needs into a temp dir (plain JS, same relative layout). */
function buildDh(): string {
  const out = mkdtempSync(join(tmpdir(), 'coati-dh-'));
  for (const rel of ['src/errors.ts', 'src/crypto/dh.ts', 'src/crypto/transforms.ts']) {
    const src = ts.sys.readFile(join(root, rel)) ?? '';
    const js = ts.transpileModule(src, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    }).outputText;
    const dest = join(out, rel.replace(/\.ts$/, '.js'));
    ts.sys.createDirectory(dirname(dest));
    ts.sys.createDirectory(dirname(dirname(dest)));
    writeFileSync(dest, js);
  }
  writeFileSync(join(out, 'package.json'), '{"type":"module"}');
  return out;
}

test('20k X25519 + P-256 exchanges with --max-semi-space-size=1 finish (no GC deadlock)', () => {
  const dir = buildDh();
  try {
    const r = spawnSync(
      process.execPath,
      [
        '--max-semi-space-size=1',
        join(root, 'test/fixtures/crypto/ke-stress.mjs'),
        join(dir, 'src/crypto/dh.js'),
        '10000',
      ],
      { encoding: 'utf8', timeout: 120_000, killSignal: 'SIGKILL' },
    );
    expect(r.error, 'child timed out or failed to start: likely the keygen/export deadlock').toBeUndefined();
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^ok 10000 /);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 150_000);
