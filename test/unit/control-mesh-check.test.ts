import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/control/cli/coatictl.js';
import { checkMesh, type MeshResult } from '../../src/control/cli/mesh-check.js';
import type { StatusReport } from '../../src/control/types.js';

const FIX = join(import.meta.dirname, '..', 'fixtures', 'mesh');
const consistent = ['web1', 'db1', 'cache1'].map((h) => join(FIX, 'consistent', `${h}.json`));
const inconsistent = ['web1', 'db1', 'cache1', 'mq1'].map((h) => join(FIX, 'inconsistent', `${h}.json`));

async function run(argv: string[], stdin?: string) {
  let out = '';
  let err = '';
  const code = await main(argv, {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    stdin: stdin === undefined ? undefined : Readable.from([stdin]),
    env: {},
  });
  return { code, out, err };
}

async function load(files: string[]): Promise<StatusReport[]> {
  return Promise.all(files.map(async (f) => JSON.parse(await readFile(f, 'utf8')) as StatusReport));
}

const kinds = (r: MeshResult, severity: 'error' | 'warning') =>
  r.issues
    .filter((i) => i.severity === severity)
    .map((i) => i.kind)
    .sort();

describe('mesh-check: analysis', () => {
  it('finds a consistent mesh consistent, with the external peer only a warning', async () => {
    const r = checkMesh(await load(consistent));
    expect(r.ok).toBe(true);
    expect(r.pairs).toBe(3);
    expect(kinds(r, 'error')).toEqual([]);
    expect(kinds(r, 'warning')).toEqual(['unmatched-peer']);
  });

  it('reports each planted inconsistency', async () => {
    const r = checkMesh(await load(inconsistent));
    expect(r.ok).toBe(false);
    expect(kinds(r, 'error')).toEqual([
      'asymmetric',
      'child-spi-mismatch',
      'child-spi-mismatch',
      'duplicate-ike',
      'missing-peer',
    ]);
    const msg = (k: string) => r.issues.find((i) => i.kind === k)?.message;
    expect(msg('asymmetric')).toBe('web1 says up with db1 (peer db1), db1 says connecting (peer web1)');
    expect(msg('missing-peer')).toBe('mq1 says up with web1 (peer web1), but web1 has no peer for mq1');
    expect(msg('child-spi-mismatch')).toMatch(
      /web1 child cache1-net sends with SPI c6000001, which cache1 has no inbound SA/,
    );
    expect(r.issues.filter((i) => i.kind === 'child-spi-mismatch').map((i) => i.message)).toContain(
      'cache1 child web1-net receives on SPI c6000009, but web1 child cache1-net sends with c6000001',
    );
    expect(msg('duplicate-ike')).toMatch(/db1 has 2 IKE SAs with cache1/);
  });

  it('matches hosts by identity when the address is not a local address', async () => {
    const [web1, db1] = await load(consistent.slice(0, 2));
    if (!web1 || !db1) throw new Error('fixtures missing');
    for (const p of web1.peers) if (p.name === 'db1') p.address = '198.51.100.7'; // NAT-mapped address
    const r = checkMesh([web1, db1]);
    expect(r.pairs).toBe(1);
    expect(kinds(r, 'error')).toEqual([]);
  });

  it('detects IKE SPI and role mismatches, reversed child SPIs, duplicate children and duplicate hosts', async () => {
    const [web1, db1] = await load(consistent.slice(0, 2));
    if (!web1 || !db1) throw new Error('fixtures missing');
    const wd = web1.peers.find((p) => p.name === 'db1');
    const dw = db1.peers.find((p) => p.name === 'web1');
    if (!wd?.ike || !dw?.ike || !wd.children[0] || !dw.children[0]) throw new Error('fixture shape');
    dw.ike.spiR = 'deadbeefdeadbeef';
    expect(kinds(checkMesh([web1, db1]), 'error')).toEqual(['ike-spi-mismatch']);
    dw.ike.spiR = wd.ike.spiR.toUpperCase(); // case does not matter
    dw.ike.role = 'initiator';
    expect(kinds(checkMesh([web1, db1]), 'error')).toEqual(['ike-role-mismatch']);
    dw.ike.role = 'responder';
    dw.children[0].spiOut = 'ffffffff'; // db1 sends on an SPI web1 does not receive on
    expect(kinds(checkMesh([web1, db1]), 'error')).toEqual(['child-spi-mismatch', 'child-spi-mismatch']);
    dw.children[0].spiOut = wd.children[0].spiIn;
    wd.children.push({ ...wd.children[0], spiIn: 'c1000002' });
    expect(kinds(checkMesh([web1, db1]), 'error')).toContain('duplicate-child');
    expect(kinds(checkMesh([web1, web1]), 'error')).toContain('duplicate-host');
  });

  it('flags two established IKE SAs inside one relationship: a warning while young, an error once old', async () => {
    const [web1, db1] = await load(consistent.slice(0, 2));
    const wd = web1?.peers.find((p) => p.name === 'db1');
    if (!web1 || !db1 || !wd?.ike || !wd.children[0]) throw new Error('fixture shape');
    const report = Date.parse(web1.generatedAt);
    const dup = (agoMs: number, state = 'established') => ({
      ...(wd.ike as NonNullable<typeof wd.ike>),
      spiI: '3333333333333333',
      state,
      establishedAt: new Date(report - agoMs).toISOString(),
      children: [],
    });
    wd.otherIkeSas = [dup(10_000, 'rekeying')]; // a predecessor being rekeyed is no duplicate
    expect(checkMesh([web1, db1]).issues.filter((i) => i.kind === 'duplicate-ike')).toEqual([]);
    wd.otherIkeSas = [dup(10_000)]; // crossing streams still settling
    let r = checkMesh([web1, db1]);
    expect(kinds(r, 'warning').filter((k) => k !== 'unmatched-peer')).toEqual(['duplicate-ike']);
    expect(r.ok).toBe(true);
    wd.otherIkeSas = [dup(120_000)];
    r = checkMesh([web1, db1]);
    expect(kinds(r, 'error')).toEqual(['duplicate-ike']);
    expect(r.issues.find((i) => i.kind === 'duplicate-ike')?.message).toBe(
      'web1: peer db1 has 2 established IKE SAs (1111111111111111_i, 3333333333333333_i), the newest 120 s old',
    );
    // A Child SA for the same selectors installed under the other IKE SA is a duplicate child too.
    wd.otherIkeSas = [{ ...dup(10_000, 'deleting'), children: [{ ...wd.children[0], spiIn: 'c1000009' }] }];
    expect(kinds(checkMesh([web1, db1]), 'error')).toEqual(['duplicate-child']);
  });

  it('warns when reports were taken far apart', async () => {
    const reports = await load(consistent);
    if (reports[0]) reports[0].generatedAt = '2024-05-01T13:00:00.000Z';
    expect(kinds(checkMesh(reports), 'warning')).toContain('stale-report');
  });
});

describe('mesh-check: coatictl', () => {
  it('exits 0 on a consistent mesh', async () => {
    const r = await run(['mesh-check', ...consistent]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^consistent: 3 hosts, 3 pairs checked, 0 errors, 1 warnings$/m);
  });

  it('exits 1 on an inconsistent mesh and lists the errors', async () => {
    const r = await run(['mesh-check', ...inconsistent]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^ERROR asymmetric\s+web1 says up with db1/m);
    expect(r.out).toMatch(/^INCONSISTENT: 4 hosts/m);
  });

  it('--json gives the machine-readable result', async () => {
    const r = await run(['mesh-check', '--json', ...inconsistent]);
    expect(r.code).toBe(1);
    const parsed = JSON.parse(r.out) as MeshResult;
    expect(parsed.ok).toBe(false);
    expect(parsed.hosts).toBe(4);
  });

  it('reads one report from stdin with -, and arrays of reports', async () => {
    const [web1, ...rest] = consistent;
    const r = await run(['mesh-check', '-', ...rest], await readFile(web1 as string, 'utf8'));
    expect(r.code).toBe(0);
    const all = JSON.stringify(await load(inconsistent));
    expect((await run(['mesh-check', '-'], all)).code).toBe(1);
  });

  it('usage errors name the problem', async () => {
    expect(await run(['mesh-check'])).toMatchObject({ code: 2, err: expect.stringMatching(/give status JSON files/) });
    const missing = await run(['mesh-check', join(FIX, 'nope.json')]);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/cannot read .*nope\.json: ENOENT/);
    const bad = await run(['mesh-check', '-'], '{"host":"x","localAddresses":[],"peers":[{"name":"a"}]}');
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/<stdin>: not a coati status report: peers\[0\]\.address must be a string/);
    expect((await run(['mesh-check', '-'], 'garbage')).err).toMatch(/cannot read <stdin>/);
  });
});
