import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ControlClient } from '../../src/control/client.js';
import { CONTROL_ERROR_CODES, ControlError } from '../../src/control/errors.js';
import { type ControlServer, type ControlServerOptions, startControlServer } from '../../src/control/server.js';
import type { ControlEvent } from '../../src/control/types.js';
import { FakeControl } from '../helpers/fake-control.js';

/** A raw socket with a queue of parsed lines, for poking the server with anything. */
class Raw {
  private buf = '';
  private readonly lines: unknown[] = [];
  private waiters: ((v: unknown) => void)[] = [];
  readonly closed: Promise<void>;

  constructor(readonly sock: Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf += d.toString('utf8');
      for (let i = this.buf.indexOf('\n'); i !== -1; i = this.buf.indexOf('\n')) {
        const l = JSON.parse(this.buf.slice(0, i)) as unknown;
        this.buf = this.buf.slice(i + 1);
        const w = this.waiters.shift();
        if (w) w(l);
        else this.lines.push(l);
      }
    });
    sock.on('error', () => {});
    this.closed = new Promise((resolve) => sock.on('close', () => resolve()));
  }

  static open(path: string): Promise<Raw> {
    return new Promise((resolve, reject) => {
      const s = connect(path);
      s.once('connect', () => resolve(new Raw(s)));
      s.once('error', reject);
    });
  }

  next(timeoutMs = 2000): Promise<unknown> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no line within timeout')), timeoutMs);
      this.waiters.push((v) => {
        clearTimeout(t);
        resolve(v);
      });
    });
  }

  send(data: string | Buffer): void {
    this.sock.write(data);
  }
}

let dir: string;
let sockPath: string;
let fake: FakeControl;
let server: ControlServer | undefined;

async function start(extra: Partial<ControlServerOptions> = {}): Promise<ControlServer> {
  server = await startControlServer({ path: sockPath, control: fake, host: 'web1', ...extra });
  return server;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'coati-ctl-'));
  sockPath = join(dir, 'run', 'coati.sock');
  fake = new FakeControl();
});

afterEach(async () => {
  await server?.close();
  server = undefined;
  await rm(dir, { recursive: true, force: true });
});

describe('control server: protocol over a socket', () => {
  it('greets with hello and answers status', async () => {
    await start();
    const raw = await Raw.open(sockPath);
    expect(await raw.next()).toEqual({ coati: 1, host: 'web1', versions: [1] });
    raw.send('{"id":1,"v":1,"cmd":"status","args":{"peer":"db1"}}\n');
    const resp = (await raw.next()) as { id: number; ok: boolean; result: { peers: { name: string }[] } };
    expect(resp.id).toBe(1);
    expect(resp.ok).toBe(true);
    expect(resp.result.peers.map((p) => p.name)).toEqual(['db1']);
    raw.sock.destroy();
  });

  it('answers every bad line with an error and keeps the connection usable', async () => {
    await start();
    const raw = await Raw.open(sockPath);
    await raw.next();
    raw.send('not json\n');
    raw.send(Buffer.from([0xc3, 0x28, 0xff, 0x0a]));
    raw.send('{"id":2,"v":1,"cmd":"frobnicate"}\n');
    raw.send('{"id":3,"v":9,"cmd":"status"}\n');
    raw.send('{"id":4,"v":1,"cmd":"status","args":{"peer":"nope"}}\n');
    raw.send('\n{"id":5,"v":1,"cmd":"keylog","args":{"on":1}}\n');
    const codes = [];
    for (let i = 0; i < 6; i++) {
      const r = (await raw.next()) as { id: number | null; error: { code: string } };
      codes.push([r.id, r.error.code]);
    }
    // Validation errors are answered synchronously, daemon errors when the promise settles.
    codes.sort((a, b) => Number(a[0] ?? -1) - Number(b[0] ?? -1));
    expect(codes).toEqual([
      [null, 'BAD_REQUEST'],
      [null, 'BAD_REQUEST'],
      [2, 'UNKNOWN_COMMAND'],
      [3, 'UNSUPPORTED_VERSION'],
      [4, 'UNKNOWN_PEER'],
      [5, 'BAD_REQUEST'],
    ]);
    raw.send('{"id":6,"v":1,"cmd":"reload"}\n');
    expect(await raw.next()).toMatchObject({ id: 6, ok: true, result: { ok: true, added: ['new1'] } });
    raw.sock.destroy();
  });

  it('closes with LINE_TOO_LONG on an oversized line, with or without a newline', async () => {
    await start({ maxLineBytes: 1024 });
    const raw = await Raw.open(sockPath);
    await raw.next();
    raw.send(`{"id":1,"v":1,"cmd":"status","args":{"peer":"${'x'.repeat(2000)}`);
    expect(await raw.next()).toMatchObject({ id: null, ok: false, error: { code: 'LINE_TOO_LONG' } });
    await raw.closed;
    expect(fake.calls).toEqual([]);
  });

  it('maps DaemonControl rejections to INTERNAL with the message, and survives non-Error throws', async () => {
    await start();
    fake.failNext.status = new Error('kernel query failed');
    fake.failNext.reload = 'boom';
    const client = await ControlClient.connect(sockPath);
    await expect(client.request('status', {})).rejects.toMatchObject({
      code: 'INTERNAL',
      message: 'kernel query failed',
    });
    await expect(client.request('reload', {})).rejects.toBeInstanceOf(ControlError);
    expect((await client.request('status', {})).host).toBe('web1');
    client.close();
  });

  it('turns an unencodable daemon reply into INTERNAL instead of crashing', async () => {
    await start();
    const loop: Record<string, unknown> = { host: 'x' };
    loop.self = loop;
    fake.status = async () => loop as never;
    const client = await ControlClient.connect(sockPath);
    await expect(client.request('status', {})).rejects.toMatchObject({
      code: 'INTERNAL',
      message: expect.stringMatching(/could not be encoded/),
    });
    expect((await client.request('reload', {})).ok).toBe(true);
    client.close();
  });

  it('answers pipelined requests and a trailing unterminated line after half-close, then closes', async () => {
    await start();
    const raw = await Raw.open(sockPath);
    await raw.next();
    raw.sock.end('{"id":1,"v":1,"cmd":"dpd","args":{"peer":"db1"}}\n{"id":2,"v":1,"cmd":"status"}');
    const got = [await raw.next(), await raw.next()] as { id: number; ok: boolean }[];
    expect(got.map((r) => r.id).sort()).toEqual([1, 2]);
    expect(got.every((r) => r.ok)).toBe(true);
    await raw.closed;
  });

  it('closes idle connections with IDLE_TIMEOUT', async () => {
    await start({ idleTimeoutMs: 100 });
    const raw = await Raw.open(sockPath);
    await raw.next();
    expect(await raw.next()).toMatchObject({ id: null, error: { code: 'IDLE_TIMEOUT' } });
    await raw.closed;
  });

  it('refuses connections beyond the limit', async () => {
    await start({ maxConnections: 2 });
    const a = await Raw.open(sockPath);
    const b = await Raw.open(sockPath);
    await a.next();
    await b.next();
    const c = await Raw.open(sockPath);
    expect(await c.next()).toMatchObject({ error: { code: 'TOO_MANY_CONNECTIONS' } });
    await c.closed;
    a.sock.destroy();
    await a.closed;
    await new Promise((r) => setTimeout(r, 50));
    const d = await Raw.open(sockPath);
    expect(await d.next()).toMatchObject({ coati: 1 });
    b.sock.destroy();
    d.sock.destroy();
  });

  it('answers BUSY beyond the in-flight limit', async () => {
    await start({ maxInFlight: 1 });
    let release: () => void = () => {};
    fake.status = () => new Promise((r) => (release = () => r({ host: 'slow' } as never)));
    const raw = await Raw.open(sockPath);
    await raw.next();
    raw.send('{"id":1,"v":1,"cmd":"status"}\n{"id":2,"v":1,"cmd":"status"}\n');
    expect(await raw.next()).toMatchObject({ id: 2, error: { code: 'BUSY' } });
    release();
    expect(await raw.next()).toMatchObject({ id: 1, ok: true, result: { host: 'slow' } });
    raw.sock.destroy();
  });

  it('streams events and unsubscribes when the client goes away', async () => {
    await start();
    const client = await ControlClient.connect(sockPath);
    const got: ControlEvent[] = [];
    const stream = await client.events((ev) => got.push(ev));
    expect(fake.subscriberCount).toBe(1);
    fake.emit({ type: 'ike.established', peer: 'db1' });
    fake.emit({ type: 'child.rekeyed', peer: 'db1', child: 'db1-net', bytes: 5n });
    await new Promise((r) => setTimeout(r, 50));
    expect(got.map((e) => e.type)).toEqual(['ike.established', 'child.rekeyed']);
    expect(got[1]).toMatchObject({ bytes: '5', time: '2024-05-01T12:00:00.000Z' });
    stream.stop();
    await stream.done;
    await new Promise((r) => setTimeout(r, 50));
    expect(fake.subscriberCount).toBe(0);
  });

  it('ends the stream of a subscriber that stops reading', async () => {
    await start({ maxEventBacklogBytes: 64 * 1024 });
    const raw = await Raw.open(sockPath);
    await raw.next();
    raw.send('{"id":1,"v":1,"cmd":"events"}\n');
    expect(await raw.next()).toMatchObject({ id: 1, result: { streaming: true } });
    raw.sock.pause();
    const big = 'x'.repeat(8192);
    for (let i = 0; i < 2000 && fake.subscriberCount > 0; i++) {
      fake.emit({ type: 'spam', big });
      await new Promise((r) => setImmediate(r));
    }
    expect(fake.subscriberCount).toBe(0);
    raw.sock.destroy();
  });

  it('survives random garbage: every line gets a known error code and the connection keeps working', async () => {
    await start();
    let seed = 0x2545f491;
    const rnd = () => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 2 ** 32;
    };
    const pieces = ['{', '}', '"id"', ':', '1', '"cmd"', '"v"', '[', ']', 'null', '"status"', ',', '\\u00', '\xff'];
    const raw = await Raw.open(sockPath);
    await raw.next();
    let sent = 0;
    for (let i = 0; i < 300; i++) {
      const parts: Buffer[] = [];
      const n = 1 + Math.floor(rnd() * 12);
      for (let j = 0; j < n; j++) {
        if (rnd() < 0.3) parts.push(Buffer.from([Math.floor(rnd() * 256)]));
        else parts.push(Buffer.from(pieces[Math.floor(rnd() * pieces.length)] ?? '', 'latin1'));
      }
      const body = Buffer.concat(parts).filter((b) => b !== 0x0a && b !== 0x0d);
      if (body.length === 0 || body.every((b) => b === 0x20)) continue;
      raw.send(Buffer.concat([body, Buffer.from('\n')]));
      sent++;
    }
    const known = new Set<string>(CONTROL_ERROR_CODES);
    for (let i = 0; i < sent; i++) {
      const r = (await raw.next()) as { ok: boolean; error?: { code: string } };
      if (!r.ok) expect(known.has(r.error?.code ?? '')).toBe(true);
    }
    raw.send('{"id":99999,"v":1,"cmd":"status"}\n');
    expect(await raw.next()).toMatchObject({ id: 99999, ok: true });
    raw.sock.destroy();
  });
});
