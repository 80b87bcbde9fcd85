/**
 * Every coatictl command against three real coatid processes in network
 * namespaces (memory kernel backend, PSK, start = "now"), through the real
 * admin socket. IKE runs over real UDP between the namespaces.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main as coatictlMain } from '../../src/control/cli/coatictl.js';
import type { PeerStatus, StatusReport } from '../../src/control/types.js';
import { partition } from '../harness/faults.js';
import { Lab, waitFor } from '../harness/netns.js';
import { ctl, ctlProcess, DaemonMesh, type DaemonNode } from '../helpers/daemon.js';

let lab: Lab;
let mesh: DaemonMesh;
let n1: DaemonNode;
let n2: DaemonNode;
let n3: DaemonNode;

const peerOf = (st: StatusReport | undefined, name: string): PeerStatus => {
  const p = st?.peers.find((x) => x.name === name);
  if (!p) throw new Error(`no peer ${name} in ${JSON.stringify(st)}`);
  return p;
};

/** Both ends of a relationship: the same IKE SPI pair, complementary roles, Child SPIs crosswise equal. */
function expectConsistent(a: PeerStatus, b: PeerStatus): void {
  expect(a.state).toBe('up');
  expect(b.state).toBe('up');
  expect(a.ike?.spiI).toBe(b.ike?.spiI);
  expect(a.ike?.spiR).toBe(b.ike?.spiR);
  expect(a.ike?.spiI).toMatch(/^[0-9a-f]{16}$/);
  expect(a.ike?.spiR).toMatch(/^[0-9a-f]{16}$/);
  expect(new Set([a.ike?.role, b.ike?.role])).toEqual(new Set(['initiator', 'responder']));
  const live = (p: PeerStatus) => p.children.filter((c) => c.state === 'installed');
  expect(live(a)).toHaveLength(1);
  expect(live(b)).toHaveLength(1);
  expect(live(a)[0]?.spiIn).toBe(live(b)[0]?.spiOut);
  expect(live(a)[0]?.spiOut).toBe(live(b)[0]?.spiIn);
}

async function pair(a: DaemonNode, b: DaemonNode): Promise<[PeerStatus, PeerStatus]> {
  return [peerOf(await mesh.status(a), b.name), peerOf(await mesh.status(b), a.name)];
}

/** Waits until both ends show one settled, consistent relationship. */
async function settled(a: DaemonNode, b: DaemonNode, timeoutMs = 15_000): Promise<[PeerStatus, PeerStatus]> {
  return waitFor(
    `${a.name} <-> ${b.name} up and consistent`,
    async () => {
      const [x, y] = await pair(a, b);
      try {
        expectConsistent(x, y);
        return [x, y] as [PeerStatus, PeerStatus];
      } catch {
        return undefined;
      }
    },
    { timeoutMs, intervalMs: 100, context: () => mesh.logs() },
  );
}

beforeAll(async () => {
  lab = await Lab.create({ label: 'daemon-control' });
  mesh = await DaemonMesh.create(lab, {
    n: 3,
    // node2 does not re-initiate to node1 after node1 deletes (dpd_action "clear"): a terminate
    // on node1 then leaves the relationship down instead of node2 restoring it at once.
    peerExtra: (n, p) => (n.name === 'node2' && p.name === 'node1' ? 'dpd_action = "clear"\n' : ''),
  });
  [n1, n2, n3] = mesh.nodes as [DaemonNode, DaemonNode, DaemonNode];
  mesh.startAll();
  await mesh.waitMesh();
  await mesh.waitStable();
});

afterAll(async () => {
  await lab?.destroy();
});

describe('coatictl against running daemons', () => {
  it('status --json: both ends of every relationship visible, SPIs crosswise equal', async () => {
    for (const [a, b] of [
      [n1, n2],
      [n1, n3],
      [n2, n3],
    ] as const) {
      const [x, y] = await settled(a, b);
      expect(x.address).toBe(b.addr);
      expect(y.address).toBe(a.addr);
      expect(x.remoteId).toBe(`fqdn:${b.name}.test`);
      expect(x.ike?.algorithms).toContain('aes256gcm16');
    }
    const st = await mesh.status(n1);
    expect(st?.host).toBe('node1');
    expect(st?.localAddresses).toContain(n1.addr);
    expect(st?.peers.map((p) => p.name)).toEqual(['node2', 'node3']);
  });

  it('status (table) and status <peer> (detail)', async () => {
    const [x] = await settled(n1, n2);
    const table = await ctl(n1, 'status');
    expect(table.code).toBe(0);
    expect(table.stderr).toBe('');
    const rows = table.stdout.split('\n');
    for (const peer of ['node2', 'node3']) {
      const row = rows.find((l) => l.includes(peer));
      expect(row, table.stdout).toBeDefined();
      expect(row).toMatch(/\bup\b/);
    }
    const detail = await ctl(n1, 'status', 'node2');
    expect(detail.code).toBe(0);
    expect(detail.stdout).toContain('node2');
    expect(detail.stdout).toContain(x.ike?.spiI as string);
    expect(detail.stdout).toContain(x.children[0]?.spiIn as string);
    const one = await mesh.status(n1, 'node3');
    expect(one?.peers.map((p) => p.name)).toEqual(['node3']);
  });
});

describe('actions', () => {
  it('terminate: the relationship goes down on both ends; initiate brings it back', async () => {
    await settled(n1, n2);
    const t = await ctl(n1, 'terminate', 'node2');
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout).toMatch(/node2/);
    const lastN1 = await mesh.status(n1);
    const after = await waitFor(
      'node1 deleted its SAs with node2',
      async () => {
        const p = peerOf(await mesh.status(n1), 'node2');
        return p.children.length === 0 ? p : undefined;
      },
      { context: () => `${JSON.stringify(peerOf(lastN1, 'node2'))}\n${mesh.logs(60)}` },
    );
    expect(after.state).toBe('idle'); // the operator wants it down
    expect(after.ike).toBeUndefined();
    const other = await waitFor(
      'node2 sees node1 gone',
      async () => {
        const p = peerOf(await mesh.status(n2), 'node1');
        return p.ike === undefined ? p : undefined;
      },
      { context: () => mesh.logs(60) },
    );
    expect(['down', 'idle']).toContain(other.state);
    const table = await ctl(n1, 'status');
    expect(table.stdout.split('\n').find((l) => l.includes('node2'))).toMatch(/\bidle\b/);
    const i = await ctl(n1, 'initiate', 'node2', '--json');
    expect(i.code, i.stdout + i.stderr).toBe(0);
    const r = JSON.parse(i.stdout);
    expect(r.ok).toBe(true);
    expect(r.peers[0]).toMatchObject({ peer: 'node2', ok: true });
    await settled(n1, n2);
    const again = await ctl(n1, 'initiate', 'node2');
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('already up');
  });

  it('rekey --child: new Child SPIs, same IKE SA, relationship stays up', async () => {
    const [before] = await settled(n1, n3);
    const r = await ctl(n1, 'rekey', 'node3', '--child');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const [after] = await waitFor(
      'child rekeyed on both ends',
      async () => {
        const [x, y] = await settled(n1, n3);
        return x.children[0]?.spiIn !== before.children[0]?.spiIn ? ([x, y] as const) : undefined;
      },
      { timeoutMs: 10_000, context: () => mesh.logs() },
    );
    expect(after.children[0]?.spiOut).not.toBe(before.children[0]?.spiOut);
    expect(after.ike?.spiI).toBe(before.ike?.spiI);
    expect(after.ike?.spiR).toBe(before.ike?.spiR);
  });

  it('rekey --ike: new IKE SPIs, Child SA kept, relationship stays up', async () => {
    const [before] = await settled(n1, n3);
    const r = await ctl(n1, 'rekey', 'node3', '--ike');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const [after] = await waitFor(
      'IKE SA rekeyed on both ends',
      async () => {
        const [x, y] = await settled(n1, n3);
        return x.ike?.spiI !== before.ike?.spiI ? ([x, y] as const) : undefined;
      },
      { timeoutMs: 10_000, context: () => mesh.logs() },
    );
    expect(after.ike?.spiR).not.toBe(before.ike?.spiR);
    expect(after.children[0]?.spiIn).toBe(before.children[0]?.spiIn);
    expect(after.state).toBe('up');
  });

  it('dpd: alive with a round-trip time', async () => {
    await settled(n2, n3);
    const r = await ctl(n2, 'dpd', 'node3', '--json');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const res = JSON.parse(r.stdout);
    expect(res.peers[0]).toMatchObject({ peer: 'node3', ok: true, liveness: 'alive' });
    expect(res.peers[0].rttMs).toBeGreaterThanOrEqual(0);
    expect(res.peers[0].rttMs).toBeLessThan(2000);
    const all = await ctl(n2, 'dpd', '--all');
    expect(all.code, all.stdout).toBe(0);
    expect(all.stdout).toContain('node1');
    expect(all.stdout).toContain('node3');
  });

  it('keylog on: key log files appear with tshark table lines; off: no more lines', async () => {
    const on = await ctl(n2, 'keylog', 'on');
    expect(on.code, on.stderr).toBe(0);
    const dir = join(n2.stateDir, 'keylog');
    expect(on.stdout).toContain(dir);
    await settled(n2, n1);
    expect((await ctl(n2, 'rekey', 'node1', '--ike')).code).toBe(0);
    expect((await ctl(n2, 'rekey', 'node1', '--child')).code).toBe(0);
    const ike = join(dir, 'ikev2_decryption_table');
    const esp = join(dir, 'esp_sa');
    await waitFor('key log files', () => existsSync(ike) && existsSync(esp), { timeoutMs: 10_000 });
    const [p] = await settled(n2, n1);
    await waitFor('esp lines for the rekeyed child', () =>
      readFileSync(esp, 'utf8').includes(p.children[0]?.spiIn as string),
    );
    // ikev2_decryption_table: SPIi,SPIr,SK_ei,SK_er,"encr",SK_ai,SK_ar,"integ" (hex, no 0x)
    const ikeLines = readFileSync(ike, 'utf8').trim().split('\n');
    const row = ikeLines.find((l) => l.startsWith(`${p.ike?.spiI},${p.ike?.spiR},`));
    expect(row, ikeLines.join('\n')).toBeDefined();
    const cols = row?.split(',') ?? [];
    expect(cols).toHaveLength(8);
    expect(cols[2]).toMatch(/^[0-9a-f]{64,}$/);
    expect(cols[4]).toMatch(/^"AES-GCM-256/);
    // esp_sa: "IPv4","src","dst","0xSPI","encr","key","auth","key"
    const espLine = readFileSync(esp, 'utf8')
      .split('\n')
      .find((l) => l.toLowerCase().includes(`0x${p.children[0]?.spiIn}`));
    expect(espLine).toMatch(/^"IPv4","10\.78\.0\.1","10\.78\.0\.2","0x[0-9a-f]{8}","AES-GCM/i);
    const off = await ctl(n2, 'keylog', 'off');
    expect(off.code).toBe(0);
    const size = readFileSync(esp, 'utf8').length;
    expect((await ctl(n2, 'rekey', 'node1', '--child')).code).toBe(0);
    await settled(n2, n1);
    expect(readFileSync(esp, 'utf8').length).toBe(size);
  });

  it('events: follows peer.down / peer.up when a peer is terminated and re-initiated', async () => {
    // Followed on node2 while node3 (the other end) terminates and re-initiates: node2 sees
    // the Delete (peer.down, "deleted by peer") and then the new IKE SA (peer.up).
    await settled(n3, n2);
    let out = '';
    const ac = new AbortController();
    const done = coatictlMain(['--socket', n2.sock, 'events', '--json'], {
      stdout: { write: (s: string) => (out += s) },
      stderr: { write: () => {} },
      env: { NO_COLOR: '1' },
      signal: ac.signal,
    });
    const events = () =>
      out
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { type: string; peer?: string; time: string });
    await new Promise((r) => setTimeout(r, 300)); // subscribed
    expect((await ctl(n3, 'terminate', 'node2')).code).toBe(0);
    await waitFor('peer.down in the event stream', () =>
      events().some((e) => e.type === 'peer.down' && e.peer === 'node3'),
    );
    expect((await ctl(n3, 'initiate', 'node2')).code).toBe(0);
    await waitFor('peer.up in the event stream', () =>
      events().some((e) => e.type === 'peer.up' && e.peer === 'node3'),
    );
    ac.abort();
    expect(await done).toBe(0);
    const evs = events();
    const down = evs.findIndex((e) => e.type === 'peer.down' && e.peer === 'node3');
    const up = evs.findLastIndex((e) => e.type === 'peer.up' && e.peer === 'node3');
    expect(down).toBeLessThan(up);
    for (const e of evs) expect(Number.isNaN(Date.parse(e.time))).toBe(false);
    await settled(n3, n2);
  });
});

describe('exit codes', () => {
  it('unknown peer: 1 (daemon says UNKNOWN_PEER); bad peer name or usage: 2', async () => {
    const r = await ctl(n1, 'initiate', 'nosuchpeer');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('UNKNOWN_PEER');
    const s = await ctl(n1, 'status', 'nosuchpeer');
    expect(s.code).toBe(1);
    expect(s.stderr).toContain('UNKNOWN_PEER');
    expect((await ctl(n1, 'rekey', 'node2', '--ike', '--child')).code).toBe(2);
    expect((await ctl(n1, 'frobnicate')).code).toBe(2);
  });

  it('compiled coatictl: 0 against a running daemon, 3 when the daemon is not running', async () => {
    const ok = await ctlProcess(['--socket', n1.sock, 'status', '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    expect((JSON.parse(ok.stdout) as StatusReport).host).toBe('node1');
    const gone = await ctlProcess(['--socket', join(lab.dir, 'nobody-home.sock'), 'status']);
    expect(gone.code).toBe(3);
    expect(gone.stderr).toMatch(/coatictl: /);
  });
});

describe('mesh-check over the status --json of every daemon', () => {
  const reports = async (): Promise<string[]> => {
    const files: string[] = [];
    for (const n of mesh.nodes) {
      const r = await ctl(n, 'status', '--json');
      expect(r.code, r.stderr).toBe(0);
      const f = join(lab.dir, `${n.name}-status-${files.length}-${Date.now()}.json`);
      writeFileSync(f, r.stdout);
      files.push(f);
    }
    return files;
  };

  it('consistent mesh: exit 0; a Delete lost on the way: exit 1 naming the asymmetric pair', async () => {
    for (const [a, b] of [
      [n1, n2],
      [n1, n3],
      [n2, n3],
    ] as const)
      await settled(a, b);
    const good = await ctlProcess(['mesh-check', ...(await reports())]);
    expect(good.code, good.stdout + good.stderr).toBe(0);
    expect(good.stdout).toMatch(/consistent: 3 hosts, 3 pairs checked, 0 errors/);

    // node1 terminates node2 while the link between them drops everything: node1's Delete
    // never arrives, node2 (DPD every 30 s) still believes in the IKE SA.
    const cut = await partition(n1.ns, { peer: n2.addr });
    try {
      const t = await ctl(n1, 'terminate', 'node2');
      expect(t.code).toBe(0);
      await waitFor('node1 gave up on the Delete', async () => !peerOf(await mesh.status(n1), 'node2').ike, {
        timeoutMs: 10_000,
      });
    } finally {
      await cut.heal();
    }
    expect(peerOf(await mesh.status(n2), 'node1').state).toBe('up');
    const files = await reports();
    const bad = await ctlProcess(['mesh-check', ...files]);
    expect(bad.code, bad.stdout).toBe(1);
    expect(bad.stdout).toMatch(/INCONSISTENT: 3 hosts, 3 pairs checked, [1-9]/);
    const errors = bad.stdout.split('\n').filter((l) => l.startsWith('ERROR'));
    expect(errors.length, bad.stdout).toBeGreaterThan(0);
    for (const l of errors) {
      expect(l).toContain('node1');
      expect(l).toContain('node2');
    }
    expect(
      errors.some((l) => /asymmetric/.test(l)),
      bad.stdout,
    ).toBe(true);
    // The same through stdin, machine-readable.
    const viaStdin = await ctlProcess(['mesh-check', '--json', '-', files[1] as string, files[2] as string], {
      input: readFileSync(files[0] as string, 'utf8'),
    });
    expect(viaStdin.code).toBe(1);
    const res = JSON.parse(viaStdin.stdout) as { ok: boolean; issues: { kind: string; hosts: string[] }[] };
    expect(res.ok).toBe(false);
    expect(res.issues.find((i) => i.kind === 'asymmetric')?.hosts.sort()).toEqual(['node1', 'node2']);
    // Repair: initiating again makes the mesh consistent.
    expect((await ctl(n1, 'initiate', 'node2')).code).toBe(0);
    await settled(n1, n2);
    const repaired = await ctlProcess(['mesh-check', ...(await reports())]);
    expect(repaired.code, repaired.stdout).toBe(0);
  });

  it('a daemon that is not running: coatictl exits 3', async () => {
    n3.proc?.kill('SIGKILL');
    await n3.proc?.wait(5000);
    const r = await ctl(n3, 'status');
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/coatictl: /);
  });
});
