/**
 * Network namespaces for tests: each test file creates its own namespaces
 * (`coati-t-<random>`) and removes them in afterAll. These tests need root and
 * iproute2; without them they fail with a message saying so (never skip).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export function requireNetnsPrivileges(): void {
  if (process.getuid?.() !== 0) {
    throw new Error('test/netns needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN for ip netns); run as root or in CI');
  }
  try {
    execFileSync('ip', ['-V'], { stdio: 'pipe' });
  } catch {
    throw new Error('test/netns needs iproute2 (`ip`) on PATH: apt-get install iproute2');
  }
}

export function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export class Netns {
  readonly name = `coati-t-${randomBytes(4).toString('hex')}`;
  constructor() {
    ip('netns', 'add', this.name);
    this.ip('link', 'set', 'lo', 'up');
  }
  /** Runs `ip` inside the namespace. */
  ip(...args: string[]): string {
    return ip('-n', this.name, ...args);
  }
  /** Runs a command inside the namespace; returns status and output (never throws on exit code). */
  exec(cmd: string[]): { status: number; out: string } {
    try {
      return {
        status: 0,
        out: execFileSync('ip', ['netns', 'exec', this.name, ...cmd], { encoding: 'utf8', stdio: 'pipe' }),
      };
    } catch (err) {
      const e = err as { status?: number; stderr?: string };
      return { status: e.status ?? -1, out: e.stderr ?? '' };
    }
  }
  delete(): void {
    try {
      ip('netns', 'del', this.name);
    } catch {
      // already gone
    }
  }
}

export async function waitFor<T>(what: string, fn: () => T | undefined, timeoutMs = 3000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
