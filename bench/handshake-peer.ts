/**
 * One coati IKEv2 engine in its own process, for bench/handshake.ts, driving an
 * `Ikev2Manager` through the shared peer harness (bench/handshake-peer-harness.ts:
 * UDP sockets in a namespace, MemoryKernel, system clock, policies, IPC protocol).
 * `established` counts first Child SAs installed in the (memory) kernel: an IKE SA
 * is complete once its IKE_AUTH's Child SA is in, which on the initiator comes after
 * `handshake.completed` (the install is awaited after authentication).
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
    if (ev.type !== 'child.state' || ev.from !== 'creating' || ev.to !== 'installed') return false;
    c.established++;
    return true;
  },
});
