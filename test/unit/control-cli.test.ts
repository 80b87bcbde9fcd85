import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type CliIO, main } from '../../src/control/cli/coatictl.js';
import { ControlError } from '../../src/control/errors.js';
import { type ControlServer, startControlServer } from '../../src/control/server.js';
import type { StatusReport } from '../../src/control/types.js';
import { FAKE_NOW, FakeControl } from '../helpers/fake-control.js';

let dir: string;
let sock: string;
let fake: FakeControl;
let server: ControlServer;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'coati-cli-'));
  sock = join(dir, 'coati.sock');
  fake = new FakeControl();
  server = await startControlServer({ path: sock, control: fake, host: 'web1' });
});

afterEach(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

async function run(argv: string[], extra: Partial<CliIO> & { tty?: boolean } = {}) {
  let out = '';
  let err = '';
  const code = await main(argv, {
    stdout: { write: (s: string) => (out += s), isTTY: extra.tty ?? false },
    stderr: { write: (s: string) => (err += s) },
    env: { COATI_SOCKET: sock, ...extra.env },
    now: () => FAKE_NOW,
    signal: extra.signal,
  });
  return { code, out, err };
}

describe('coatictl against a running server', () => {
  it('status prints an aligned table with human durations and no colour off a TTY', async () => {
    const r = await run(['status']);
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
    const lines = r.out.split('\n');
    expect(lines[0]).toBe(
      'web1: coatid 0.1.0-test, pid 4242, up 1h02m (since 2024-05-01T10:57:55.000Z); 3 peers: 1 up, 1 connecting, 1 trap',
    );
    const header = lines[2] ?? '';
    const row = lines.find((l) => l.startsWith('db1 ')) ?? '';
    expect(header.indexOf('STATE')).toBe(row.indexOf('up'));
    expect(row).toContain('established 3m12s ago');
    expect(row).toContain('16.0 EiB/2.0 KiB');
    expect(row).toContain('5s ago');
    expect(lines.find((l) => l.startsWith('cache1'))).toMatch(/connecting .* 2 fail .*TIMEOUT 30s ago$/);
    expect(r.out).not.toContain('\x1b[');
  });

  it('status says how far paced initiations (start-up, reload) are, while any wait or run', async () => {
    fake.initiations = { queued: 120, inFlight: 16, maxConcurrent: 16 };
    const lines = (await run(['status'])).out.split('\n');
    expect(lines[1]).toBe('paced initiations (start-up, reload): 120 waiting, 16 of 16 slots in use');
    fake.initiations = { queued: 0, inFlight: 0, maxConcurrent: 16 };
    expect((await run(['status'])).out).not.toContain('paced initiations');
    fake.initiations = { queued: 3, inFlight: 1, maxConcurrent: 16 };
    expect(JSON.parse((await run(['status', '--json'])).out).initiations).toEqual(fake.initiations);
  });

  it('status --state filters peers in the table and the JSON', async () => {
    const r = await run(['status', '--state', 'connecting,trap']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^cache1 /m);
    expect(r.out).toMatch(/^mq1 /m);
    expect(r.out).not.toMatch(/^db1 /m);
    const j = JSON.parse((await run(['status', '--json', '--state', 'up'])).out) as StatusReport;
    expect(j.peers.map((p) => p.name)).toEqual(['db1']);
  });

  it('status colours the state on a TTY unless NO_COLOR is set', async () => {
    expect((await run(['status'], { tty: true })).out).toContain('\x1b[32mup\x1b[0m');
    expect((await run(['status'], { tty: true, env: { NO_COLOR: '1' } })).out).not.toContain('\x1b[');
  });

  it('status <peer> shows the relationship in detail; --json is the report itself', async () => {
    const r = await run(['status', 'db1']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('db1 on web1: up');
    expect(r.out).toContain('0123456789abcdef_i fedcba9876543210_r (initiator)');
    expect(r.out).toContain('behind NAT: remote');
    expect(r.out).toMatch(/db1-net\s+installed\s+c1000001_i c2000001_o\s+transport\+udp/);
    const j = await run(['status', '--json']);
    const report = JSON.parse(j.out) as StatusReport;
    expect(report.peers).toHaveLength(3);
    expect(report.peers[0]?.children[0]?.bytesIn).toBe('18446744073709551615');
  });

  it('status shows every other IKE SA of a relationship (a rekey predecessor, a duplicate) with its Child SAs', async () => {
    const db1 = fake.peers[0];
    if (!db1?.ike || !db1.children[0]) throw new Error('fixture shape');
    db1.otherIkeSas = [
      {
        ...db1.ike,
        spiI: 'aaaaaaaaaaaaaaaa',
        spiR: 'bbbbbbbbbbbbbbbb',
        state: 'rekeying',
        establishedAt: new Date(FAKE_NOW - 3_600_000).toISOString(),
        children: [{ ...db1.children[0], spiIn: 'c1000000', spiOut: 'c2000000', state: 'rekeyed' }],
      },
    ];
    const table = await run(['status']);
    expect(table.out.split('\n').find((l) => l.startsWith('db1 '))).toContain('established 3m12s ago (+1)');
    const r = await run(['status', 'db1']);
    expect(r.out).toContain('  other IKE SA 1 of 1:');
    expect(r.out).toContain('aaaaaaaaaaaaaaaa_i bbbbbbbbbbbbbbbb_r (initiator)');
    expect(r.out).toMatch(/rekeying, aes256gcm16\/prfsha256\/x25519/);
    expect(r.out).toMatch(/db1-net\s+rekeyed\s+c1000000_i c2000000_o/);
    // the primary IKE SA and its child still come first
    expect(r.out.indexOf('0123456789abcdef_i')).toBeLessThan(r.out.indexOf('aaaaaaaaaaaaaaaa_i'));
    expect(r.out.indexOf('c1000001_i')).toBeLessThan(r.out.indexOf('other IKE SA'));
  });

  it('status of an unknown peer exits 1 with the daemon message', async () => {
    const r = await run(['status', 'nope']);
    expect(r.code).toBe(1);
    expect(r.err).toBe('coatictl: UNKNOWN_PEER: no peer named "nope"\n');
  });

  it('initiate, terminate, dpd and rekey reach the daemon with the right target', async () => {
    expect((await run(['initiate', 'cache1'])).code).toBe(0);
    expect((await run(['terminate', '--all'])).out).toMatch(/^mq1\s+ok\s+deleted$/m);
    expect((await run(['rekey', 'db1', '--child'])).code).toBe(1); // terminated above, so not up
    expect((await run(['rekey', '--all', '--ike'])).code).toBe(1);
    const dpd = await run(['dpd', 'db1']);
    expect(dpd.code).toBe(1);
    expect(dpd.out).toMatch(/^db1\s+FAILED\s+timeout\s+no answer in 10s$/m);
    expect(fake.calls.map((c) => [c.method, ...c.args])).toEqual([
      ['initiate', { peer: 'cache1' }],
      ['terminate', { all: true }],
      ['rekey', { peer: 'db1' }, 'child'],
      ['rekey', { all: true }, 'ike'],
      ['dpd', { peer: 'db1' }],
    ]);
  });

  it('dpd on a live peer reports alive with rtt; --json prints the ActionResult', async () => {
    const r = await run(['dpd', 'db1']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^db1\s+ok\s+alive 3ms$/m);
    const j = JSON.parse((await run(['rekey', 'db1', '--json'])).out);
    expect(j).toEqual({ ok: true, peers: [{ peer: 'db1', ok: true, message: 'ike rekey started' }] });
  });

  it('reload prints the diff, and config errors with file:line and exit 1', async () => {
    const ok = await run(['reload']);
    expect(ok.code).toBe(0);
    expect(ok.out).toContain('added:      new1');
    expect(ok.out).toContain('unchanged:  2');
    fake.reloadResult = {
      ok: false,
      errors: [{ file: '/etc/coati/coati.conf', line: 12, message: 'unknown key "foo"' }],
    };
    const bad = await run(['reload']);
    expect(bad.code).toBe(1);
    expect(bad.out).toContain('/etc/coati/coati.conf:12: unknown key "foo"');
  });

  it('restart and keylog', async () => {
    expect(await run(['restart'])).toMatchObject({ code: 0, out: 'restart: restart scheduled, state handed over\n' });
    expect(await run(['keylog', 'on'])).toMatchObject({ code: 0, out: 'keylog: keylog enabled\n' });
    expect(await run(['keylog', 'off'])).toMatchObject({ code: 0, out: 'keylog: keylog disabled\n' });
    expect(fake.calls.filter((c) => c.method === 'keylog').map((c) => c.args[0])).toEqual([true, false]);
  });

  it('daemon failures exit 1 with the INTERNAL message', async () => {
    fake.failNext.restart = new Error('handover file not writable');
    fake.failNext.initiate = new ControlError('CONFLICT', 'restart in progress');
    expect(await run(['restart'])).toMatchObject({ code: 1, err: 'coatictl: INTERNAL: handover file not writable\n' });
    expect(await run(['initiate', '--all'])).toMatchObject({
      code: 1,
      err: 'coatictl: CONFLICT: restart in progress\n',
    });
  });

  it('events follows the stream until aborted', async () => {
    const ac = new AbortController();
    const running = run(['events'], { signal: ac.signal });
    const jsonAc = new AbortController();
    const runningJson = run(['events', '--json'], { signal: jsonAc.signal });
    while (fake.subscriberCount < 2) await new Promise((r) => setTimeout(r, 10));
    fake.emit({ type: 'ike.established', peer: 'db1', spi: '0123' });
    fake.emit({ type: 'peer.dead', peer: 'cache1', reason: 'no reply' });
    await new Promise((r) => setTimeout(r, 50));
    ac.abort();
    jsonAc.abort();
    const r = await running;
    expect(r.code).toBe(0);
    expect(r.out).toBe(
      '2024-05-01T12:00:00.000Z ike.established peer=db1 spi=0123\n' +
        '2024-05-01T12:00:00.000Z peer.dead peer=cache1 reason="no reply"\n',
    );
    const lines = (await runningJson).out.trim().split('\n');
    expect(lines.map((l) => JSON.parse(l).type)).toEqual(['ike.established', 'peer.dead']);
    await new Promise((r) => setTimeout(r, 50));
    expect(fake.subscriberCount).toBe(0);
  });

  it('events exits 3 when the daemon goes away', async () => {
    const running = run(['events']);
    while (fake.subscriberCount < 1) await new Promise((r) => setTimeout(r, 10));
    await server.close();
    const r = await running;
    expect(r.code).toBe(3);
    expect(r.err).toContain('coatid closed the event stream');
    server = await startControlServer({ path: sock, control: fake }); // for afterEach
  });

  it('gives up on a hung daemon after --timeout with exit 3', async () => {
    fake.dpd = () => new Promise(() => {});
    const t0 = Date.now();
    const r = await run(['dpd', 'db1', '--timeout', '0.2']);
    expect(r.code).toBe(3);
    expect(r.err).toBe('coatictl: coatid did not answer dpd within 0.2s\n');
    expect(Date.now() - t0).toBeLessThan(5000);
    expect((await run(['status', '--timeout', 'soon'])).err).toMatch(/--timeout: expected a positive number/);
  });

  it('version prints both versions; --socket overrides COATI_SOCKET', async () => {
    const r = await run(['version']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^coatictl 0\.1\.0 \(control protocol 1\)\ncoatid 0\.1\.0-test on web1/);
    const off = await run(['--socket', join(dir, 'none.sock'), 'version', '--json']);
    expect(off.code).toBe(0);
    expect(JSON.parse(off.out)).toEqual({ coatictl: '0.1.0', protocol: 1, coatid: null });
  });
});

describe('coatictl usage and reachability', () => {
  const usage: [string[], RegExp][] = [
    [[], /missing command/],
    [['frob'], /unknown command "frob"/],
    [['status', '--bogus'], /Unknown option '--bogus'/],
    [['status', 'a', 'b'], /status: unexpected argument "b"/],
    [['initiate'], /initiate: missing peer name \(or --all\)/],
    [['terminate', 'db1', '--all'], /give a peer name or --all, not both/],
    [['rekey', 'db1', '--ike', '--child'], /--ike and --child are mutually exclusive/],
    [['dpd', 'db1', '--child'], /dpd: option --child does not apply/],
    [['status', '--all'], /status: option --all does not apply/],
    [['keylog'], /keylog: missing "on" or "off"/],
    [['keylog', 'maybe'], /expected "on" or "off", got "maybe"/],
    [['reload', 'now'], /reload: unexpected argument "now"/],
    [['--socket'], /--socket/],
    [['status', '--state', 'up,sideways'], /--state: unknown state "sideways"; states: up, connecting/],
    [['dpd', '--all', '--state', 'up'], /dpd: option --state does not apply/],
  ];
  it.each(usage)('%j → exit 2', async (argv, message) => {
    const r = await run(argv);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
    expect(fake.calls).toEqual([]);
  });

  it('--help prints usage and exits 0', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('mesh-check <status.json|->');
  });

  it('exits 3 when the daemon turns the connection away', async () => {
    await server.close();
    server = await startControlServer({ path: sock, control: fake, maxConnections: 0 });
    const r = await run(['status']);
    expect(r.code).toBe(3);
    expect(r.err).toMatch(/^coatictl: TOO_MANY_CONNECTIONS: limit of 0 reached/);
  });

  it('exits 3 with a clear message when the daemon is not running', async () => {
    const path = join(dir, 'absent.sock');
    const r = await run(['status', '--socket', path]);
    expect(r.code).toBe(3);
    expect(r.err).toBe(`coatictl: coatid is not running (no socket at ${path})\n`);
  });
});

describe('coatictl as a program', () => {
  let out: string;
  let entry: string;
  beforeAll(async () => {
    out = await mkdtemp(join(tmpdir(), 'coati-cli-build-'));
    const root = join(import.meta.dirname, '..', '..');
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const args = ['--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--strict'];
    args.push('--types', 'node', '--skipLibCheck', '--rootDir', root, '--outDir', out);
    execFileSync(process.execPath, [tsc, ...args, join(root, 'src/control/cli/coatictl.ts')], { cwd: root });
    await import('node:fs/promises').then((fs) => fs.writeFile(join(out, 'package.json'), '{"type":"module"}'));
    entry = join(out, 'src', 'control', 'cli', 'coatictl.js');
  }, 120_000);
  afterAll(async () => {
    await rm(out, { recursive: true, force: true });
  });

  function exec(argv: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [entry, ...argv], { env: { ...process.env, COATI_SOCKET: sock } });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  }

  it('keeps its shebang and runs status with exit 0', async () => {
    expect((await readFile(entry, 'utf8')).startsWith('#!/usr/bin/env node\n')).toBe(true);
    const r = await exec(['status', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).host).toBe('web1');
  });

  it('exits 3 when unreachable and 2 on usage errors', async () => {
    expect((await exec(['status', '--socket', join(dir, 'x.sock')])).code).toBe(3);
    expect((await exec(['initiate'])).code).toBe(2);
  });

  it('stops following events on SIGINT with exit 0', async () => {
    const child = spawn(process.execPath, [entry, 'events'], { env: { ...process.env, COATI_SOCKET: sock } });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    while (fake.subscriberCount < 1) await new Promise((r) => setTimeout(r, 10));
    fake.emit({ type: 'child.installed', peer: 'db1' });
    while (!stdout.includes('child.installed')) await new Promise((r) => setTimeout(r, 10));
    const code = await new Promise<number | null>((resolve) => {
      child.on('close', resolve);
      child.kill('SIGINT');
    });
    expect(code).toBe(0);
    expect(stdout).toContain('child.installed peer=db1');
  });
});
