import { describe, expect, it } from 'vitest';
import { DEFAULT_RETRANSMIT, totalRetransmitTime } from '../../src/ikev2/retransmit.js';
import { type InitiatorTask, TaskManager, type TaskOutcome } from '../../src/ikev2/task-manager.js';
import { FakeClock } from '../../src/util/clock.js';

function setup() {
  const clock = new FakeClock();
  const sent: string[] = [];
  const timeouts: string[] = [];
  const retransmits: number[] = [];
  const tm = new TaskManager<string>({
    clock,
    random: () => 0.5,
    schedule: { ...DEFAULT_RETRANSMIT, tries: 3 },
    encode: (msg, id, response) => [
      Buffer.from(`${response ? 'R' : 'Q'}${id}:${msg.exchange}:${msg.payloads.join(',')}`),
    ],
    send: (d) => sent.push(...d.map((b) => b.toString())),
    respond: async (msg) => ({ exchange: msg.exchange, payloads: [`ack-${msg.payloads.join('+')}`] }),
    onTimeout: (t) => timeouts.push(t),
    onRetransmit: (_t, n) => retransmits.push(n),
  });
  return { clock, sent, timeouts, retransmits, tm };
}

function task(name: string, outcome: TaskOutcome = { kind: 'done' }, log: string[] = []): InitiatorTask<string> {
  return {
    name,
    build: () => ({ exchange: 37, payloads: [name] }),
    onResponse: (m) => {
      log.push(`${name}<-${m.payloads.join(',')}`);
      return outcome;
    },
    onAbort: (r) => log.push(`${name}:abort:${r}`),
  };
}

describe('TaskManager', () => {
  it('runs tasks one at a time with increasing message IDs', async () => {
    const { tm, sent } = setup();
    const log: string[] = [];
    await tm.enqueue(task('a', { kind: 'done' }, log));
    await tm.enqueue(task('b', { kind: 'done' }, log));
    expect(sent).toEqual(['Q0:37:a']);
    expect(await tm.onResponse({ exchange: 37, messageId: 0, response: true, payloads: ['x'] })).toBe('handled');
    expect(sent).toEqual(['Q0:37:a', 'Q1:37:b']);
    expect(await tm.onResponse({ exchange: 37, messageId: 0, response: true, payloads: ['x'] })).toBe('unexpected');
    await tm.onResponse({ exchange: 37, messageId: 1, response: true, payloads: ['y'] });
    expect(log).toEqual(['a<-x', 'b<-y']);
    expect(tm.ids).toEqual({ nextOut: 2, nextIn: 0 });
  });

  it('retransmits with backoff, then times out and reports', async () => {
    const { tm, sent, clock, timeouts, retransmits } = setup();
    const log: string[] = [];
    await tm.enqueue(task('slow', { kind: 'done' }, log));
    await clock.advance(totalRetransmitTime({ ...DEFAULT_RETRANSMIT, tries: 3 }) + 1);
    expect(sent).toEqual(['Q0:37:slow', 'Q0:37:slow', 'Q0:37:slow', 'Q0:37:slow']);
    expect(retransmits).toEqual([1, 2, 3]);
    expect(timeouts).toEqual(['slow']);
    expect(log).toEqual(['slow:abort:timeout']);
    expect(clock.timerCount).toBe(0);
  });

  it('retry keeps the message ID (IKE_SA_INIT cookie / INVALID_KE)', async () => {
    const { tm, sent } = setup();
    let n = 0;
    await tm.enqueue({
      name: 'init',
      build: () => ({ exchange: 34, payloads: [`try${n}`] }),
      onResponse: () => (n++ === 0 ? { kind: 'retry' } : { kind: 'done' }),
      onAbort: () => {},
    });
    await tm.onResponse({ exchange: 34, messageId: 0, response: true, payloads: [] });
    expect(sent).toEqual(['Q0:34:try0', 'Q0:34:try1']);
    await tm.onResponse({ exchange: 34, messageId: 0, response: true, payloads: [] });
    expect(tm.ids.nextOut).toBe(1);
  });

  it('answers requests in order, replays the cached response, ignores out-of-window IDs', async () => {
    const { tm, sent } = setup();
    expect(await tm.onRequest({ exchange: 37, messageId: 1, response: false, payloads: ['p'] })).toBe('ignored');
    expect(await tm.onRequest({ exchange: 37, messageId: 0, response: false, payloads: ['p'] })).toBe('answered');
    expect(await tm.onRequest({ exchange: 37, messageId: 0, response: false, payloads: ['p'] })).toBe('retransmit');
    expect(sent).toEqual(['R0:37:ack-p', 'R0:37:ack-p']);
    expect(tm.ids.nextIn).toBe(1);
  });

  it('destroy aborts active and queued tasks and kills timers', async () => {
    const { tm, clock } = setup();
    const log: string[] = [];
    await tm.enqueue(task('a', { kind: 'done' }, log));
    await tm.enqueue(task('b', { kind: 'done' }, log));
    tm.destroy();
    expect(log).toEqual(['a:abort:destroyed', 'b:abort:destroyed']);
    expect(clock.timerCount).toBe(0);
    await tm.enqueue(task('c', { kind: 'done' }, log));
    expect(log.at(-1)).toBe('c:abort:destroyed');
  });
});
