/**
 * The handshake benches' arguments and report grouping (bench/handshake-harness.ts):
 * `--warmup` and `--idle` lists, their validation, and that runs of different
 * variants (K, warm-up, idle peers) are summarized and compared separately.
 */
import { describe, expect, it } from 'vitest';
import { parseArgs, type RunResult, ratios, summarize } from '../../bench/handshake-harness.js';

function run(scenario: 'coati' | 'charon', k: number, warmup: number, idle: number, cpuS: number): RunResult {
  return {
    scenario,
    k,
    warmup,
    idle,
    run: 0,
    ok: true,
    wallS: 1,
    sides: [
      { impl: scenario, role: 'initiator', cpuS: cpuS / 2, rssDelta: 0, established: k },
      { impl: scenario, role: 'responder', cpuS: cpuS / 2, rssDelta: 0, established: k },
    ],
    udpRcvbufErrors: { initiator: 0, responder: 0 },
    perSecondWall: k,
    perCpuSecond: k / cpuS,
  };
}

describe('handshake bench arguments', () => {
  it('defaults to cold runs with K peers configured; --warmup and --idle take lists', () => {
    const d = parseArgs([]);
    expect(d.ks).toEqual([100, 500]);
    expect(d.warmups).toEqual([0]);
    expect(d.idles).toEqual([0]);
    const o = parseArgs(['--k', '50', '--warmup', '0,1000', '--idle', '400']);
    expect(o.ks).toEqual([50]);
    expect(o.warmups).toEqual([0, 1000]);
    expect(o.idles).toEqual([400]);
    expect(parseArgs([], { ks: [50, 200] }).warmups).toEqual([0]);
  });

  it('refuses what it cannot run, naming the option', () => {
    expect(() => parseArgs(['--warmup', '-1'])).toThrow(/--warmup/);
    expect(() => parseArgs(['--warmup', 'x'])).toThrow(/--warmup/);
    expect(() => parseArgs(['--idle', '1.5'])).toThrow(/--idle/);
    expect(() => parseArgs(['--k', '60000', '--warmup', '6000'])).toThrow(/65536/);
    expect(() => parseArgs(['--warm', '10'])).toThrow(/unknown argument --warm/);
  });
});

describe('handshake bench report', () => {
  it('summarizes and compares each (K, warm-up, idle) variant on its own', () => {
    const rs = [
      run('coati', 100, 0, 0, 0.4), // 250 hs/CPU-s
      run('charon', 100, 0, 0, 0.2), // 500
      run('coati', 100, 1000, 0, 0.2), // 500
      run('charon', 100, 1000, 0, 0.25), // 400
      run('coati', 100, 0, 400, 0.4), // 250
      run('charon', 100, 0, 400, 0.5), // 200
    ];
    const s = summarize(rs);
    expect(s).toHaveLength(6);
    const r = ratios(s, 1000);
    expect(r.map((x) => [x.k, x.warmup, x.idle, x.coatiOverCharonPerCpuSecond])).toEqual([
      [100, 0, 0, 0.5],
      [100, 1000, 0, 1.25],
      [100, 0, 400, 1.25],
    ]);
    expect(r.map((x) => x.targetCharonMet)).toEqual([false, true, true]);
    // The warm-up variant is also set against charon's cold run of the same K and idle peers.
    expect(r.map((x) => x.coatiOverColdCharonPerCpuSecond)).toEqual([undefined, 1, undefined]);
  });
});
