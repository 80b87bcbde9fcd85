import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CheckpointWriter, eraseCheckpoint, readCheckpoint, writeCheckpointFile } from '../../src/daemon/checkpoint.js';
import { type CheckpointV1, parseCheckpoint } from '../../src/ikev2/checkpoint.js';
import { FakeClock } from '../../src/util/clock.js';
import { Mesh } from '../helpers/ike-pair.js';

async function realCheckpoint(): Promise<CheckpointV1> {
  const m = new Mesh(3);
  m.add('n1', '10.0.0.1');
  m.add('n2', '10.0.0.2');
  m.fullMesh();
  await m.node('n1').manager.initiate('n2');
  await m.settle();
  return m.node('n1').manager.snapshot();
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'coati-cp-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('checkpoint format', () => {
  it('round-trips a real snapshot through JSON and validation', async () => {
    const cp = await realCheckpoint();
    expect(cp.ikeSas).toHaveLength(1);
    expect(cp.ikeSas[0]!.children).toHaveLength(1);
    expect(cp.ikeSas[0]!.keys.skD).toMatch(/^[0-9a-f]+$/);
    expect(parseCheckpoint(JSON.parse(JSON.stringify(cp)))).toEqual(cp);
  });

  it('rejects wrong versions and types with typed errors naming the field', async () => {
    const cp = JSON.parse(JSON.stringify(await realCheckpoint()));
    expect(() => parseCheckpoint({ ...cp, v: 2 })).toThrow(expect.objectContaining({ code: 'CHECKPOINT_VERSION' }));
    expect(() => parseCheckpoint([])).toThrow(expect.objectContaining({ code: 'CHECKPOINT_INVALID' }));
    const broken = structuredClone(cp);
    broken.ikeSas[0].spiI = 'zz';
    expect(() => parseCheckpoint(broken)).toThrow(/ikeSas\[0\]\.spiI/);
    const broken2 = structuredClone(cp);
    broken2.ikeSas[0].children[0].spiIn = -1;
    expect(() => parseCheckpoint(broken2)).toThrow(/children\[0\]\.spiIn/);
  });
});

describe('checkpoint file', () => {
  it('writes atomically with mode 0600 even under a permissive umask, leaving no temporary files', async () => {
    const cp = await realCheckpoint();
    const path = join(dir, 'state.json');
    const old = process.umask(0);
    try {
      await writeFile(path, 'old', { mode: 0o644 });
      await writeCheckpointFile(path, cp);
    } finally {
      process.umask(old);
    }
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readdir(dir)).toEqual(['state.json']);
    expect(await readCheckpoint(path)).toEqual(cp);
  });

  it('detects missing, corrupt, insecure and invalid files', async () => {
    const path = join(dir, 'state.json');
    await expect(readCheckpoint(path)).rejects.toMatchObject({ code: 'CHECKPOINT_MISSING' });
    await writeFile(path, '{"v":1,', { mode: 0o600 });
    await expect(readCheckpoint(path)).rejects.toMatchObject({ code: 'CHECKPOINT_CORRUPT' });
    await writeFile(path, '{"v":1}', { mode: 0o600 });
    await expect(readCheckpoint(path)).rejects.toMatchObject({ code: 'CHECKPOINT_INVALID' });
    await chmod(path, 0o644);
    await expect(readCheckpoint(path)).rejects.toMatchObject({ code: 'CHECKPOINT_INSECURE' });
  });

  it('erases (and tolerates a missing file)', async () => {
    const path = join(dir, 'state.json');
    await writeCheckpointFile(path, await realCheckpoint());
    await eraseCheckpoint(path);
    await eraseCheckpoint(path);
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('CheckpointWriter', () => {
  const fake = (ikeSas: number): CheckpointV1 => ({
    v: 1,
    writtenAt: 0,
    host: 'h',
    kind: 'continuous',
    uidSeq: 0,
    nextReqid: 0,
    contacted: [],
    reqids: [],
    book: [],
    ikeSas: new Array(ikeSas).fill(undefined) as never,
  });

  it('batches bursts into at most one write per interval, flushes on shutdown, erases when empty', async () => {
    const clock = new FakeClock();
    let sas = 1;
    const writes: number[] = [];
    let erased = 0;
    const w = new CheckpointWriter({
      clock,
      snapshot: () => fake(sas),
      write: async () => {
        writes.push(clock.now());
      },
      erase: async () => {
        erased++;
      },
      minIntervalMs: 200,
    });
    const t0 = clock.now();
    for (let i = 0; i < 50; i++) w.onEvent({ type: 'child.state' });
    w.onEvent({ type: 'retransmit' }); // not a state change
    await clock.advance(0);
    expect(writes).toEqual([t0]);
    for (let i = 0; i < 10; i++) {
      await clock.advance(20);
      w.schedule();
    }
    await clock.advance(1000);
    // 11 changes over 200 ms: the leading write, one at +200 and one for the change made at +200.
    expect(writes.map((t) => t - t0)).toEqual([0, 200, 400]);
    await clock.advance(5000);
    expect(writes).toHaveLength(3); // nothing changed, nothing written
    w.schedule();
    await w.flush({ stop: true });
    expect(writes).toHaveLength(4);
    w.schedule();
    await clock.advance(1000);
    expect(writes).toHaveLength(4); // stopped
    const w2 = new CheckpointWriter({
      clock,
      snapshot: () => fake(sas),
      write: async () => {},
      erase: async () => {
        erased++;
      },
    });
    sas = 0;
    w2.schedule();
    await clock.advance(10);
    expect(erased).toBe(1);
  });

  it('a failed write is logged without contents and retried on the next change', async () => {
    const clock = new FakeClock();
    const logged: unknown[] = [];
    let fail = true;
    let ok = 0;
    const w = new CheckpointWriter({
      clock,
      snapshot: () => fake(1),
      write: async () => {
        if (fail) throw new Error('disk full');
        ok++;
      },
      log: { debug() {}, info() {}, warn() {}, error: (m, f) => logged.push({ m, ...f }) },
    });
    w.schedule();
    await clock.advance(0);
    expect(logged).toHaveLength(1);
    expect(JSON.stringify(logged)).not.toMatch(/skD|keys/);
    fail = false;
    w.schedule();
    await clock.advance(300);
    expect(ok).toBe(1);
  });

  it('writes a real file through the default path writer', async () => {
    const clock = new FakeClock();
    const path = join(dir, 'cp.json');
    const cp = await realCheckpoint();
    const w = new CheckpointWriter({ clock, snapshot: () => cp, path });
    await w.flush();
    expect(JSON.parse(await readFile(path, 'utf8')).ikeSas).toHaveLength(1);
  });
});
