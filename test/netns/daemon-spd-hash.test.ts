/**
 * `[kernel] spd_hash_v4 = "auto"`: a coatid with the xfrm backend (host kernel:
 * policies work without ESP) and per-host /24 and /28 subnets sets the
 * namespace's SPD hash thresholds to the shortest configured local and remote
 * prefixes at start, and lowers them again on reload when a peer with a
 * shorter subnet is added; an explicit "L/R" is set as written. Read back with
 * `ip -s -s xfrm policy count`, the kernel's own report.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, type Netns, type Proc, waitFor } from '../harness/netns.js';
import { COATID, ctl, requireBuilt } from '../helpers/daemon.js';

let lab: Lab;
let ns: Netns;
let dir: string;
let proc: Proc | undefined;

const peer = (name: string, addr: string, local: string, remote: string) => `name = "${name}"
address = "${addr}"
remote_id = "fqdn:${name}.test"
start = "none"

[[children]]
name = "net"
mode = "tunnel"
local_ts = "${local}"
remote_ts = "${remote}"
`;

async function thresholds(): Promise<{ v4: string; v6: string }> {
  const out = await ns.exec(['ip', '-s', '-s', 'xfrm', 'policy', 'count']);
  const v4 = /SPD IPv4 thresholds: local (\d+) remote (\d+)/.exec(out.stdout);
  const v6 = /SPD IPv6 thresholds: local (\d+) remote (\d+)/.exec(out.stdout);
  return { v4: `${v4?.[1]}/${v4?.[2]}`, v6: `${v6?.[1]}/${v6?.[2]}` };
}

function start(kernelLines: string): void {
  writeFileSync(
    join(dir, 'coati.conf'),
    `[daemon]
state_dir = "${join(dir, 'state')}"
socket = "${join(dir, 'coati.sock')}"
listen = ["10.83.0.1"]

[kernel]
backend = "xfrm"
${kernelLines}

[defaults]
local_address = "10.83.0.1"
local_id = "fqdn:me.test"
psk_file = "secrets/mesh.psk"
`,
  );
  proc = ns.spawn([process.execPath, COATID, '--config', join(dir, 'coati.conf')], {
    logFile: join(dir, 'coatid.log'),
  });
}

async function waitUp(): Promise<void> {
  await waitFor('coatid answering', async () => (await ctl({ sock: join(dir, 'coati.sock') }, 'status')).code === 0, {
    timeoutMs: 20_000,
    intervalMs: 100,
    context: () => proc?.logTail(30) ?? '',
  });
}

beforeAll(async () => {
  requireBuilt();
  lab = await Lab.create({ label: 'spd-hash' });
  ns = await lab.netns('node');
  await ns.ip('link', 'set', 'lo', 'up');
  await ns.ip('addr', 'add', '10.83.0.1/24', 'dev', 'lo');
  dir = lab.subdir('node');
  mkdirSync(join(dir, 'peers.d'), { recursive: true });
  mkdirSync(join(dir, 'secrets'), { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, 'secrets', 'mesh.psk'), 'spd-hash-test-psk-NOT-A-SECRET\n', { mode: 0o600 });
  writeFileSync(join(dir, 'peers.d', 'a.toml'), peer('a', '10.83.0.2', '10.1.0.0/24', '10.2.0.0/24'));
  writeFileSync(join(dir, 'peers.d', 'b.toml'), peer('b', '10.83.0.3', '10.1.0.0/24', '10.3.0.16/28'));
});

afterAll(() => lab?.destroy());

describe('SPD hash thresholds from the configuration', () => {
  it('"auto" sets the shortest configured prefixes at start, and lowers them on reload', async () => {
    expect(await thresholds()).toEqual({ v4: '32/32', v6: '128/128' });
    start('spd_hash_v4 = "auto"\nspd_hash_v6 = "auto"');
    await waitUp();
    // local /24 (both peers), remote: /24 and /28 → 24; no IPv6 selectors: v6 untouched.
    expect(await thresholds()).toEqual({ v4: '24/24', v6: '128/128' });
    expect(proc?.logTail(50)).toMatch(/SPD hash thresholds set.*v4 24\/24/);

    writeFileSync(join(dir, 'peers.d', 'c.toml'), peer('c', '10.83.0.4', '10.1.0.0/25', '10.4.0.0/16'));
    const r = await ctl({ sock: join(dir, 'coati.sock') }, 'reload');
    expect(r.code).toBe(0);
    expect(await thresholds()).toEqual({ v4: '24/16', v6: '128/128' });
    await proc?.stop();
  });

  it('an explicit "L/R" is set as written', async () => {
    start('spd_hash_v4 = "20/22"\nspd_hash_v6 = "64/48"');
    await waitUp();
    expect(await thresholds()).toEqual({ v4: '20/22', v6: '64/48' });
    await proc?.stop();
  });
});
