/**
 * IKEv2 handshake throughput, CPU and memory: coati against strongSwan charon
 * and against a crypto-only ceiling, all measured in the same run on this
 * machine. Figures are reported as ratios against those references.
 *
 *   npx tsc -p . && node dist/bench/handshake.js [--k 100,500] [--seconds 3]
 *        [--runs 1] [--warmup 0] [--idle 0]
 *        [--scenarios coati,charon,mixed] [--deadline 60] [--profile DIR] [--out FILE]
 *
 * Needs root (network namespaces), the native addon, and strongSwan 5.9
 * (charon, swanctl) for the charon scenarios. See bench/README.md.
 *
 * Scenarios (each K IKE SAs, PSK, X25519, AES-GCM-256, PRF HMAC-SHA-256, first
 * Child SA ESP AES-GCM-256 in tunnel mode, all initiated at once, from namespace
 * A (198.51.100.1) to namespace B (198.51.100.2) over a veth):
 *   coati   coati -> coati: two forked processes (bench/handshake-peer.ts), MemoryKernel.
 *   charon  charon -> charon: kernel-libipsec (userspace ESP, so Child SAs install on a
 *           kernel without ESP), half-open/cookie limits raised, IKE SA table sized;
 *           completion polled from vici `stats` (IKE SAs up, none half-open).
 *   mixed   coati -> charon: coati initiator process, charon responder as above.
 * The machinery (namespaces, processes, sampling, report, JSON) is in
 * bench/handshake-harness.ts, shared with the IKEv1 bench.
 */

import { cryptoCeiling } from './handshake-crypto.js';
import { f0, type HandshakeBenchOptions, main, parseArgs, runBench, watchIkeSas } from './handshake-harness.js';

export const V2_SUITE = 'IKEv2 PSK, X25519, AES-GCM-256, PRF HMAC-SHA-256; Child SA ESP AES-GCM-256 tunnel';

export function handshakeBench(o: HandshakeBenchOptions): Promise<{ file: string; report: string }> {
  return runBench(
    {
      version: 'IKEv2',
      name: 'handshake',
      labLabel: 'bench-hs',
      peerScript: 'handshake-peer.js',
      nsTags: { coati: 'c', charon: 's', mixed: 'm' },
      forkPrefix: '',
      charonPrefix: '',
      conn: { version: 2, proposals: ['aes256gcm16-prfsha256-x25519'], mobike: false },
      esp: ['aes256gcm16'],
      suite: V2_SUITE,
      watch: watchIkeSas,
      // The charon responder installs its Child SA before it answers IKE_AUTH.
      mixedWall: 'initiator',
      targets: true,
      sideRatioNote: '',
      ceiling: cryptoCeiling,
      ceilingStart: (c) => `crypto-only ceiling: ${f0(c.perSecond)} handshakes/s (both peers, one core)`,
      ceilingLine: (c) =>
        `crypto-only ceiling (both peers' crypto of one handshake, one core): ${f0(c.perSecond)} handshakes/s ` +
        `(rounds ${c.rounds.map(f0).join(', ')})`,
    },
    o,
  );
}

main(import.meta.url, (argv) => handshakeBench(parseArgs(argv)));
