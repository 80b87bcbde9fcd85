/**
 * The checkpoint file: the only place IKE and Child SA keys ever go outside
 * process memory. Written atomically (temporary file in the same directory,
 * fsync, rename, fsync of the directory) with mode 0600, read back with typed
 * validation errors, erased when no SA remains. `CheckpointWriter` batches
 * continuous checkpoints: at most one write per `minIntervalMs`, one on shutdown.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { type FileHandle, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CheckpointError, type CheckpointV1, parseCheckpoint } from '../ikev2/checkpoint.js';
import type { EngineEvent, EngineLog } from '../ikev2/env.js';
import type { Clock, Timer } from '../util/clock.js';

export { CheckpointError, type CheckpointV1 } from '../ikev2/checkpoint.js';

const FILE_MODE = 0o600;

async function fsyncDir(dir: string): Promise<void> {
  let h: FileHandle | undefined;
  try {
    h = await open(dir, constants.O_RDONLY);
    await h.sync();
  } catch (err) {
    // Some filesystems refuse fsync on a directory; the rename itself is still atomic.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'EISDIR' && code !== 'EPERM') throw err;
  } finally {
    await h?.close();
  }
}

/** Writes `cp` to `path` atomically with mode 0600 (never world-readable, not even briefly). */
export async function writeCheckpointFile(path: string, cp: CheckpointV1): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const data = JSON.stringify(cp);
  let h: FileHandle | undefined;
  try {
    h = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, FILE_MODE);
    await h.chmod(FILE_MODE); // the umask can only narrow it, but be explicit
    await h.writeFile(data, 'utf8');
    await h.sync();
    await h.close();
    h = undefined;
    await rename(tmp, path);
    await fsyncDir(dir);
  } catch (err) {
    await h?.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw new CheckpointError('CHECKPOINT_IO', `cannot write checkpoint ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/**
 * Reads and validates a checkpoint. Throws `CheckpointError`: MISSING (no file),
 * INSECURE (readable by group or others: the keys may be exposed, do not reuse
 * them), CORRUPT (not JSON), VERSION, INVALID (wrong shape or types), IO.
 */
export async function readCheckpoint(path: string): Promise<CheckpointV1> {
  let text: string;
  try {
    const st = await stat(path);
    if ((st.mode & 0o077) !== 0)
      throw new CheckpointError(
        'CHECKPOINT_INSECURE',
        `checkpoint ${path} has mode ${(st.mode & 0o777).toString(8)}; expected 600`,
      );
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (err instanceof CheckpointError) throw err;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      throw new CheckpointError('CHECKPOINT_MISSING', `no checkpoint at ${path}`, { cause: err });
    throw new CheckpointError('CHECKPOINT_IO', `cannot read checkpoint ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new CheckpointError('CHECKPOINT_CORRUPT', `checkpoint ${path} is not valid JSON`, { cause: err });
  }
  return parseCheckpoint(json);
}

/** Removes the checkpoint (no SA left, or after a clean stop without handover). Missing is fine. */
export async function eraseCheckpoint(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new CheckpointError('CHECKPOINT_IO', `cannot erase checkpoint ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  await fsyncDir(dirname(path));
}

/** Engine events after which the continuous checkpoint is out of date. */
const CHECKPOINT_EVENTS = new Set(['ike.state', 'child.state', 'ike.msgid', 'nat.mapping', 'msgid.synced']);

export function isCheckpointEvent(ev: EngineEvent): boolean {
  return CHECKPOINT_EVENTS.has(ev.type);
}

export interface CheckpointWriterOptions {
  clock: Clock;
  /** Produces the current state (`Ikev2Manager.snapshot`). */
  snapshot(): CheckpointV1;
  /** Persists it (default: `writeCheckpointFile(path, cp)`). */
  write?(cp: CheckpointV1): Promise<void>;
  /** Removes it when no SA remains (default: `eraseCheckpoint(path)`). */
  erase?(): Promise<void>;
  path?: string;
  /** At most one write per this many ms (default 200). */
  minIntervalMs?: number;
  log?: EngineLog;
}

/**
 * Continuous checkpointing: `schedule()` after every state change; the first
 * change after a quiet period is written on the next tick, later ones are
 * batched into one write per `minIntervalMs`. A failed write is logged (never
 * the contents) and retried on the next change. `flush()` writes now (shutdown).
 */
export class CheckpointWriter {
  private timer: Timer | undefined;
  private lastWriteAt = Number.NEGATIVE_INFINITY;
  private writing: Promise<void> | undefined;
  private dirty = false;
  private stopped = false;
  private readonly minIntervalMs: number;
  /** Writes and erasures done (status, tests). */
  writes = 0;
  erasures = 0;
  private hadState = false;

  constructor(private readonly opts: CheckpointWriterOptions) {
    this.minIntervalMs = opts.minIntervalMs ?? 200;
    if (!opts.write && !opts.path) throw new Error('CheckpointWriter needs a path or a write function');
  }

  /** Something changed: make sure a write follows soon. */
  schedule(): void {
    if (this.stopped) return;
    this.dirty = true;
    if (this.timer || this.writing) return;
    const wait = Math.max(0, this.lastWriteAt + this.minIntervalMs - this.opts.clock.now());
    this.timer = this.opts.clock.setTimer(wait, () => {
      this.timer = undefined;
      void this.run();
    });
  }

  /** Subscriber for the engine's event bus. */
  onEvent = (ev: EngineEvent): void => {
    if (isCheckpointEvent(ev)) this.schedule();
  };

  private async run(): Promise<void> {
    if (!this.dirty) return;
    this.dirty = false;
    this.lastWriteAt = this.opts.clock.now();
    this.writing = this.persist();
    try {
      await this.writing;
    } finally {
      this.writing = undefined;
    }
    if (this.dirty && !this.stopped) {
      this.dirty = false;
      this.schedule();
    }
  }

  private async persist(): Promise<void> {
    try {
      const cp = this.opts.snapshot();
      if (cp.ikeSas.length === 0) {
        if (!this.hadState && this.erasures > 0) return;
        await (this.opts.erase ? this.opts.erase() : eraseCheckpoint(this.opts.path as string));
        this.erasures++;
        this.hadState = false;
        return;
      }
      await (this.opts.write ? this.opts.write(cp) : writeCheckpointFile(this.opts.path as string, cp));
      this.writes++;
      this.hadState = true;
    } catch (err) {
      this.opts.log?.error('checkpoint write failed', {
        code: err instanceof CheckpointError ? err.code : 'ERROR',
        error: err instanceof Error ? err.message : String(err),
      });
      this.dirty = true; // retried with the next change
    }
  }

  /** Writes the current state now (shutdown), after any write in progress. Stops further scheduling with `stop`. */
  async flush(opts: { stop?: boolean } = {}): Promise<void> {
    this.timer?.cancel();
    this.timer = undefined;
    if (opts.stop) this.stopped = true;
    await this.writing;
    this.dirty = true;
    this.lastWriteAt = this.opts.clock.now();
    this.writing = this.persist();
    try {
      await this.writing;
    } finally {
      this.writing = undefined;
    }
  }

  /** Cancels a pending write (the caller writes a handover snapshot itself). */
  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
  }
}
