import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DAEMON_V8_FLAGS, daemonV8Flags } from '../../src/util/v8-flags.js';
import { COATID } from '../helpers/daemon.js';

describe("coatid's V8 flags", () => {
  it('default to --no-opt; COATI_V8_FLAGS replaces them, empty meaning V8 defaults', () => {
    expect(DAEMON_V8_FLAGS).toEqual(['--no-opt']);
    expect(daemonV8Flags({})).toEqual(['--no-opt']);
    expect(daemonV8Flags({ COATI_V8_FLAGS: '' })).toEqual([]);
    expect(daemonV8Flags({ COATI_V8_FLAGS: '  --no-opt   --max-semi-space-size=16 ' })).toEqual([
      '--no-opt',
      '--max-semi-space-size=16',
    ]);
  });

  it('refuses a COATI_V8_FLAGS word that is not a flag, naming it', () => {
    expect(() => daemonV8Flags({ COATI_V8_FLAGS: '--no-opt no-opt' })).toThrow(
      'COATI_V8_FLAGS: "no-opt" is not a V8 flag',
    );
    expect(() => daemonV8Flags({ COATI_V8_FLAGS: '--x=$(rm)' })).toThrow('"--x=$(rm)"');
  });

  // The flags are set at run time (v8.setFlagsFromString), which only works while V8's
  // flags are writable. Checked in a child process: a hot function must not reach
  // TurboFan under coatid's flags, and must under V8's defaults (so the check can tell).
  it('take effect at run time: a hot function is not optimized under them, and is without them', () => {
    const mod = pathToFileURL(join(COATID, '..', '..', 'util', 'v8-flags.js')).href;
    expect(existsSync(new URL(mod))).toBe(true);
    const script = `
      const { applyDaemonV8Flags } = await import(${JSON.stringify(mod)});
      applyDaemonV8Flags();
      function hot(x) { let s = 0; for (let i = 0; i < 100; i++) s += x * i; return s; }
      let t = 0;
      for (let i = 0; i < 3e6; i++) t += hot(i);
      console.log(JSON.stringify({ status: %GetOptimizationStatus(hot), t }));`;
    const statusOf = (env: NodeJS.ProcessEnv): number => {
      const out = execFileSync(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', script], {
        env,
        encoding: 'utf8',
      });
      return (JSON.parse(out.trim()) as { status: number }).status;
    };
    const TURBOFANNED = 1 << 4; // V8's OptimizationStatus::kTurboFanned
    const { COATI_V8_FLAGS: _, ...env } = process.env;
    expect(statusOf(env) & TURBOFANNED).toBe(0);
    expect(statusOf({ ...env, COATI_V8_FLAGS: '' }) & TURBOFANNED).toBe(TURBOFANNED);
  });
});
