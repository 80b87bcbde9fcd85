import { describe, expect, it } from 'vitest';
import { type IkeState, IllegalTransitionError, transitionChild, transitionIke } from '../../src/sa/state.js';

describe('SA state transitions', () => {
  it('walks the IKE happy path and reports every change', () => {
    const sa = { state: 'created' as IkeState };
    const seen: string[] = [];
    const obs = (c: { from: string; to: string }) => seen.push(`${c.from}->${c.to}`);
    for (const s of [
      'connecting',
      'authenticating',
      'established',
      'rekeying',
      'rekeyed',
      'deleting',
      'destroyed',
    ] as const) {
      transitionIke(sa, s, 'test', obs);
    }
    expect(seen).toHaveLength(7);
    expect(sa.state).toBe('destroyed');
  });
  it('rejects illegal transitions without changing state', () => {
    const sa = { state: 'created' as IkeState };
    expect(() => transitionIke(sa, 'rekeyed', 'never established', () => {})).toThrow(IllegalTransitionError);
    expect(sa.state).toBe('created');
    const child = { state: 'destroyed' as const };
    expect(() =>
      transitionChild(child as { state: 'destroyed' | 'installed' }, 'installed', 'revive', () => {}),
    ).toThrow(/destroyed -> installed/);
  });
});
