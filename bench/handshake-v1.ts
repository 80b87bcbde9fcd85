/**
 * IKEv1 handshake throughput, CPU and memory: coati against strongSwan charon
 * and against a crypto-only ceiling, all measured in the same run. The IKEv1
 * twin of bench/handshake.ts (same namespaces, arguments, figures and JSON
 * shape: both run on bench/handshake-harness.ts).
 *
 *   npx tsc -p . && node dist/bench/handshake-v1.js [--k 50,200] [--seconds 3]
 *        [--runs 1] [--warmup 0] [--idle 0]
 *        [--scenarios coati,charon,mixed] [--deadline 60] [--profile DIR] [--out FILE]
 *
 * Each scenario: K ISAKMP SAs, Main Mode PSK aes128-sha256-modp2048, each with
 * one Quick Mode ESP aes128-sha256 (no PFS) in tunnel mode, all initiated at
 * once from namespace A (198.51.100.1) to namespace B (198.51.100.2). A handshake
 * counts as done when its phase 2 SA pair is installed on both sides:
 *   coati   coati -> coati: two forked processes (bench/handshake-v1-peer.ts), MemoryKernel.
 *   charon  charon -> charon: kernel-libipsec, raised limits (as in the IKEv2 bench);
 *           completion from vici `child-updown` events (bench/vici-events.ts).
 *   mixed   coati -> charon.
 */
import type { Charon } from '../test/harness/charon.js';
import { type CharonWatch, f0, type HandshakeBenchOptions, main, parseArgs, runBench } from './handshake-harness.js';
import { v1CryptoCeiling } from './handshake-v1-crypto.js';
import type { ViciClient } from './vici.js';
import { ViciChildCounter } from './vici-events.js';

const IKE = 'aes128-sha256-modp2048';
const ESP = 'aes128-sha256';
export const V1_SUITE = `IKEv1 Main Mode PSK ${IKE}; Quick Mode ESP ${ESP} (no PFS) tunnel`;

/**
 * Completion = CHILD_SAs installed, counted from `child-updown` events: vici
 * `stats` only counts IKE SAs, and in IKEv1 the ISAKMP SA is up a whole Quick
 * Mode before its CHILD_SA.
 */
async function watchChildren(c: Charon, vici: ViciClient): Promise<CharonWatch> {
  const ev = await ViciChildCounter.open(c.viciUri);
  return {
    waitUp: (k, deadline) => ev.waitUp(k, deadline),
    established: async () => ev.up,
    describe: async () => `children up ${ev.up} down ${ev.down} ike ${JSON.stringify(await vici.ikeSas())}`,
    close: () => ev.close(),
  };
}

export function handshakeV1Bench(o: HandshakeBenchOptions): Promise<{ file: string; report: string }> {
  return runBench(
    {
      version: 'IKEv1',
      name: 'handshake-v1',
      labLabel: 'bench-hs1',
      peerScript: 'handshake-v1-peer.js',
      nsTags: { coati: 'v', charon: 'w', mixed: 'x' },
      forkPrefix: 'v1-',
      charonPrefix: 'v1',
      conn: { version: 1, proposals: [IKE] },
      esp: [ESP],
      suite: V1_SUITE,
      watch: watchChildren,
      // The charon responder installs its CHILD_SA only after QM3, after the initiator is done.
      mixedWall: 'both',
      targets: false,
      sideRatioNote: " (charon CPU/hs ÷ coati's)",
      ceiling: v1CryptoCeiling,
      ceilingStart: (c) =>
        `crypto-only ceiling: ${f0(c.perSecond)} Main+Quick Mode handshakes per CPU-second (both peers, one core)`,
      ceilingLine: (c) =>
        `crypto-only ceiling (both peers' crypto of one Main + Quick Mode, one core): ${f0(c.perSecond)} handshakes/CPU-s ` +
        `(rounds ${c.rounds.map(f0).join(', ')}; per wall-s ${c.wallRounds.map(f0).join(', ')})`,
    },
    o,
  );
}

// Main Mode with MODP-2048 costs several times an IKEv2 X25519 handshake: smaller default K.
main(import.meta.url, (argv) => handshakeV1Bench(parseArgs(argv, { ks: [50, 200] })));
