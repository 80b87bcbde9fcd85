/**
 * Configuration reload on a running daemon (coatictl reload and SIGHUP), and
 * `coatid --check-config`. Four real coatid processes in namespaces; node1 is
 * the one reloaded. At first node1 has no peer file for node4 (node4 keeps
 * trying to reach it); the first reload changes node2's file and adds node4.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PeerStatus, ReloadResult } from '../../src/control/types.js';
import { Lab, run, waitFor } from '../harness/netns.js';
import { COATID, ctl, DaemonMesh, type DaemonNode } from '../helpers/daemon.js';

let lab: Lab;
let mesh: DaemonMesh;
let n1: DaemonNode;
let n4: DaemonNode;

interface Spis {
  state: string;
  ike: string;
  child: string;
}

/** The SAs node1 holds with each peer: IKE SPI pair and installed Child SPI pair. */
async function spis(): Promise<Record<string, Spis>> {
  const st = await mesh.status(n1);
  if (!st) throw new Error(`node1 not answering\n${mesh.logs()}`);
  const out: Record<string, Spis> = {};
  for (const p of st.peers) {
    const c = p.children.filter((x) => x.state === 'installed');
    out[p.name] = {
      state: p.state,
      ike: p.ike ? `${p.ike.spiI}/${p.ike.spiR}` : '',
      child: c.map((x) => `${x.spiIn}/${x.spiOut}`).join(','),
    };
  }
  return out;
}

const settledPeer = (p: Spis | undefined) => !!p && p.state === 'up' && p.ike !== '' && /^[^,]+$/.test(p.child);

async function waitSettled(names: string[]): Promise<Record<string, Spis>> {
  return waitFor(
    `node1 settled with ${names.join(', ')}`,
    async () => {
      const s = await spis();
      return names.every((n) => settledPeer(s[n])) ? s : undefined;
    },
    { timeoutMs: 20_000, intervalMs: 100, context: () => mesh.logs() },
  );
}

const peerPath = (name: string) => join(n1.peersDir, `${name}.toml`);

beforeAll(async () => {
  lab = await Lab.create({ label: 'daemon-reload' });
  mesh = await DaemonMesh.create(lab, {
    n: 4,
    hasPeer: (n, p) => !(n.name === 'node1' && p.name === 'node4'),
  });
  n1 = mesh.node('node1');
  n4 = mesh.node('node4');
  mesh.startAll();
  await mesh.waitMesh();
  await mesh.waitStable();
});

afterAll(async () => {
  await lab?.destroy();
});

describe('reload', () => {
  it('coatictl reload: a changed peer gets new SAs, a new peer comes up, unchanged peers keep their SAs exactly', async () => {
    const before = await waitSettled(['node2', 'node3']);
    expect(before.node4).toBeUndefined();
    writeFileSync(peerPath('node2'), `${readFileSync(peerPath('node2'), 'utf8')}ike_lifetime = "3h"\n`);
    writeFileSync(peerPath('node4'), mesh.peerFile(n1, n4));
    const r = await ctl(n1, 'reload', '--json');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const res = JSON.parse(r.stdout) as ReloadResult;
    expect(res).toEqual({ ok: true, added: ['node4'], removed: [], changed: ['node2'], unchanged: ['node3'] });
    const after = await waitFor(
      'node2 re-established with new SAs',
      async () => {
        const s = await waitSettled(['node2', 'node3', 'node4']);
        return s.node2?.ike !== before.node2?.ike ? s : undefined;
      },
      { timeoutMs: 20_000, context: () => mesh.logs() },
    );
    expect(after.node3).toEqual(before.node3);
    expect(after.node2?.child).not.toBe(before.node2?.child);
    expect(after.node2?.child.split('/')[0]).not.toBe(before.node2?.child.split('/')[0]);
    // node4's side agrees with node1's. node4 kept retrying while node1 had no file for
    // it, so its retry may cross node1's initiation after the reload: both ends then hold
    // two IKE SAs for a moment and converge on one (crossing streams). Agreement is
    // polled, not read once (a single read failed in 1 of 2 full runs under load).
    await waitFor(
      'node1 and node4 agree on one IKE SA',
      async () => {
        const p4 = (await mesh.status(n4))?.peers.find((p) => p.name === 'node1');
        const s = await spis();
        const ike4 = p4?.ike ? `${p4.ike.spiI}/${p4.ike.spiR}` : '';
        return p4?.state === 'up' && settledPeer(s.node4) && ike4 === s.node4?.ike ? true : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 100, context: () => mesh.logs() },
    );
    // The changed setting is in effect: the new IKE SA expires within 3 h.
    const p2 = (await mesh.status(n1, 'node2'))?.peers[0] as PeerStatus;
    const life = Date.parse(p2.ike?.expiresAt as string) - Date.parse(p2.ike?.establishedAt as string);
    expect(life).toBeGreaterThan(0);
    expect(life).toBeLessThanOrEqual(3 * 3600_000);
  });

  it('SIGHUP reloads too: only the changed peer renegotiates', async () => {
    const before = await waitSettled(['node2', 'node3', 'node4']);
    writeFileSync(peerPath('node3'), `${readFileSync(peerPath('node3'), 'utf8')}ike_lifetime = "2h"\n`);
    n1.proc?.kill('SIGHUP');
    const after = await waitFor(
      'node3 re-established after SIGHUP',
      async () => {
        const s = await waitSettled(['node2', 'node3', 'node4']);
        return s.node3?.ike !== before.node3?.ike ? s : undefined;
      },
      { timeoutMs: 20_000, context: () => mesh.logs() },
    );
    expect(after.node2).toEqual(before.node2);
    expect(after.node4).toEqual(before.node4);
    expect(after.node3?.child).not.toBe(before.node3?.child);
    expect(n1.proc?.running).toBe(true);
  });

  it('a broken file: reload refused with file:line, the old configuration keeps running', async () => {
    const before = await waitSettled(['node2', 'node3', 'node4']);
    const good = readFileSync(peerPath('node2'), 'utf8');
    // line 3 is the broken one: not a duration
    writeFileSync(
      peerPath('node2'),
      `address = "${mesh.node('node2').addr}"\nremote_id = "fqdn:node2.test"\nike_lifetime = "forever"\n`,
    );
    try {
      const r = await ctl(n1, 'reload');
      expect(r.code).toBe(1);
      expect(r.stdout, r.stdout).toContain(`${peerPath('node2')}:3`);
      expect(r.stdout).toMatch(/configuration rejected, nothing changed/);
      const j = await ctl(n1, 'reload', '--json');
      expect(j.code).toBe(1);
      const res = JSON.parse(j.stdout) as ReloadResult;
      expect(res.ok).toBe(false);
      if (!res.ok) expect(res.errors.some((e) => e.file === peerPath('node2') && e.line === 3)).toBe(true);
      // SIGHUP with the same broken file: nothing changes, the daemon stays and answers.
      n1.proc?.kill('SIGHUP');
      await new Promise((r) => setTimeout(r, 500));
      expect(n1.proc?.running).toBe(true);
      expect(await spis()).toEqual(before);
      // A TOML syntax error (unterminated string on line 2) names the file and a line as well.
      writeFileSync(peerPath('node2'), `address = "${mesh.node('node2').addr}"\nremote_id = "fqdn:node2.test\n`);
      const syntax = await ctl(n1, 'reload');
      expect(syntax.code).toBe(1);
      expect(syntax.stdout, syntax.stdout).toMatch(new RegExp(`${peerPath('node2')}:[23]:`));
      expect(await spis()).toEqual(before);
      // An unknown peer key is an error too (not silently ignored).
      writeFileSync(peerPath('node2'), `${good}frobnicate = 1\n`);
      const unknown = await ctl(n1, 'reload');
      expect(unknown.code).toBe(1);
      expect(unknown.stdout).toContain(`${peerPath('node2')}:`);
      expect(unknown.stdout).toContain('frobnicate');
      expect(await spis()).toEqual(before);
    } finally {
      writeFileSync(peerPath('node2'), good);
    }
    // Fixed again: a reload now is a no-op for every peer.
    const r = await ctl(n1, 'reload', '--json');
    expect(JSON.parse(r.stdout)).toEqual({
      ok: true,
      added: [],
      removed: [],
      changed: [],
      unchanged: ['node2', 'node3', 'node4'],
    });
    expect(await waitSettled(['node2', 'node3', 'node4'])).toEqual(before);
  });
});

describe('coatid --check-config', () => {
  const check = (conf: string) =>
    run([process.execPath, COATID, '--check-config', '--config', conf], { allowFail: true, timeoutMs: 20_000 });

  it('a good configuration: exit 0, "ok" with the peer count', async () => {
    const r = await check(n1.conf);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(`${n1.conf}: ok (3 peers)`);
    expect(r.stderr).toBe('');
  });

  it('a bad configuration: exit 1, every error with file:line', async () => {
    const dir = lab.subdir('bad-config');
    const conf = join(dir, 'coati.conf');
    writeFileSync(
      conf,
      readFileSync(n1.conf, 'utf8')
        .replace(`peers_dir = "peers.d"`, `peers_dir = "${n1.peersDir}"`)
        .replace('backend = "memory"', 'backend = "bogus"'),
    );
    const r = await check(conf);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/configuration has \d+ error\(s\)/);
    const line =
      readFileSync(conf, 'utf8')
        .split('\n')
        .findIndex((l) => l.includes('"bogus"')) + 1;
    expect(r.stderr).toContain(`${conf}:${line}`);
    expect(r.stderr).toContain('bogus');
    const missing = await check(join(dir, 'nonexistent.conf'));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('nonexistent.conf');
  });
});
