/**
 * Postmortem scenarios 3 and 4 (liveness-scenarios.ts) with IKEv1 peers
 * (`version = 1`, RFC 3706 DPD R-U-THERE): a partition longer than DPD delay +
 * timeout (both ends declare the peer dead in time and are back soon after the
 * heal with one ISAKMP SA and one IPsec SA pair), and a shorter one with a DPD
 * probe in flight across it (same SAs before and after). Same daemons, timers and
 * checks as the IKEv2 run (scenarios-partition.test.ts).
 */
import { partitionScenarios } from './liveness-scenarios.js';

partitionScenarios({ version: 1, prefix: '10.87.0', label: 'scen-v1-partition' });
