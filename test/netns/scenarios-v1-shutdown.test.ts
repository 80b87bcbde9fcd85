/**
 * Scenario 8 (liveness-scenarios.ts) with IKEv1 peers: node3 stopped with SIGTERM and
 * `shutdown = "delete"` sends a DELETE for each IPsec and ISAKMP SA; node1
 * (dpd_action = restart) re-initiates Main Mode at once and the stopping node3 must
 * not answer it (Ikev1Manager.refuseNewSas: an ISAKMP SA accepted while stopping would
 * be dropped without a DELETE, and node1 would only find out by DPD); node2
 * (dpd_action = trap) installs traps. When node3 is back, one ISAKMP SA per pair.
 */
import { shutdownScenario } from './liveness-scenarios.js';

shutdownScenario({ version: 1, prefix: '10.88.0', label: 'scen-v1-shutdown' });
