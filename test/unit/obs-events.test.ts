import diagnostics_channel from 'node:diagnostics_channel';
import { expect, test } from 'vitest';
import { type CoatiEvent, EventBus } from '../../src/obs/index.js';

test('typed subscriptions receive only their type; onAny receives all; unsubscribe works', () => {
  const bus = new EventBus();
  const ups: string[] = [];
  const all: string[] = [];
  const off = bus.on('peer.up', (e) => ups.push(e.peer));
  bus.onAny((e) => all.push(e.type));
  bus.emit({ type: 'peer.up', peer: 'web7', reason: 'established' });
  bus.emit({ type: 'liveness.sent', peer: 'web7' });
  off();
  bus.emit({ type: 'peer.up', peer: 'web8', reason: 'established' });
  expect(ups).toEqual(['web7']);
  expect(all).toEqual(['peer.up', 'liveness.sent', 'peer.up']);
});

test('a throwing listener neither reaches the emitter nor stops other listeners', () => {
  const errors: unknown[] = [];
  const bus = new EventBus({ onListenerError: (err) => errors.push(err) });
  const seen: string[] = [];
  bus.on('cookie.sent', () => {
    throw new Error('boom');
  });
  bus.on('cookie.sent', (e) => seen.push(e.addr));
  expect(() => bus.emit({ type: 'cookie.sent', addr: '192.0.2.1' })).not.toThrow();
  expect(seen).toEqual(['192.0.2.1']);
  expect(errors).toHaveLength(1);
});

test('events are mirrored to diagnostics_channel coati:<type>', () => {
  const got: unknown[] = [];
  const fn = (msg: unknown) => got.push(msg);
  diagnostics_channel.subscribe('coati:handshake.failed', fn);
  try {
    const ev: CoatiEvent = { type: 'handshake.failed', peer: 'web7', version: 2, reason: 'NO_PROPOSAL_CHOSEN' };
    new EventBus().emit(ev);
    new EventBus({ diagnostics: false }).emit(ev);
    expect(got).toEqual([ev]);
  } finally {
    diagnostics_channel.unsubscribe('coati:handshake.failed', fn);
  }
});
