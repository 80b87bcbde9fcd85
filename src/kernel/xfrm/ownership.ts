/**
 * What coati owns in the kernel: SAs whose reqid is in the configured range,
 * and policies whose priority is in the configured band and whose templates
 * (if any) all carry an owned reqid. Backends only ever list, change or delete
 * owned objects; nothing is ever flushed globally.
 */
import { KernelError } from '../errors.js';
import type { PolicySpec } from '../types.js';

export interface Ownership {
  reqidMin: number;
  reqidMax: number;
  priorityMin: number;
  priorityMax: number;
}

export const DEFAULT_OWNERSHIP: Readonly<Ownership> = {
  reqidMin: 0xc0a70000,
  reqidMax: 0xc0a7ffff,
  priorityMin: 0x0c0a0000,
  priorityMax: 0x0c0affff,
};

/** Default inbound SPI range for allocSpi. */
export const DEFAULT_SPI_RANGE = { min: 0xc0000000, max: 0xcfffffff } as const;

const hex = (n: number) => `0x${n.toString(16)}`;

export function ownsReqid(o: Ownership, reqid: number): boolean {
  return reqid >= o.reqidMin && reqid <= o.reqidMax;
}

export function ownsPolicy(o: Ownership, p: Pick<PolicySpec, 'priority' | 'templates'>): boolean {
  return p.priority >= o.priorityMin && p.priority <= o.priorityMax && p.templates.every((t) => ownsReqid(o, t.reqid));
}

export function assertReqid(o: Ownership, op: string, subject: string, reqid: number): void {
  if (!ownsReqid(o, reqid)) {
    throw new KernelError(
      'KERNEL_NOT_OWNED',
      op,
      subject,
      `reqid ${hex(reqid)} is outside coati's reqid range ${hex(o.reqidMin)}..${hex(o.reqidMax)}; allocate reqids from that range (or configure the range)`,
    );
  }
}

export function assertPolicy(o: Ownership, op: string, subject: string, p: PolicySpec): void {
  if (p.priority < o.priorityMin || p.priority > o.priorityMax) {
    throw new KernelError(
      'KERNEL_NOT_OWNED',
      op,
      subject,
      `priority ${p.priority} is outside coati's policy priority band ${o.priorityMin}..${o.priorityMax}`,
    );
  }
  for (const t of p.templates) assertReqid(o, op, subject, t.reqid);
}
