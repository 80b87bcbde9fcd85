/**
 * Postmortem scenarios with real coatid processes, IKEv2 peers: network partitions
 * between two daemons of a three-node mesh (nftables drops in node2's namespace for
 * node1's address only; node3 keeps talking to both).
 *
 *  3. a partition longer than DPD delay + timeout: both ends declare the peer
 *     dead in time, keep re-initiating with a capped backoff, and are back soon
 *     after the heal;
 *  4. a partition shorter than the DPD timeout, with a liveness check in flight
 *     across it: no teardown, the same IKE SA before and after;
 *  7. a peer unreachable for 60 s: the survivor's memory, CPU and initiation rate
 *     stay flat, no half-open SAs pile up, and it reconnects on heal.
 *
 * DPD 2 s / 3 s, dpd_action = restart, restart backoff capped at 1 s,
 * IKE retransmits from 500 ms (x1.8, 3 tries). Memory kernel backend: "traffic
 * flows" = both ends have installed a Child SA pair with crosswise SPIs.
 * The scenarios are in liveness-scenarios.ts (shared with scenarios-v1-partition.test.ts).
 */
import { partitionScenarios } from './liveness-scenarios.js';

partitionScenarios({ version: 2, prefix: '10.82.0', label: 'scen-partition', unreachable60s: true });
