/**
 * Filesystem side of the admin socket: the directory it lives in, stale
 * sockets left by a crashed daemon, ownership and mode. Only root or members
 * of the admin group may connect; the checks here refuse setups where someone
 * else could swap the socket (a world-writable directory without sticky bit).
 */
import { chmod, chown, lstat, mkdir, readFile, stat, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { CoatiError } from '../errors.js';

export const DEFAULT_SOCKET_MODE = 0o660;
export const DEFAULT_DIR_MODE = 0o750;
const STICKY = 0o1000;

function errno(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Parse /etc/group style text: name → gid. */
export function parseGroupFile(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const [name, , gid] = line.split(':');
    if (name && gid !== undefined && /^\d+$/.test(gid)) out.set(name, Number(gid));
  }
  return out;
}

/** Resolve a group name or number to a gid (node has no getgrnam; read /etc/group). */
export async function resolveGroup(group: string | number, groupFile = '/etc/group'): Promise<number> {
  if (typeof group === 'number') {
    if (!Number.isInteger(group) || group < 0) throw new CoatiError('CONTROL_SETUP', `invalid gid ${group}`);
    return group;
  }
  if (/^\d+$/.test(group)) return Number(group);
  let text: string;
  try {
    text = await readFile(groupFile, 'utf8');
  } catch (err) {
    throw new CoatiError('CONTROL_SETUP', `cannot read ${groupFile} to resolve group ${group}`, { cause: err });
  }
  const gid = parseGroupFile(text).get(group);
  if (gid === undefined) throw new CoatiError('CONTROL_SETUP', `group ${JSON.stringify(group)} does not exist`);
  return gid;
}

/** Reverse lookup for messages: gid → name, or the number as a string. */
export async function groupName(gid: number, groupFile = '/etc/group'): Promise<string> {
  try {
    for (const [name, id] of parseGroupFile(await readFile(groupFile, 'utf8'))) if (id === gid) return name;
  } catch {
    // fall through to the number
  }
  return String(gid);
}

/** True if something accepts connections on the socket at `path`. */
function socketAnswers(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    const done = (answer: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => done(true), timeoutMs); // a hung daemon still owns the socket
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/**
 * Make the directory exist and be safe, and clear a stale socket. Throws
 * `CoatiError('CONTROL_SETUP')` with a message an operator can act on.
 */
export async function prepareSocketPath(path: string, gid: number | undefined): Promise<void> {
  const dir = dirname(path);
  let dirStat: Awaited<ReturnType<typeof stat>>;
  try {
    dirStat = await stat(dir);
  } catch (err) {
    if (errno(err) !== 'ENOENT') throw new CoatiError('CONTROL_SETUP', `cannot stat ${dir}`, { cause: err });
    await mkdir(dir, { recursive: true, mode: DEFAULT_DIR_MODE });
    await chmod(dir, DEFAULT_DIR_MODE); // mkdir's mode is filtered by the umask
    // Group members must be able to traverse the directory to reach the socket.
    if (gid !== undefined) await chown(dir, process.getuid?.() ?? 0, gid);
    dirStat = await stat(dir);
  }
  if (!dirStat.isDirectory()) throw new CoatiError('CONTROL_SETUP', `${dir} is not a directory`);
  if ((dirStat.mode & 0o002) !== 0 && (dirStat.mode & STICKY) === 0) {
    throw new CoatiError(
      'CONTROL_SETUP',
      `refusing to use ${dir}: it is world-writable without the sticky bit, anyone could replace the socket`,
    );
  }
  let st: Awaited<ReturnType<typeof lstat>>;
  try {
    st = await lstat(path);
  } catch (err) {
    if (errno(err) === 'ENOENT') return;
    throw new CoatiError('CONTROL_SETUP', `cannot stat ${path}`, { cause: err });
  }
  if (!st.isSocket()) {
    throw new CoatiError('CONTROL_SETUP', `refusing to replace ${path}: it exists and is not a socket`);
  }
  if (await socketAnswers(path)) {
    throw new CoatiError('CONTROL_SETUP', `${path} is in use: another coatid is running`);
  }
  await unlink(path);
}

/** Set mode and (optionally) root:group ownership on the freshly bound socket. */
export async function applySocketPermissions(path: string, mode: number, gid: number | undefined): Promise<void> {
  if (gid !== undefined) await chown(path, process.getuid?.() ?? 0, gid);
  await chmod(path, mode);
}
