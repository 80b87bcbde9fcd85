/**
 * One coati IKEv1 engine in its own process, for bench/handshake-v1.ts: the
 * IKEv1 twin of bench/handshake-peer.ts (same harness, IPC protocol and
 * message shapes: bench/handshake-peer-harness.ts), driving an `Ikev1Manager`.
 *
 * Suite: Main Mode PSK aes128-sha256-modp2048, Quick Mode ESP aes128-sha256
 * (no PFS), tunnel mode, one Quick Mode per ISAKMP SA. `established` in the
 * `done` message counts installed phase 2 SA pairs (the initiator installs
 * after QM2, the responder after QM3), so `done` means K Main Modes AND K
 * Quick Modes completed on this side; `phase1` counts the Main Modes.
 */
import { Ikev1Manager } from '../src/ikev1/manager.js';
import { ESP_AES128_SHA256, P1_AES128_SHA256, v1Policy } from '../test/helpers/ike1-pair.js';
import { runPeer } from './handshake-peer-harness.js';

runPeer({
  counters: { established: 0, phase1: 0, childFailures: 0, failures: 0, retransmits: 0, drops: 0 },
  // A start-up herd of K SAs from one address: no per-address half-open cap.
  engine: (env) => new Ikev1Manager(env, { halfOpenPerAddress: 1_000_000, halfOpenTimeoutMs: 120_000 }),
  policy: (p) =>
    v1Policy(
      p.local,
      p.remote,
      { ...p.ike, ikeProposals: [P1_AES128_SHA256] },
      { ...p.child, espProposals: [ESP_AES128_SHA256] },
    ),
  count(ev, c) {
    switch (ev.type) {
      case 'handshake.completed':
        c.phase1++;
        break;
      case 'child.state':
        if ((ev as { to?: string }).to !== 'installed') break;
        c.established++;
        return true;
      case 'child.refused':
        c.childFailures++;
        break;
    }
    return false;
  },
  // NAT keepalives (a single 0xff) are not IKE: nothing to send in the bench.
  skip: (d) => d.data.length === 1,
});
