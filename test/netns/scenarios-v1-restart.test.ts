/**
 * Postmortem scenarios 1, 2 and 5 (liveness-scenarios.ts) with IKEv1 peers
 * (`version = 1`: Main Mode + Quick Mode, RFC 3706 DPD): a crashed daemon restarted
 * 3 s later, a "hard reboot" (crash + state directory gone), and both ends restarted
 * at the same moment. The same daemons, timers and checks as the IKEv2 run
 * (scenarios-restart.test.ts): back = one ISAKMP SA with the same cookies on both
 * ends and one installed IPsec SA pair with crosswise SPIs, per pair.
 */
import { restartScenarios } from './liveness-scenarios.js';

restartScenarios({ version: 1, prefix: '10.86.0', label: 'scen-v1-restart' });
