/**
 * Host side of the guest scripts that run real `coatid` daemons in one VM
 * (daemon.test.ts, ikev1.test.ts, restart.test.ts; guest side in
 * guest/pair-lib.ts): compile while the VM boots, pack coatid and the host's
 * tools into `.cache/vm/<prefix>-pkg.tar` / `<prefix>-tools.tar` (pack.ts),
 * run `guest/<script>.js --pkg-tar ... --tools-tar ... <args>` once, and
 * collect its `RESULT {json}` lines by name (each becomes one vitest test).
 */
import { expect } from 'vitest';
import { buildForGuest, type RunResult, Vm, vmAssets } from './harness.js';
import { packCoati, packHostTools } from './pack.js';

/** One `RESULT` line of a guest script. */
export interface GuestResult<D = Record<string, unknown>> {
  name: string;
  ok: boolean;
  detail: D;
}

/** pair-lib.ts `StreamResult`, as far as the host side reads it. */
export interface StreamSummary {
  name: string;
  sent: number;
  received: number;
  lost: number;
  longestGapMs: number;
  longestSendGapMs: number;
}

/** pair-lib.ts `classify` of one capture, as far as the host side reads it. */
export interface WireSummary {
  ike: number;
  esp: number;
  espInUdp: number;
  keepalive: number;
  clear: number;
  clearIn: number;
  clearSamples: string[];
}

/** pair-lib.ts `KSa` (one kernel ESP SA), as far as the host side reads it. */
export interface KernelSa {
  src: string;
  dst: string;
  spi: string;
  mode: string;
  aead: string;
  enc: string;
  auth: string;
  encap: string;
  bytes: number;
  packets: number;
}

/** What the pair scenarios of daemon-e2e.ts and ikev1-e2e.ts report; `W`: their captures. */
export type PairResult<W> = GuestResult<
  Record<string, unknown> & {
    problems?: string[];
    error?: string;
    kernel?: Record<string, KernelSa[]>;
    stream?: StreamSummary;
    streams?: StreamSummary[];
    wire?: W | string;
    replies?: number;
    timeline?: string[];
  }
>;

export interface GuestSuiteOptions {
  /** `guest/<script>.ts`, e.g. `daemon-e2e`. */
  script: string;
  /** Tarball names `<prefix>-pkg.tar` and `<prefix>-tools.tar`: each test file its own (vitest runs files in parallel). */
  prefix: string;
  /** The host tools to pack (see `packHostTools`). */
  tools: string[][];
  /** More arguments for the guest script. */
  args?: string;
  timeoutMs: number;
}

export class GuestSuite<R extends GuestResult = GuestResult> {
  vm: Vm | undefined;
  raw: RunResult = { code: -1, stdout: '', stderr: 'the guest script did not run', ms: 0 };
  /** The host tools packed for the guest. */
  tools: string[] = [];
  readonly results = new Map<string, R>();

  /** For `beforeAll`: boots the VM, runs the guest script once and collects its results. */
  async run(o: GuestSuiteOptions): Promise<void> {
    vmAssets(); // fails with "run bash .ci/vm-setup.sh first" when qemu or the kernel cache is missing
    // The guest runs dist/ from the 9p share: compile while the VM boots.
    const build = buildForGuest([
      `dist/test/vm/guest/${o.script}.js`,
      'dist/test/vm/guest/pair-lib.js',
      'dist/src/daemon/coatid.js',
      'dist/src/control/cli/coatictl.js',
    ]);
    build.catch(() => {});
    this.vm = await Vm.boot();
    await build;
    // coatid from 9p starts in 10-28 s under TCG: the guest unpacks this tarball into tmpfs instead.
    packCoati(`${o.prefix}-pkg.tar`);
    this.tools = packHostTools(`${o.prefix}-tools.tar`, o.tools);
    this.raw = await this.vm.run(
      `node dist/test/vm/guest/${o.script}.js --pkg-tar ${o.prefix}-pkg.tar --tools-tar ${o.prefix}-tools.tar ${o.args ?? ''}`,
      { timeoutMs: o.timeoutMs },
    );
    for (const m of this.raw.stdout.matchAll(/^RESULT (.*)$/gm)) {
      const r = JSON.parse(m[1] as string) as R;
      this.results.set(r.name, r);
    }
  }

  async close(): Promise<void> {
    await this.vm?.close();
  }

  /** The guest's exit status and output (the tail), for failure messages. */
  explain(): string {
    const r = this.raw;
    return `exit ${r.code}\n--- stdout\n${r.stdout.slice(-20_000)}\n--- stderr\n${r.stderr.slice(-4000)}`;
  }

  /** The result named `name` (fails the test when the guest did not report it). */
  get(name: string): R {
    const r = this.results.get(name);
    expect(r, `no result for "${name}"; ${this.explain()}`).toBeDefined();
    return r as R;
  }

  /** The guest reported no `setup` failure and exited 0. */
  expectRanToTheEnd(): void {
    expect(this.results.has('setup'), this.explain()).toBe(false);
    expect(this.raw.code, this.explain()).toBe(0);
  }
}

/** A result's detail for failure messages. */
export const show = (r: GuestResult<unknown>) => JSON.stringify(r.detail, null, 1).slice(0, 30_000);

/** Loss and gaps of each stream, one line. */
export function streamLine(ss: StreamSummary[] | undefined): string {
  return (ss ?? [])
    .map(
      (s) => `${s.name} ${s.lost} lost of ${s.sent}, longest gap ${s.longestGapMs} ms (send ${s.longestSendGapMs} ms)`,
    )
    .join('; ');
}
