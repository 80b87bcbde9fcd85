import { spawn, spawnSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ControlClient } from '../../src/control/client.js';
import { type ControlServer, startControlServer } from '../../src/control/server.js';
import { parseGroupFile, resolveGroup } from '../../src/control/socket-path.js';
import { FakeControl } from '../helpers/fake-control.js';

const isRoot = process.getuid?.() === 0;
const hasSetpriv = spawnSync('setpriv', ['--version']).status === 0;

let dir: string;
let servers: ControlServer[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'coati-perm-'));
  await chmod(dir, 0o755); // let an unprivileged child reach the run directory
});

afterEach(async () => {
  for (const s of servers) await s.close();
  servers = [];
  await rm(dir, { recursive: true, force: true });
});

async function start(path: string, group?: string | number, mode?: number): Promise<ControlServer> {
  const s = await startControlServer({ path, control: new FakeControl(), group, mode });
  servers.push(s);
  return s;
}

/** Try to connect as uid/gid 65534 with no supplementary groups; prints the hello or the errno. */
function connectAsNobody(path: string): Promise<string> {
  const script = `const s=require('net').connect(process.argv[1]);
s.on('data',d=>{process.stdout.write('OK '+d.toString().split('\\n')[0]);s.destroy()});
s.on('error',e=>{process.stdout.write(e.code);});`;
  return new Promise((resolve, reject) => {
    const child = spawn(
      'setpriv',
      ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', script, path],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', () => resolve(out));
  });
}

describe('control socket: filesystem and permissions', () => {
  it('creates the directory 0750 and the socket 0660 by default', async () => {
    const path = join(dir, 'run', 'coati', 'coati.sock');
    await start(path);
    const d = await stat(join(dir, 'run', 'coati'));
    const s = await stat(path);
    expect(d.mode & 0o7777).toBe(0o750);
    expect(s.isSocket()).toBe(true);
    expect(s.mode & 0o7777).toBe(0o660);
  });

  it('honours a custom mode', async () => {
    const path = join(dir, 'c.sock');
    await start(path, undefined, 0o600);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it.runIf(isRoot)('chowns socket and new directory to root:group', async () => {
    const path = join(dir, 'run', 'coati.sock');
    await start(path, 'nogroup');
    const s = await stat(path);
    expect([s.uid, s.gid]).toEqual([0, 65534]);
    expect((await stat(join(dir, 'run'))).gid).toBe(65534);
  });

  it('resolves group names and numbers, rejects unknown groups', async () => {
    const f = join(dir, 'group');
    await writeFile(f, '# comment\nroot:x:0:\ncoati:x:977:alice,bob\nbroken\n');
    expect(parseGroupFile('a:x:1:\nb:x:zz:\n')).toEqual(new Map([['a', 1]]));
    expect(await resolveGroup('coati', f)).toBe(977);
    expect(await resolveGroup('12', f)).toBe(12);
    expect(await resolveGroup(5, f)).toBe(5);
    await expect(resolveGroup('nope', f)).rejects.toThrow(/group "nope" does not exist/);
  });

  it('refuses a world-writable directory without sticky bit, accepts it with sticky bit', async () => {
    const open = join(dir, 'open');
    await mkdir(open);
    await chmod(open, 0o777);
    await expect(start(join(open, 'c.sock'))).rejects.toThrow(/world-writable without the sticky bit/);
    await chmod(open, 0o1777);
    await start(join(open, 'c.sock'));
  });

  it('refuses to replace a file that is not a socket', async () => {
    const path = join(dir, 'c.sock');
    await writeFile(path, 'precious');
    await expect(start(path)).rejects.toThrow(/exists and is not a socket/);
  });

  it('refuses a socket that another daemon still answers on', async () => {
    const path = join(dir, 'c.sock');
    await start(path);
    await expect(startControlServer({ path, control: new FakeControl() })).rejects.toThrow(/another coatid is running/);
  });

  it('removes a stale socket left by a killed daemon', async () => {
    const path = join(dir, 'c.sock');
    const script = `require('net').createServer().listen(process.argv[1],()=>process.kill(process.pid,'SIGKILL'))`;
    spawnSync(process.execPath, ['-e', script, path]);
    expect((await stat(path)).isSocket()).toBe(true);
    await start(path);
    const c = await ControlClient.connect(path);
    expect(c.hello.coati).toBe(1);
    c.close();
  });

  it.runIf(isRoot && hasSetpriv)('an unprivileged uid cannot connect to the 0660 root socket', async () => {
    const path = join(dir, 'c.sock');
    await start(path);
    expect(await connectAsNobody(path)).toBe('EACCES');
  });

  it.runIf(isRoot && hasSetpriv)('a member of the admin group can connect', async () => {
    const path = join(dir, 'run', 'c.sock');
    await start(path, 65534);
    expect(await connectAsNobody(path)).toMatch(/^OK \{"coati":1/);
  });

  it.runIf(isRoot && hasSetpriv)('the same uid connects to a 0666 socket (the check above can fail)', async () => {
    const path = join(dir, 'c.sock');
    await start(path, undefined, 0o666);
    expect(await connectAsNobody(path)).toMatch(/^OK /);
  });

  it.runIf(isRoot)('client explains EACCES with the socket group', async () => {
    const path = join(dir, 'run', 'c.sock');
    await start(path, 'nogroup');
    await chmod(path, 0o600);
    // Drop effective ids only around connect(2), which libuv issues synchronously.
    const groups = process.getgroups?.() ?? [0];
    process.setgroups?.([]);
    process.setegid?.(65534);
    process.seteuid?.(65534);
    let pending: Promise<ControlClient>;
    try {
      pending = ControlClient.connect(path);
    } finally {
      process.seteuid?.(0);
      process.setegid?.(0);
      process.setgroups?.(groups);
    }
    await expect(pending).rejects.toMatchObject({
      code: 'PERMISSION_DENIED',
      message: `permission denied on ${path}: run as root or a member of group nogroup`,
    });
  });

  it('client explains a missing socket', async () => {
    const path = join(dir, 'none.sock');
    await expect(ControlClient.connect(path)).rejects.toMatchObject({
      code: 'NOT_RUNNING',
      message: `coatid is not running (no socket at ${path})`,
    });
  });
});
