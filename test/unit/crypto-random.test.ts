import { describe, expect, it } from 'vitest';
import { pooledRandom } from '../../src/crypto/random.js';

describe('pooledRandom', () => {
  it('returns buffers of the requested size, each with a backing store of its own', () => {
    const random = pooledRandom();
    for (const n of [0, 1, 8, 32, 255, 256, 257, 5000]) {
      const b = random(n);
      expect(b.length).toBe(n);
      if (n > 0 && n <= 256) expect(b.buffer.byteLength).toBe(n);
    }
  });

  it('never hands out the same bytes twice, across pool refills', () => {
    const random = pooledRandom();
    const seen = new Set<string>();
    // 3000 x 16 bytes = 48 KB: a dozen refills of the 4 KiB pool.
    for (let i = 0; i < 3000; i++) {
      const hex = random(16).toString('hex');
      expect(seen.has(hex)).toBe(false);
      seen.add(hex);
    }
  });

  it('looks uniform: byte frequencies of 256 KiB within a loose chi-square bound', () => {
    const random = pooledRandom();
    const counts = new Array(256).fill(0);
    let total = 0;
    for (let i = 0; i < 8192; i++) {
      for (const b of random(32)) counts[b]++;
      total += 32;
    }
    const expected = total / 256;
    const chi2 = counts.reduce((acc, c) => acc + (c - expected) ** 2 / expected, 0);
    // 255 degrees of freedom: p = 1e-6 is at about 390; a broken pool (zeros, repeats) is far above.
    expect(chi2).toBeLessThan(400);
  });

  it('rejects what randomBytes rejects', () => {
    const random = pooledRandom();
    // Not pooled: these go to randomBytes, which names the problem.
    expect(() => random(-1)).toThrow(/out of range/i);
    expect(() => random(Number.NaN)).toThrow(/out of range/i);
  });
});
