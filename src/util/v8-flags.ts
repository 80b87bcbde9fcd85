/**
 * V8 settings of a coati daemon process (coatid, and the handshake benches'
 * peer processes, so that the benches measure what ships).
 *
 * By default V8's optimizing compiler (TurboFan) is off: `--no-opt`. Code runs
 * in the interpreter and in Sparkplug, V8's non-optimizing baseline compiler.
 * Why: a keying daemon's JavaScript is a wide, shallow path (decode, proposal
 * selection, state machine, encode, around OpenSSL calls that do the heavy
 * work), run in bursts (a start-up herd, a rekey wave) and then idle for
 * minutes. TurboFan spends CPU on its compiler threads for each function it
 * optimizes, and throws the work away on every deoptimization. Measured in the
 * handshake bench (bench/README.md, state H): with `--no-opt` the first 100 or
 * 500 handshakes of a fresh daemon cost 25-45 % less CPU, and a daemon that
 * has already run 3000 handshakes costs no more than with TurboFan.
 *
 * `COATI_V8_FLAGS` replaces the default list (space-separated V8 flags; an
 * empty value keeps V8's own defaults). It is meant for measurements, e.g.
 * `COATI_V8_FLAGS= node dist/bench/handshake.js` runs the bench with TurboFan.
 */
import { setFlagsFromString } from 'node:v8';

export const DAEMON_V8_FLAGS: readonly string[] = ['--no-opt'];

/** The flags `applyDaemonV8Flags` would set for this environment; throws on a malformed `COATI_V8_FLAGS`. */
export function daemonV8Flags(env: NodeJS.ProcessEnv = process.env): string[] {
  const spec = env.COATI_V8_FLAGS;
  if (spec === undefined) return [...DAEMON_V8_FLAGS];
  const flags = spec.split(/\s+/).filter(Boolean);
  for (const f of flags) {
    if (!/^--[a-z0-9][a-z0-9_-]*(=[A-Za-z0-9_.,:/-]+)?$/.test(f))
      throw new Error(`COATI_V8_FLAGS: "${f}" is not a V8 flag (expected --name or --name=value)`);
  }
  return flags;
}

/**
 * Sets the daemon's V8 flags in this process and returns them. Call it before
 * the daemon does any work: V8 reads these flags when it decides to optimize a
 * function, so functions already optimized stay so. (Node leaves V8's flags
 * writable after start-up, which is what makes this work.)
 */
export function applyDaemonV8Flags(env: NodeJS.ProcessEnv = process.env): string[] {
  const flags = daemonV8Flags(env);
  for (const f of flags) setFlagsFromString(f);
  return flags;
}
