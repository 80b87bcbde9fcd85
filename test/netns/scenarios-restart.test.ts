/**
 * Postmortem scenarios with real coatid processes, IKEv2 peers: a crashed daemon
 * restarted 3 s later (1), a "hard reboot" (crash + state directory gone) (2), and
 * both ends restarted at the same moment (5). Three daemons in namespaces on one
 * bridge, DPD 2 s / 3 s, dpd_action = restart, restart backoff capped at 1 s.
 * The scenarios themselves are in liveness-scenarios.ts (shared with the IKEv1 run,
 * scenarios-v1-restart.test.ts).
 *
 * "Back" = both ends report the same IKE SA (SPIs, complementary roles) and one
 * installed Child SA pair with crosswise SPIs, and each daemon's own SA
 * transitions show exactly one live IKE SA and one live Child SA per peer.
 */
import { restartScenarios } from './liveness-scenarios.js';

restartScenarios({ version: 2, prefix: '10.81.0', label: 'scen-restart' });
