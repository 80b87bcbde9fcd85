/**
 * TOML source → a located value tree: every table entry keeps the position
 * of its key and of its value, so schema errors can name file:line:column.
 * Syntax (and TOML semantic errors such as a key defined twice) are reported
 * by toml-eslint-parser with a position; this module only reshapes its AST.
 */
import { type AST, ParseError, parseTOML } from 'toml-eslint-parser';

/** 1-based line and column. */
export interface Loc {
  line: number;
  column: number;
}

export type LNode =
  | { kind: 'table'; loc: Loc; entries: Map<string, LEntry> }
  | { kind: 'array'; loc: Loc; items: LNode[] }
  | { kind: 'string'; loc: Loc; value: string }
  | { kind: 'integer'; loc: Loc; value: bigint }
  | { kind: 'float'; loc: Loc; value: number }
  | { kind: 'boolean'; loc: Loc; value: boolean }
  | { kind: 'datetime'; loc: Loc; text: string };

export type LTable = Extract<LNode, { kind: 'table' }>;

export interface LEntry {
  key: string;
  keyLoc: Loc;
  node: LNode;
}

export type ParseTreeResult = { ok: true; root: LTable } | { ok: false; loc: Loc; message: string };

class TreeError extends Error {
  constructor(
    message: string,
    readonly loc: Loc,
  ) {
    super(message);
  }
}

function locOf(n: { loc: { start: { line: number; column: number } } }): Loc {
  return { line: n.loc.start.line, column: n.loc.start.column + 1 };
}

function keyName(k: AST.TOMLBare | AST.TOMLQuoted): string {
  return k.type === 'TOMLBare' ? k.name : k.value;
}

function newTable(loc: Loc): LTable {
  return { kind: 'table', loc, entries: new Map() };
}

function convertValue(v: AST.TOMLContentNode): LNode {
  const loc = locOf(v);
  switch (v.type) {
    case 'TOMLArray':
      return { kind: 'array', loc, items: v.elements.map(convertValue) };
    case 'TOMLInlineTable': {
      const t = newTable(loc);
      for (const kv of v.body) insertKeyValue(t, kv);
      return t;
    }
    default:
      switch (v.kind) {
        case 'string':
          return { kind: 'string', loc, value: v.value };
        case 'integer':
          return { kind: 'integer', loc, value: v.bigint };
        case 'float':
          return { kind: 'float', loc, value: v.value };
        case 'boolean':
          return { kind: 'boolean', loc, value: v.value };
        default:
          return { kind: 'datetime', loc, text: v.datetime };
      }
  }
}

/** Descend (creating tables) along a dotted key; array-of-tables steps into the last element. */
function descend(t: LTable, keys: (AST.TOMLBare | AST.TOMLQuoted)[]): LTable {
  let cur = t;
  for (const k of keys) {
    const name = keyName(k);
    const e = cur.entries.get(name);
    if (e === undefined) {
      const nt = newTable(locOf(k));
      cur.entries.set(name, { key: name, keyLoc: locOf(k), node: nt });
      cur = nt;
    } else if (e.node.kind === 'table') {
      cur = e.node;
    } else if (e.node.kind === 'array' && e.node.items.at(-1)?.kind === 'table') {
      cur = e.node.items.at(-1) as LTable;
    } else {
      // The parser already rejected redefinitions; keep going defensively.
      throw new TreeError('key redefined with a different type', locOf(k));
    }
  }
  return cur;
}

function insertKeyValue(t: LTable, kv: AST.TOMLKeyValue): void {
  const keys = kv.key.keys;
  const last = keys.at(-1);
  if (last === undefined) return;
  const parent = descend(t, keys.slice(0, -1));
  const name = keyName(last);
  parent.entries.set(name, { key: name, keyLoc: locOf(last), node: convertValue(kv.value) });
}

export function parseTomlTree(source: string): ParseTreeResult {
  let program: AST.TOMLProgram;
  try {
    program = parseTOML(source, { tomlVersion: '1.0' });
  } catch (e) {
    if (e instanceof ParseError) {
      return { ok: false, loc: { line: e.lineNumber, column: e.column + 1 }, message: e.message };
    }
    throw e;
  }
  const root = newTable({ line: 1, column: 1 });
  try {
    for (const item of program.body[0].body) {
      if (item.type === 'TOMLKeyValue') {
        insertKeyValue(root, item);
        continue;
      }
      const keys = item.key.keys;
      if (item.kind === 'standard') {
        const t = descend(root, keys);
        t.loc = locOf(item);
        for (const kv of item.body) insertKeyValue(t, kv);
      } else {
        const last = keys.at(-1);
        if (last === undefined) continue;
        const parent = descend(root, keys.slice(0, -1));
        const name = keyName(last);
        let e = parent.entries.get(name);
        if (e === undefined) {
          e = { key: name, keyLoc: locOf(last), node: { kind: 'array', loc: locOf(item), items: [] } };
          parent.entries.set(name, e);
        }
        if (e.node.kind !== 'array') throw new TreeError('key redefined as an array of tables', locOf(item));
        const t = newTable(locOf(item));
        e.node.items.push(t);
        for (const kv of item.body) insertKeyValue(t, kv);
      }
    }
  } catch (e) {
    if (e instanceof TreeError) return { ok: false, loc: e.loc, message: e.message };
    throw e;
  }
  return { ok: true, root };
}

/** How a value is shown in "found ..." messages. */
export function describeNode(n: LNode): string {
  switch (n.kind) {
    case 'string':
      return JSON.stringify(n.value);
    case 'integer':
      return n.value.toString();
    case 'float':
      return String(n.value);
    case 'boolean':
      return String(n.value);
    case 'datetime':
      return `a date-time (${n.text})`;
    case 'array':
      return 'an array';
    case 'table':
      return 'a table';
  }
}
