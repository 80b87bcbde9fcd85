/**
 * One coati IKEv2 engine in its own process, for bench/handshake.ts, driving an
 * `Ikev2Manager` through the shared peer harness (bench/handshake-peer-harness.ts:
 * UDP sockets in a namespace, MemoryKernel, system clock, IPC protocol).
 * `established` counts completed IKE SAs (IKE_AUTH with the first Child SA).
 */
import { Ikev2Manager } from '../src/ikev2/manager.js';
import { parseIdentity } from '../src/sa/identity.js';
import type { PeerPolicy } from '../src/sa/policy.js';
import { parseTrafficSelector } from '../src/sa/traffic-selector.js';
import { ESP_GCM, IKE_GCM_X25519, peerPolicy } from '../test/helpers/ike-pair.js';
import { initiatorId, type PeerSetup, responderId, tsHost } from './handshake-common.js';
import { runPeer } from './handshake-peer-harness.js';

function policies(s: PeerSetup): PeerPolicy[] {
  const out: PeerPolicy[] = [];
  const local = { name: 'x', addr: s.localAddr };
  const remote = { name: 'y', addr: s.remoteAddr };
  for (let i = 0; i < s.k; i++) {
    const ini = s.role === 'initiator';
    out.push(
      peerPolicy(
        local,
        remote,
        {
          name: ini ? `r${i}` : `i${i}`,
          localId: parseIdentity(ini ? initiatorId(i) : responderId),
          remoteId: parseIdentity(ini ? responderId : initiatorId(i)),
          auth: { kind: 'psk', secret: Buffer.from(s.psk) },
          ikeProposals: [IKE_GCM_X25519],
          dpdAction: 'clear',
          start: 'none',
        },
        {
          name: 'c',
          mode: 'tunnel',
          localTs: [parseTrafficSelector(tsHost(s.localNet, i))],
          remoteTs: [parseTrafficSelector(tsHost(s.remoteNet, i))],
          espProposals: [ESP_GCM],
        },
      ),
    );
  }
  return out;
}

runPeer({
  counters: { established: 0, childFailures: 0, failures: 0, retransmits: 0, drops: 0 },
  // A start-up herd of K SAs from one address: no cookies, no per-address cap.
  engine: (env) =>
    new Ikev2Manager(env, { cookieThreshold: 1_000_000, halfOpenPerAddress: 1_000_000, halfOpenTimeoutMs: 120_000 }),
  policies,
  count(ev, c) {
    switch (ev.type) {
      case 'handshake.completed':
        c.established++;
        return true;
      case 'handshake.failed':
        c.failures++;
        break;
      case 'child.failed':
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
});
