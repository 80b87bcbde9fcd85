/**
 * Daemon restarts inside the in-process mesh: a continuous checkpoint writer
 * per node (in memory, JSON round-tripped like the file), planned handovers
 * and crashes followed by a restore from the checkpoint.
 */
import { CheckpointWriter } from '../../src/daemon/checkpoint.js';
import type { CheckpointV1, RestoreReport } from '../../src/ikev2/checkpoint.js';
import type { PeerPolicy } from '../../src/sa/policy.js';
import { flushMicrotasks } from '../../src/util/clock.js';
import { decodeHeader, EXCHANGE } from '../../src/wire/ikev2/index.js';
import type { Mesh, Node } from './ike-pair.js';

export interface Checkpointed {
  writer: CheckpointWriter;
  /** What the last write persisted (JSON text, as on disk); undefined after an erase. */
  stored: string | undefined;
}

const writers = new WeakMap<Node, Checkpointed>();

/** Continuous checkpointing for a node: every state-change event schedules a (debounced) write. */
export function checkpointing(mesh: Mesh, node: Node, minIntervalMs = 200): Checkpointed {
  const c: Checkpointed = { writer: undefined as unknown as CheckpointWriter, stored: undefined };
  c.writer = new CheckpointWriter({
    clock: mesh.clock,
    snapshot: () => node.manager.snapshot(),
    write: async (cp) => {
      c.stored = JSON.stringify(cp);
    },
    erase: async () => {
      c.stored = undefined;
    },
    minIntervalMs,
  });
  const env = node.manager.env;
  const emit = env.emit.bind(env);
  env.emit = (ev) => {
    emit(ev);
    c.writer.onEvent(ev);
  };
  writers.set(node, c);
  return c;
}

export function checkpointOf(node: Node): Checkpointed {
  const c = writers.get(node);
  if (!c) throw new Error(`node ${node.name} has no checkpoint writer`);
  return c;
}

function policiesOf(node: Node): PeerPolicy[] {
  return node.manager
    .peerNames()
    .map((p) => node.manager.peer(p)?.policy)
    .filter((p): p is PeerPolicy => p !== undefined);
}

/** A fresh daemon on the node's kernel, restored from `cp` (as text or data), then started. */
export async function bootFrom(
  mesh: Mesh,
  old: Node,
  cp: unknown,
  peers: PeerPolicy[] = policiesOf(old),
): Promise<{ node: Node; report: RestoreReport }> {
  const node = mesh.add(old.name, old.addr, {}, old.kernel);
  for (const p of peers) node.manager.setPeer(p);
  checkpointing(mesh, node);
  const input = typeof cp === 'string' ? safeParse(cp) : cp;
  const report = await node.manager.restore(input, { verifyKernel: true });
  await node.manager.start();
  await flushMicrotasks(8);
  return { node, report };
}

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text; // restore reports it as invalid
  }
}

/** Runs `p` while advancing the fake clock (prepareHandover waits on timers). */
async function whileAdvancing<T>(mesh: Mesh, p: Promise<T>): Promise<T> {
  let done = false;
  const r = p.finally(() => {
    done = true;
  });
  await flushMicrotasks(4);
  for (let i = 0; i < 200 && !done; i++) await mesh.advance(50, 50);
  return r;
}

/** Planned restart: handover snapshot, close keeping the kernel, boot and restore. */
export async function plannedRestart(
  mesh: Mesh,
  name: string,
  peers?: PeerPolicy[],
): Promise<{ node: Node; report: RestoreReport; cp: CheckpointV1 }> {
  const old = mesh.node(name);
  writers.get(old)?.writer.stop();
  const cp = await whileAdvancing(mesh, old.manager.prepareHandover());
  await old.manager.close({ keepKernel: true });
  old.up = false;
  const text = JSON.stringify(cp); // as the file would hold it
  const { node, report } = await bootFrom(mesh, old, text, peers);
  return { node, report, cp };
}

/**
 * Crash: the process dies without a handover (its continuous checkpoint may be
 * behind); `hardReboot` also flushes the kernel. Then boot from the checkpoint.
 */
export async function crashRestart(
  mesh: Mesh,
  name: string,
  opts: { hardReboot?: boolean; peers?: PeerPolicy[]; checkpoint?: unknown } = {},
): Promise<{ node: Node; report: RestoreReport }> {
  const old = mesh.node(name);
  const c = writers.get(old);
  c?.writer.stop();
  const stored = 'checkpoint' in opts ? opts.checkpoint : c?.stored;
  mesh.crash(name, opts.hardReboot ?? false);
  await flushMicrotasks(8);
  return bootFrom(mesh, mesh.node(name), stored, opts.peers);
}

/** Kernel SAs of a node as `dst/spi` strings (sorted). */
export async function kernelSas(node: Node): Promise<string[]> {
  return (await node.kernel.listSas())
    .filter((s) => s.algorithms)
    .map((s) => `${s.dst}/${s.spi.toString(16)}`)
    .sort();
}

/** IKE_SA_INIT messages among the datagrams sent since index `from`. */
export function initsSince(mesh: Mesh, from: number): number {
  let n = 0;
  for (const w of mesh.sent.slice(from)) {
    try {
      if (decodeHeader(w.data).exchangeType === EXCHANGE.IKE_SA_INIT) n++;
    } catch {
      // keepalives and other non-IKE bytes
    }
  }
  return n;
}

/** Message IDs agree crosswise between the established SAs of a and b (one each). */
export function idsInSync(a: Node, b: Node): boolean {
  const [sa] = a.manager.established(b.name);
  const [sb] = b.manager.established(a.name);
  if (!sa || !sb || a.manager.established(b.name).length !== 1 || b.manager.established(a.name).length !== 1)
    return false;
  return sa.tm.ids.nextOut === sb.tm.ids.nextIn && sa.tm.ids.nextIn === sb.tm.ids.nextOut;
}
