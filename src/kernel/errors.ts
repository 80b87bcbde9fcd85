import { CoatiError } from '../errors.js';

/** Stable codes of kernel failures; each message says what to do about it. */
export type KernelErrorCode =
  | 'KERNEL_NO_ESP'
  | 'KERNEL_NO_ALGORITHM'
  | 'KERNEL_EXISTS'
  | 'KERNEL_NOT_FOUND'
  | 'KERNEL_PERMISSION'
  | 'KERNEL_NOT_OWNED'
  | 'KERNEL_INVALID'
  | 'KERNEL_TIMEOUT'
  | 'KERNEL_CLOSED'
  | 'KERNEL_MALFORMED'
  | 'KERNEL_ERROR';

/**
 * A kernel operation failed. `op` names the operation (e.g. `addSa`), `subject`
 * the SA or policy it was about, `errno` the kernel's (positive) errno if any.
 */
export class KernelError extends CoatiError {
  declare readonly code: KernelErrorCode;
  readonly op: string;
  readonly subject: string;
  readonly errno: number | undefined;
  constructor(
    code: KernelErrorCode,
    op: string,
    subject: string,
    message: string,
    options?: { errno?: number; cause?: unknown },
  ) {
    super(code, `${op} ${subject}: ${message}`, options?.cause === undefined ? undefined : { cause: options.cause });
    this.op = op;
    this.subject = subject;
    this.errno = options?.errno;
  }
}

export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EEXIST: 17,
  EINVAL: 22,
  ENOSPC: 28,
  ENOSYS: 38,
  ENOBUFS: 105,
  EPROTONOSUPPORT: 93,
  EAFNOSUPPORT: 97,
  EADDRINUSE: 98,
} as const;
