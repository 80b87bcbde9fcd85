/**
 * Postmortem scenario with real coatid processes, IKEv2 peers: a peer daemon stopped
 * gracefully with `shutdown = "delete"` (scenario 8 in liveness-scenarios.ts, shared
 * with the IKEv1 run scenarios-v1-shutdown.test.ts). node1 (dpd_action = restart)
 * re-initiates at once on the Delete, node2 (dpd_action = trap) installs traps, neither
 * waits for DPD, and the stopping node3 accepts no new IKE SA; when node3 comes back,
 * every pair is up again with one IKE SA.
 */
import { shutdownScenario } from './liveness-scenarios.js';

shutdownScenario({ version: 2, prefix: '10.83.0', label: 'scen-shutdown' });
