export * from './events.js';
export { type GraphiteOptions, type GraphitePusher, graphiteLines, startGraphitePush } from './graphite.js';
export { type LogBindings, Logger, type LoggerOptions, type LogLevel, SEVERITY } from './log.js';
export { attachLogger, describeEvent } from './log-events.js';
export { CoatiMetrics, type MetricsOptions, type SaCounters } from './metrics.js';
export { type MetricsServer, startMetricsServer } from './metrics-http.js';
export { sanitize } from './redact.js';
