/**
 * Loader and types for the native addon (native/build/Release/coati_native.node).
 * The addon is built by `npm install` (node-gyp); a missing build is reported
 * as a CoatiError with the command that fixes it, not a bare MODULE_NOT_FOUND.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoatiError } from './errors.js';

/** Shape of errors the addon throws (errno is positive, like the kernel's). */
export interface NativeSystemError extends Error {
  errno: number;
  code: string;
  syscall: string;
}

/** Callback for socket conditions that are not exceptions: 'overrun' (ENOBUFS), 'truncated', 'error'. */
export type NativeEventCallback = (kind: 'overrun' | 'truncated' | 'error', errno: number) => void;

interface NativeHandle {
  readonly fd: number;
  close(): void;
  ref(): void;
  unref(): void;
}

export interface NativeNetlinkSocket extends NativeHandle {
  readonly portId: number;
  send(buf: Buffer): number;
}

export interface NativeUdpSocket extends NativeHandle {
  readonly localPort: number;
  send(buf: Buffer, addr: string, port: number, localAddr?: string, ifindex?: number): number;
}

/** A bound unix datagram socket (unixDgramListen); close() also removes a filesystem path it bound. */
export interface NativeUnixDgramListener extends NativeHandle {
  /** As given: a filesystem path or '@name' (abstract). */
  readonly path: string;
}

export interface NativeAddon {
  readonly abiVersion: number;
  nlOpen(opts: {
    protocol: number;
    groups?: number[];
    /** Network namespace name (under /run/netns) or path; the socket is created there. */
    netns?: string;
    rcvbuf?: number;
    onMessage: (datagram: Buffer, groups: number, senderPid: number) => void;
    onEvent?: NativeEventCallback;
  }): NativeNetlinkSocket;
  udpOpen(opts: {
    family: 4 | 6;
    port: number;
    bindAddress?: string;
    encap?: boolean;
    /** Per-socket IPsec bypass policy (default true). */
    bypass?: boolean;
    /** Receive buffer in bytes (default 4 MiB; SO_RCVBUFFORCE, else capped by rmem_max). */
    rcvbuf?: number;
    netns?: string;
    onMessage: (payload: Buffer, remoteAddr: string, remotePort: number, localAddr: string, ifindex: number) => void;
    onEvent?: NativeEventCallback;
  }): NativeUdpSocket;
  sdNotify(socketPath: string, message: string): void;
  /** Binds a unix datagram socket at `path` ('@name' = abstract) and delivers each datagram. */
  unixDgramListen(path: string, onMessage: (datagram: Buffer) => void): NativeUnixDgramListener;
}

const ABI_VERSION = 2;
let cached: NativeAddon | undefined;

/** Path of the built addon, found from src/ (vitest, tsx) or dist/src/ (plain node). */
export function nativeAddonPath(): string {
  const rel = join('native', 'build', 'Release', 'coati_native.node');
  let dir = dirname(fileURLToPath(import.meta.url));
  // Walk up to the package root: the folder holding native/binding.gyp.
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'native', 'binding.gyp'))) return join(dir, rel);
    dir = dirname(dir);
  }
  return join(dirname(fileURLToPath(import.meta.url)), '..', rel);
}

export function loadNative(): NativeAddon {
  if (cached) return cached;
  const path = nativeAddonPath();
  const require = createRequire(import.meta.url);
  let addon: NativeAddon;
  try {
    addon = require(path) as NativeAddon;
  } catch (err) {
    throw new CoatiError(
      'NATIVE_NOT_BUILT',
      `coati's native addon is not built or cannot load (${path}): run \`npm install\` or \`npm run install\` (needs a C compiler and python3)`,
      { cause: err },
    );
  }
  if (addon.abiVersion !== ABI_VERSION) {
    throw new CoatiError(
      'NATIVE_NOT_BUILT',
      `coati's native addon at ${path} is stale (abi ${addon.abiVersion}, want ${ABI_VERSION}): run \`npm run install\``,
    );
  }
  cached = addon;
  return addon;
}

export function isNativeSystemError(err: unknown): err is NativeSystemError {
  return err instanceof Error && typeof (err as Partial<NativeSystemError>).errno === 'number';
}
