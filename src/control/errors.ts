import { CoatiError } from '../errors.js';

/** Error codes that can appear in a control-protocol error response. */
export const CONTROL_ERROR_CODES = [
  /** Not JSON, not UTF-8, wrong shape, wrong argument types, unknown arguments. */
  'BAD_REQUEST',
  'UNKNOWN_COMMAND',
  'UNSUPPORTED_VERSION',
  /** The named peer is not configured. */
  'UNKNOWN_PEER',
  /** A line exceeded the maximum length; the connection is closed after this. */
  'LINE_TOO_LONG',
  /** Too many requests in flight on one connection. */
  'BUSY',
  /** The server is at its connection limit; the connection is closed after this. */
  'TOO_MANY_CONNECTIONS',
  /** No request within the idle timeout; the connection is closed after this. */
  'IDLE_TIMEOUT',
  /** The daemon refused the action in its current state (e.g. restart in progress). */
  'CONFLICT',
  /** The daemon does not implement this action. */
  'NOT_SUPPORTED',
  /** The daemon failed unexpectedly; the message says how. */
  'INTERNAL',
] as const;

export type ControlErrorCode = (typeof CONTROL_ERROR_CODES)[number];

/** Codes a `DaemonControl` implementation may reject with; passed to the client as they are. */
export const DAEMON_ERROR_CODES: ReadonlySet<string> = new Set<ControlErrorCode>([
  'UNKNOWN_PEER',
  'CONFLICT',
  'NOT_SUPPORTED',
  'BAD_REQUEST',
]);

/** An error with a control-protocol code, thrown by `DaemonControl` implementations and by the client. */
export class ControlError extends CoatiError {
  declare readonly code: ControlErrorCode;
  constructor(code: ControlErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** Client-side failures to reach the daemon at all (the CLI maps these to exit code 3). */
export type ConnectErrorCode = 'NOT_RUNNING' | 'PERMISSION_DENIED' | 'PROTOCOL' | 'CONNECTION_LOST' | 'TIMEOUT';

export class ControlConnectError extends CoatiError {
  declare readonly code: ConnectErrorCode;
  constructor(code: ConnectErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** Map anything a `DaemonControl` rejected with to a wire error. */
export function toWireError(err: unknown): { code: ControlErrorCode; message: string } {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && DAEMON_ERROR_CODES.has(code)) {
      return { code: code as ControlErrorCode, message: err.message };
    }
    return { code: 'INTERNAL', message: err.message || err.name };
  }
  return { code: 'INTERNAL', message: typeof err === 'string' ? err : 'daemon failed with a non-error value' };
}
