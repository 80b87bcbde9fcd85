/**
 * Configuration for an in-process Daemon in a harness namespace (memory kernel, one PSK
 * peer): the directory layout coatid expects, its coati.conf and the peer's file.
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { Daemon } from '../../src/daemon/daemon.js';
import { MemoryKernel } from '../../src/kernel/memory/memory-kernel.js';
import type { KernelIpsec } from '../../src/kernel/types.js';
import { Lab } from '../harness/netns.js';

const PSK = 'coati-inproc-daemon-test-NOT-A-SECRET';

/** Writes `dir`'s coati.conf (listening on `self`) and `peers.d/<peer>.toml`; returns the conf path. */
export function writeNode(
  dir: string,
  self: string,
  peer: string,
  peerAddr: string,
  start: 'now' | 'none',
  version: 1 | 2 = 1,
  startup = '',
): string {
  for (const d of ['peers.d', 'secrets', 'state']) mkdirSync(join(dir, d), { recursive: true });
  chmodSync(join(dir, 'secrets'), 0o700);
  writeFileSync(join(dir, 'secrets', 'pair.psk'), `${PSK}\n`, { mode: 0o600 });
  const conf = join(dir, 'coati.conf');
  writeFileSync(
    conf,
    `[daemon]
state_dir = "${join(dir, 'state')}"
socket = "${join(dir, 'coati.sock')}"
listen = ["${self}"]
shutdown = "delete"

[kernel]
backend = "memory"

[startup]
initiation_jitter = "0s"
${startup}

[defaults]
local_address = "${self}"
psk_file = "secrets/pair.psk"
ike_proposals = "aes128-sha256-modp2048"
esp_proposals = "aes128-sha256-modp2048"
start = "${start}"
dpd_delay = "0s"
`,
  );
  writePeer(dir, peer, peerAddr, version);
  return conf;
}

/** (Re)writes the peer's file in `dir`'s peers.d (`extra`: more lines of it). */
export function writePeer(dir: string, peer: string, peerAddr: string, version: 1 | 2, extra = ''): void {
  writeFileSync(join(dir, 'peers.d', `${peer}.toml`), `version = ${version}\naddress = "${peerAddr}"\n${extra}`);
}

export interface InprocStart {
  /** The daemon's namespace (its IKE socket is opened there). */
  netns: string;
  /** Its log lines are pushed here, prefixed with `tag` when given. */
  logs: string[];
  tag?: string;
  /** Default: a fresh MemoryKernel. */
  kernel?: KernelIpsec;
}

/**
 * A harness lab for the describe block it is called in, and the in-process daemons the
 * tests start in it (`start`): stopped (kernel state removed) and the lab destroyed after all.
 */
export function useInprocLab(label: string): {
  lab: () => Lab;
  daemons: Daemon[];
  start: (configPath: string, o: InprocStart) => Promise<Daemon>;
} {
  let lab: Lab | undefined;
  const daemons: Daemon[] = [];
  beforeAll(async () => {
    lab = await Lab.create({ label });
  });
  afterAll(async () => {
    for (const d of daemons) await d.stop({ keepKernel: false }).catch(() => {});
    await lab?.destroy();
  });
  return {
    lab: () => {
      if (!lab) throw new Error(`the lab "${label}" was not created`);
      return lab;
    },
    daemons,
    start: async (configPath, o) => {
      const d = new Daemon({
        configPath,
        kernel: o.kernel ?? new MemoryKernel(),
        netns: o.netns,
        logSink: (l) => o.logs.push(o.tag ? `${o.tag} ${l}` : l),
      });
      daemons.push(d);
      await d.start();
      return d;
    },
  };
}
