/** Kernel errno -> KernelError with a sentence the operator can act on. */
import { ERRNO, KernelError } from '../errors.js';
import type { SaSpec } from '../types.js';
import type { NetlinkRequestError } from './transport.js';

export type KernelOp =
  | 'allocSpi'
  | 'addSa'
  | 'updateSa'
  | 'deleteSa'
  | 'getSa'
  | 'listSas'
  | 'addPolicy'
  | 'updatePolicy'
  | 'deletePolicy'
  | 'listPolicies'
  | 'setSpdHashThresholds';

function algorithmNames(a: SaSpec['algorithms']): string {
  return 'aead' in a ? a.aead.name : `${a.crypt.name} / ${a.auth.name}`;
}

export function mapKernelError(
  op: KernelOp,
  subject: string,
  err: NetlinkRequestError,
  sa?: Pick<SaSpec, 'algorithms' | 'proto'>,
): KernelError {
  const opts = { errno: err.errno, cause: err };
  const ext = err.extMsg ? ` (kernel: ${err.extMsg})` : '';
  if (err.reason === 'timeout') {
    return new KernelError('KERNEL_TIMEOUT', op, subject, `no reply from the kernel in time${ext}`, opts);
  }
  if (err.reason === 'closed')
    return new KernelError('KERNEL_CLOSED', op, subject, 'the kernel backend is closed', opts);
  if (err.reason === 'malformed') {
    return new KernelError('KERNEL_MALFORMED', op, subject, `undecodable kernel reply: ${err.message}`, opts);
  }
  const isSaWrite = op === 'addSa' || op === 'updateSa';
  switch (err.errno) {
    case ERRNO.EPERM:
    case ERRNO.EACCES:
      return new KernelError(
        'KERNEL_PERMISSION',
        op,
        subject,
        `permission denied: coati needs CAP_NET_ADMIN (run as root or grant the capability)${ext}`,
        opts,
      );
    case ERRNO.EEXIST:
      return new KernelError('KERNEL_EXISTS', op, subject, `already exists in the kernel${ext}`, opts);
    case ERRNO.EPROTONOSUPPORT:
      if (isSaWrite) {
        const msg =
          sa?.proto === 'ah'
            ? 'this kernel has no AH support (CONFIG_INET_AH / ah4, ah6 modules missing)'
            : 'this kernel has no ESP support (CONFIG_INET_ESP / esp4, esp6 modules missing)';
        return new KernelError('KERNEL_NO_ESP', op, subject, msg + ext, opts);
      }
      break;
    case ERRNO.ENOSYS:
      if (isSaWrite && sa) {
        return new KernelError(
          'KERNEL_NO_ALGORITHM',
          op,
          subject,
          `kernel crypto API lacks ${algorithmNames(sa.algorithms)} (load the crypto module or pick another proposal)${ext}`,
          opts,
        );
      }
      break;
    case ERRNO.ENOENT:
      if (isSaWrite && sa && op === 'addSa') {
        return new KernelError(
          'KERNEL_NO_ALGORITHM',
          op,
          subject,
          `kernel crypto API lacks ${algorithmNames(sa.algorithms)} (load the crypto module or pick another proposal)${ext}`,
          opts,
        );
      }
      return new KernelError('KERNEL_NOT_FOUND', op, subject, `not found in the kernel${ext}`, opts);
    case ERRNO.ESRCH:
      return new KernelError('KERNEL_NOT_FOUND', op, subject, `not found in the kernel${ext}`, opts);
    case ERRNO.EINVAL:
      return new KernelError(
        'KERNEL_INVALID',
        op,
        subject,
        `the kernel rejected the parameters as invalid${ext}`,
        opts,
      );
  }
  return new KernelError('KERNEL_ERROR', op, subject, `${err.message}${ext}`, opts);
}
