/**
 * One coati IKEv2 engine in its own process, for bench/handshake.ts, driving an
 * `Ikev2Manager` through the shared peer harness (bench/handshake-peer-harness.ts:
 * UDP sockets in a namespace, MemoryKernel, system clock, policies, IPC protocol).
 * `established` counts completed IKE SAs (IKE_AUTH with the first Child SA).
 */
import { Ikev2Manager } from '../src/ikev2/manager.js';
import { ESP_GCM, IKE_GCM_X25519, peerPolicy } from '../test/helpers/ike-pair.js';
import { runPeer } from './handshake-peer-harness.js';

runPeer({
  counters: { established: 0, childFailures: 0, failures: 0, retransmits: 0, drops: 0 },
  // A start-up herd of K SAs from one address: no cookies, no per-address cap.
  engine: (env) =>
    new Ikev2Manager(env, { cookieThreshold: 1_000_000, halfOpenPerAddress: 1_000_000, halfOpenTimeoutMs: 120_000 }),
  policy: (p) =>
    peerPolicy(
      p.local,
      p.remote,
      { ...p.ike, ikeProposals: [IKE_GCM_X25519] },
      { ...p.child, espProposals: [ESP_GCM] },
    ),
  count(ev, c) {
    if (ev.type !== 'handshake.completed') return false;
    c.established++;
    return true;
  },
});
