/** A configuration error that names where it is and what is wrong. */
export interface ConfigError {
  file: string;
  /** 1-based; 0 when the error concerns the whole file. */
  line: number;
  column: number;
  /** The key concerned (dotted within its section), if any. */
  key?: string;
  message: string;
}

export function formatConfigError(e: ConfigError): string {
  const where = e.line > 0 ? `${e.file}:${e.line}:${e.column}` : e.file;
  return e.key === undefined ? `${where}: ${e.message}` : `${where}: key "${e.key}": ${e.message}`;
}

/** Levenshtein distance, small inputs only (config keys). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur.push(Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost));
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

/** The nearest known key, if it is plausibly a typo of `key`. */
export function nearestKey(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Number.POSITIVE_INFINITY;
  for (const k of known) {
    const d = editDistance(key.toLowerCase(), k);
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  const limit = Math.max(2, Math.floor(key.length / 3));
  return bestD <= limit ? best : undefined;
}
