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
import { parseIdentity } from '../src/sa/identity.js';
import type { PeerPolicy } from '../src/sa/policy.js';
import { parseTrafficSelector } from '../src/sa/traffic-selector.js';
import { ESP_AES128_SHA256, P1_AES128_SHA256, v1Policy } from '../test/helpers/ike1-pair.js';
import { initiatorId, type PeerSetup, responderId, tsHost } from './handshake-common.js';
import { runPeer } from './handshake-peer-harness.js';

function policies(s: PeerSetup): PeerPolicy[] {
  const out: PeerPolicy[] = [];
  const local = { name: 'x', addr: s.localAddr };
  const ini = s.role === 'initiator';
  for (let i = 0; i < s.k; i++) {
    out.push(
      v1Policy(
        local,
        { name: ini ? `r${i}` : `i${i}`, addr: s.remoteAddr },
        {
          localId: parseIdentity(ini ? initiatorId(i) : responderId),
          remoteId: parseIdentity(ini ? responderId : initiatorId(i)),
          auth: { kind: 'psk', secret: Buffer.from(s.psk) },
          ikeProposals: [P1_AES128_SHA256],
          dpdAction: 'clear',
          start: 'none',
        },
        {
          name: 'c',
          mode: 'tunnel',
          localTs: [parseTrafficSelector(tsHost(s.localNet, i))],
          remoteTs: [parseTrafficSelector(tsHost(s.remoteNet, i))],
          espProposals: [ESP_AES128_SHA256],
        },
      ),
    );
  }
  return out;
}

runPeer({
  counters: { established: 0, phase1: 0, childFailures: 0, failures: 0, retransmits: 0, drops: 0 },
  // A start-up herd of K SAs from one address: no per-address half-open cap.
  engine: (env) => new Ikev1Manager(env, { halfOpenPerAddress: 1_000_000, halfOpenTimeoutMs: 120_000 }),
  policies,
  count(ev, c) {
    switch (ev.type) {
      case 'handshake.completed':
        c.phase1++;
        break;
      case 'child.state':
        if ((ev as { to?: string }).to === 'installed') {
          c.established++;
          return true;
        }
        break;
      case 'handshake.failed':
        c.failures++;
        break;
      case 'child.failed':
      case 'child.refused':
        c.childFailures++;
        break;
      case 'retransmit':
        c.retransmits++;
        break;
      case 'packet.dropped':
        c.drops++;
        break;
    }
    return false;
  },
  // NAT keepalives (a single 0xff) are not IKE: nothing to send in the bench.
  skip: (d) => d.data.length === 1,
});
