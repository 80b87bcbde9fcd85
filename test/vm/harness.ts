/**
 * Host side of the coati test VM: boots a stock Debian kernel (real ESP, XFRM,
 * kernel crypto) under qemu TCG with the repository shared over 9p at /repo,
 * and runs bash commands in it. One VM serves many commands: the guest init
 * (test/vm/guest/init) reads `RUN <id> <timeout>` lines from the serial
 * console, runs /repo/.cache/vm/runs/<id>/cmd.sh with stdout/stderr written
 * to that folder (the console is slow), and answers `@@COATI-DONE <id> <rc>@@`.
 * Prepare the kernel and initramfs with `bash .ci/vm-setup.sh`.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root: the nearest folder above this file with a package.json (test/vm or dist/test/vm). */
export const REPO_ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return resolve(dir);
})();
export const VM_CACHE = join(REPO_ROOT, '.cache', 'vm');
const SETUP_HINT = 'run bash .ci/vm-setup.sh first';

export interface VmAssets {
  kver: string;
  vmlinux: string;
  initrd: string;
}

/** The kernel/initramfs prepared by .ci/vm-setup.sh; throws with the setup hint when missing. */
export function vmAssets(): VmAssets {
  try {
    execFileSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error(`coati VM: qemu-system-x86_64 is not installed: ${SETUP_HINT}`);
  }
  const envFile = join(VM_CACHE, 'current.env');
  if (!existsSync(envFile)) throw new Error(`coati VM: no kernel cache (${envFile}): ${SETUP_HINT}`);
  const env = new Map<string, string>();
  for (const line of readFileSync(envFile, 'utf8').split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) env.set(line.slice(0, eq), line.slice(eq + 1));
  }
  const assets = { kver: env.get('KVER') ?? '', vmlinux: env.get('VMLINUX') ?? '', initrd: env.get('INITRD') ?? '' };
  for (const f of [assets.vmlinux, assets.initrd]) {
    if (!f || !existsSync(f)) throw new Error(`coati VM: ${f || 'kernel image'} is missing: ${SETUP_HINT}`);
  }
  // The initramfs carries a copy of node (the native addon must match its ABI) and the guest init.
  const nodeBin = env.get('NODE_BIN') ?? '';
  const st = nodeBin && existsSync(nodeBin) ? statSync(nodeBin) : undefined;
  if (
    !st ||
    `${st.size}-${Math.floor(st.mtimeMs / 1000)}` !== env.get('NODE_STAT') ||
    nodeBin !== realpathSync(process.execPath)
  ) {
    throw new Error(
      `coati VM: the initramfs was built for another node binary than ${process.execPath}: ${SETUP_HINT}`,
    );
  }
  const setupHash = createHash('sha256')
    .update(readFileSync(join(REPO_ROOT, '.ci', 'vm-setup.sh')))
    .update(readFileSync(join(REPO_ROOT, 'test', 'vm', 'guest', 'init')))
    .digest('hex')
    .slice(0, 12);
  if (setupHash !== env.get('SETUP_HASH')) {
    throw new Error(
      `coati VM: .ci/vm-setup.sh or test/vm/guest/init changed since the initramfs was built: ${SETUP_HINT}`,
    );
  }
  return assets;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface BootOptions {
  memory?: string;
  cpus?: number;
  bootTimeoutMs?: number;
  /** Extra kernel command line arguments. */
  append?: string;
}

let seq = 0;

export class Vm {
  /** Milliseconds from spawning qemu to the guest's READY marker. */
  bootMs = 0;
  /** The guest's own READY line (uptime and module-loading times). */
  readyLine = '';
  private console = '';
  private waiters: Array<() => void> = [];
  private exited = false;
  private readonly runsDir: string;

  private constructor(
    private readonly proc: ChildProcess,
    private readonly tag: string,
  ) {
    this.runsDir = join(VM_CACHE, 'runs');
    proc.stdout?.setEncoding('latin1');
    proc.stdout?.on('data', (chunk: string) => {
      this.console += chunk;
      // Keep the buffer bounded; markers are looked up in the tail.
      if (this.console.length > 1 << 20) this.console = this.console.slice(-(1 << 19));
      this.wake();
    });
    proc.stderr?.setEncoding('latin1');
    proc.stderr?.on('data', (chunk: string) => {
      this.console += chunk;
      this.wake();
    });
    proc.on('exit', () => {
      this.exited = true;
      this.wake();
    });
  }

  static async boot(opts: BootOptions = {}): Promise<Vm> {
    const assets = vmAssets();
    const args = [
      '-accel',
      'tcg,thread=multi',
      '-cpu',
      'max',
      '-m',
      opts.memory ?? '2G',
      '-smp',
      String(opts.cpus ?? 2),
      '-nographic',
      '-nodefaults',
      '-no-reboot',
      '-serial',
      'stdio',
      '-monitor',
      'none',
      '-kernel',
      assets.vmlinux,
      '-initrd',
      assets.initrd,
      '-virtfs',
      `local,path=${REPO_ROOT},mount_tag=repo,security_model=none`,
      '-append',
      `console=ttyS0 quiet panic=-1 cryptomgr.notests=1 ${opts.append ?? ''}`.trim(),
    ];
    const t0 = Date.now();
    const proc = spawn('qemu-system-x86_64', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const vm = new Vm(proc, `vm${process.pid}-${Date.now()}`);
    killOnExit.add(proc);
    proc.on('exit', () => killOnExit.delete(proc));
    try {
      const m = await vm.waitFor(/@@COATI-(READY[^@]*|FATAL[^@]*)@@/, opts.bootTimeoutMs ?? 90_000, 'boot');
      if (m[1]?.startsWith('FATAL')) throw new Error(`coati VM: guest init failed: ${m[1]}`);
      vm.readyLine = m[1] ?? '';
    } catch (e) {
      vm.kill();
      throw e;
    }
    vm.bootMs = Date.now() - t0;
    return vm;
  }

  /** Run `script` under bash in the guest (cwd /repo, real ip/bash/node on PATH). */
  async run(script: string, opts: { timeoutMs?: number } = {}): Promise<RunResult> {
    if (this.exited) throw new Error('coati VM: qemu is not running');
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const id = `${this.tag}-${++seq}`;
    const dir = join(this.runsDir, id);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'cmd.sh'), `export PATH=/usr/sbin:/usr/bin:/sbin:/bin\ncd /repo\n${script}\n`);
    const t0 = Date.now();
    this.proc.stdin?.write(`RUN ${id} ${Math.ceil(timeoutMs / 1000)}\n`);
    try {
      // The guest kills the command at its timeout; allow it time to report.
      const m = await this.waitFor(new RegExp(`@@COATI-DONE ${id} (\\d+)@@`), timeoutMs + 15_000, `run ${id}`);
      const read = (f: string) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), 'utf8') : '');
      return { code: Number(m[1]), stdout: read('stdout'), stderr: read('stderr'), ms: Date.now() - t0 };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /** Ask the guest to power off; kill qemu if it does not within a few seconds. */
  async close(): Promise<void> {
    if (this.exited) return;
    this.proc.stdin?.write('EXIT\n');
    const gone = new Promise<void>((res) => this.proc.once('exit', () => res()));
    const timer = setTimeout(() => this.kill(), 5_000);
    await gone;
    clearTimeout(timer);
  }

  kill(): void {
    if (!this.exited) this.proc.kill('SIGKILL');
  }

  /** The last `n` characters of the serial console (for failure messages). */
  consoleTail(n = 3000): string {
    return this.console.slice(-n);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private async waitFor(re: RegExp, timeoutMs: number, what: string): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.console.match(re);
      if (m) return m;
      if (this.exited) throw new Error(`coati VM: qemu exited during ${what}; console:\n${this.consoleTail()}`);
      const left = deadline - Date.now();
      if (left <= 0) {
        this.kill();
        throw new Error(`coati VM: timeout (${timeoutMs} ms) during ${what}; console:\n${this.consoleTail()}`);
      }
      await new Promise<void>((res) => {
        const t = setTimeout(res, Math.min(left, 1000));
        this.waiters.push(() => {
          clearTimeout(t);
          res();
        });
      });
    }
  }
}

const killOnExit = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of killOnExit) p.kill('SIGKILL');
});

/**
 * Compile the project (dist/ is what the guest runs from the 9p share) and
 * check the native addon exists. Type errors elsewhere in the tree do not
 * stop tsc from emitting; a missing output file does fail.
 */
export async function buildForGuest(requiredOutputs: string[]): Promise<void> {
  await new Promise<void>((res) => {
    const p = spawn('npx', ['tsc', '-p', '.'], { cwd: REPO_ROOT, stdio: 'ignore' });
    p.on('exit', () => res());
    p.on('error', () => res());
  });
  for (const f of requiredOutputs) {
    if (!existsSync(join(REPO_ROOT, f))) throw new Error(`coati VM: ${f} is missing after \`npx tsc -p .\``);
  }
}
