import type { RandomSource } from '../crypto/random.js';
import type { KernelIpsec } from '../kernel/types.js';
import type { Clock } from '../util/clock.js';

/** A UDP endpoint. Port 4500 traffic carries the non-ESP marker, added by the net layer. */
export interface Endpoint {
  addr: string;
  port: number;
}

export interface OutboundDatagram {
  data: Buffer;
  local: Endpoint;
  remote: Endpoint;
}

/** Structured engine events; obs/ subscribers turn them into logs, metrics and streams. */
export interface EngineEvent {
  type: string;
  peer?: string;
  [field: string]: unknown;
}

export interface EngineLog {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** Everything the engine touches outside itself. Only the composition root wires real ones. */
export interface EngineEnv {
  clock: Clock;
  /** Random bytes (SPIs, nonces, IVs). */
  random: RandomSource;
  /** Uniform [0, 1) for jitter. */
  rand01: () => number;
  kernel: KernelIpsec;
  send(d: OutboundDatagram): void;
  emit(ev: EngineEvent): void;
  log: EngineLog;
  /** Local source address the kernel would use towards `remote` (routing lookup). */
  sourceFor?(remote: string): Promise<string>;
  /** Key log sink (tshark table lines), when enabled. */
  keylog?: (table: 'ikev2_decryption_table' | 'esp_sa' | 'ikev1_decryption_table', line: string) => void;
}

export const silentLog: EngineLog = { debug() {}, info() {}, warn() {}, error() {} };
