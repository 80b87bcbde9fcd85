/**
 * Turns log fields into printable values without ever printing key
 * material: Buffers and typed arrays become `<N bytes>` (hex only for
 * allow-listed field names), secret wrappers become `<redacted>`.
 */
const SECRET_BRAND = Symbol.for('coati.secret');

function isSecretLike(v: object): boolean {
  return (v as { [SECRET_BRAND]?: unknown })[SECRET_BRAND] === true;
}

export type Printable = string | number | boolean | null | Printable[] | { [k: string]: Printable };

export function sanitize(value: unknown, key: string, allowHex: ReadonlySet<string>, depth = 0): Printable {
  if (value === null || value === undefined) return null;
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : String(value);
    case 'bigint':
      return value.toString();
    case 'function':
    case 'symbol':
      return `<${typeof value}>`;
  }
  const o = value as object;
  if (isSecretLike(o)) return '<redacted>';
  if (o instanceof Uint8Array) {
    return allowHex.has(key)
      ? Buffer.from(o.buffer, o.byteOffset, o.byteLength).toString('hex')
      : `<${o.byteLength} bytes>`;
  }
  if (o instanceof ArrayBuffer || ArrayBuffer.isView(o)) return `<${(o as ArrayBuffer).byteLength} bytes>`;
  if (o instanceof Error) {
    const code = (o as { code?: unknown }).code;
    return typeof code === 'string' ? `${code}: ${o.message}` : o.message;
  }
  if (o instanceof Date) return o.toISOString();
  if (depth >= 4) return '<…>';
  if (Array.isArray(o)) return o.map((v) => sanitize(v, key, allowHex, depth + 1));
  if (o instanceof Map) return sanitize(Object.fromEntries(o), key, allowHex, depth);
  if (o instanceof Set) return sanitize([...o], key, allowHex, depth);
  const out: { [k: string]: Printable } = {};
  for (const [k, v] of Object.entries(o)) out[k] = sanitize(v, k, allowHex, depth + 1);
  return out;
}
