/** End-to-end test harness: see test/interop/README.md. */
export * from './capture.js';
export * from './charon.js';
export * from './faults.js';
export * from './nat.js';
export * from './netns.js';
export * from './swanctl-conf.js';
export * from './topology.js';
export * from './traffic.js';
