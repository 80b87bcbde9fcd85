#!/usr/bin/env node
/**
 * coatictl: the operator's tool on top of the admin socket.
 *
 * `main(argv, io)` does all the work and returns the exit code, so tests call
 * it directly with captured output; the bottom of the file wires it to the
 * real process when run as a program.
 */
import { realpathSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { ControlClient } from '../client.js';
import { ControlConnectError, ControlError } from '../errors.js';
import { checkPeerName, DEFAULT_SOCKET_PATH, PROTOCOL_VERSION } from '../protocol.js';
import { type ActionResult, PEER_STATES, type PeerState, type StatusReport, type Target } from '../types.js';
import { relative, renderAction, renderEvent, renderPeerDetail, renderReload, renderStatus } from './format.js';
import { importCommand } from './import-racoon.js';
import { asStatusReport, checkMesh, renderMesh } from './mesh-check.js';

export const CLI_VERSION = '0.1.0';

export const EXIT = { OK: 0, FAILED: 1, USAGE: 2, UNREACHABLE: 3 } as const;

export interface CliIO {
  stdout: { write(s: string): unknown; isTTY?: boolean };
  stderr: { write(s: string): unknown };
  /** Read for `mesh-check -`. */
  stdin?: AsyncIterable<string | Buffer>;
  env: Record<string, string | undefined>;
  now?: () => number;
  /** Aborting stops `events`. */
  signal?: AbortSignal;
}

/** Long enough for a liveness probe with retransmits; short enough that a hung daemon is noticed. */
const DEFAULT_TIMEOUT_SEC = 60;

export const USAGE = `Usage: coatictl [--socket PATH] <command> [options]

Commands:
  status [peer] [--json] [--state S,S]
                                     every relationship (or those in the given
                                     states), or one in detail
  initiate <peer|--all>              bring relationships up now
  terminate <peer|--all>             delete IKE and Child SAs
  rekey <peer|--all> [--ike|--child] force renegotiation (default --ike)
  dpd <peer|--all>                   probe liveness now
  reload                             re-read configuration
  restart                            planned restart with state handover
  keylog on|off                      log IKE/ESP keys for decryption (debug only)
  events [--json]                    follow the daemon's event stream
  mesh-check <status.json|-> ...     offline: compare status reports of many hosts
  import racoon <racoon.conf> [--setkey FILE] [--out DIR] [--secrets-dir DIR]
                                     offline: racoon config to IKEv1 peer files
  version                            coatictl and coatid versions

Options:
  --socket PATH   admin socket (default $COATI_SOCKET or ${DEFAULT_SOCKET_PATH})
  --timeout SEC   give up waiting for coatid (default ${DEFAULT_TIMEOUT_SEC}; exit 3)
  --json          machine-readable output
  --help          this text

Exit codes: 0 ok, 1 operation failed or mesh inconsistent, 2 usage error, 3 coatid not reachable.
`;

class UsageError extends Error {}

interface Flags {
  socket?: string;
  /** `status --state up,down`: only peers in these states. */
  states?: PeerState[];
  timeoutSec: number;
  json: boolean;
  all: boolean;
  ike: boolean;
  child: boolean;
}

const TARGET_COMMANDS = new Set(['initiate', 'terminate', 'rekey', 'dpd']);

/** Which flags each command accepts besides --socket/--json/--help. */
const EXTRA_FLAGS: Record<string, (keyof Flags)[]> = {
  initiate: ['all'],
  terminate: ['all'],
  dpd: ['all'],
  rekey: ['all', 'ike', 'child'],
};

function parse(argv: string[]): { flags: Flags; help: boolean; positionals: string[] } {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        socket: { type: 'string' },
        timeout: { type: 'string' },
        state: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        all: { type: 'boolean' },
        ike: { type: 'boolean' },
        child: { type: 'boolean' },
      },
    });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  const v = parsed.values as Record<string, string | boolean | undefined>;
  let timeoutSec = DEFAULT_TIMEOUT_SEC;
  if (typeof v.timeout === 'string') {
    timeoutSec = Number(v.timeout);
    if (!/^\d+(\.\d+)?$/.test(v.timeout) || timeoutSec <= 0) {
      throw new UsageError(`--timeout: expected a positive number of seconds, got ${JSON.stringify(v.timeout)}`);
    }
  }
  let states: PeerState[] | undefined;
  if (typeof v.state === 'string') {
    states = v.state.split(',').map((x) => x.trim()) as PeerState[];
    const bad = states.filter((x) => !PEER_STATES.includes(x));
    if (bad.length > 0 || states.length === 0) {
      throw new UsageError(`--state: unknown state ${JSON.stringify(bad[0] ?? '')}; states: ${PEER_STATES.join(', ')}`);
    }
  }
  const flags: Flags = {
    states,
    timeoutSec,
    socket: typeof v.socket === 'string' ? v.socket : undefined,
    json: v.json === true,
    all: v.all === true,
    ike: v.ike === true,
    child: v.child === true,
  };
  return { flags, help: v.help === true, positionals: parsed.positionals };
}

function expectArgs(cmd: string, args: string[], min: number, max: number, what: string): void {
  if (args.length < min) throw new UsageError(`${cmd}: missing ${what}`);
  if (args.length > max) throw new UsageError(`${cmd}: unexpected argument ${JSON.stringify(args[max])}`);
}

function peerArg(cmd: string, name: string): string {
  try {
    return checkPeerName(name, cmd);
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
}

function targetOf(cmd: string, args: string[], flags: Flags): Target {
  if (flags.all && args.length > 0) throw new UsageError(`${cmd}: give a peer name or --all, not both`);
  if (flags.all) return { all: true };
  expectArgs(cmd, args, 1, 1, 'peer name (or --all)');
  return { peer: peerArg(cmd, args[0] as string) };
}

async function readInput(source: string, io: CliIO): Promise<string> {
  if (source !== '-') return readFile(source, 'utf8');
  if (!io.stdin) throw new UsageError('mesh-check: no stdin available for "-"');
  let text = '';
  for await (const chunk of io.stdin) text += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
  return text;
}

async function meshCheck(files: string[], flags: Flags, io: CliIO): Promise<number> {
  if (files.length === 0) throw new UsageError('mesh-check: give status JSON files (or - for stdin)');
  if (files.filter((f) => f === '-').length > 1) throw new UsageError('mesh-check: "-" may be given only once');
  const reports: StatusReport[] = [];
  for (const f of files) {
    const name = f === '-' ? '<stdin>' : f;
    let decoded: unknown;
    try {
      decoded = JSON.parse(await readInput(f, io));
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      throw new UsageError(`mesh-check: cannot read ${name}: ${why}`);
    }
    const list = Array.isArray(decoded) ? decoded : [decoded];
    try {
      list.forEach((r, i) => {
        reports.push(asStatusReport(r, list.length > 1 ? `${name}[${i}]` : name));
      });
    } catch (err) {
      throw new UsageError(`mesh-check: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  const result = checkMesh(reports);
  io.stdout.write(flags.json ? `${JSON.stringify(result, null, 2)}\n` : renderMesh(result));
  return result.ok ? EXIT.OK : EXIT.FAILED;
}

function allowOnly(cmd: string, flags: Flags): void {
  const allowed = new Set(EXTRA_FLAGS[cmd] ?? []);
  for (const f of ['all', 'ike', 'child'] as const) {
    if (flags[f] && !allowed.has(f)) throw new UsageError(`${cmd}: option --${f} does not apply`);
  }
  if (flags.states && cmd !== 'status') throw new UsageError(`${cmd}: option --state does not apply`);
  if (flags.ike && flags.child) throw new UsageError('rekey: --ike and --child are mutually exclusive');
}

async function online(cmd: string, args: string[], flags: Flags, io: CliIO, socketPath: string): Promise<number> {
  const colour = io.stdout.isTTY === true && !flags.json && io.env.NO_COLOR === undefined;
  const now = io.now ?? Date.now;
  const out = (s: string) => io.stdout.write(s);
  const json = (v: unknown) => out(`${JSON.stringify(v, null, 2)}\n`);

  // Validate everything we can before touching the socket.
  let target: Target | undefined;
  if (TARGET_COMMANDS.has(cmd)) target = targetOf(cmd, args, flags);
  let keylogOn: boolean | undefined;
  switch (cmd) {
    case 'status':
      expectArgs(cmd, args, 0, 1, '');
      break;
    case 'keylog':
      expectArgs(cmd, args, 1, 1, '"on" or "off"');
      if (args[0] !== 'on' && args[0] !== 'off')
        throw new UsageError(`keylog: expected "on" or "off", got ${JSON.stringify(args[0])}`);
      keylogOn = args[0] === 'on';
      break;
    case 'reload':
    case 'restart':
    case 'events':
      expectArgs(cmd, args, 0, 0, '');
      break;
  }

  const client = await ControlClient.connect(socketPath, { requestTimeoutMs: flags.timeoutSec * 1000 });
  try {
    const action = (verb: string, r: ActionResult) => {
      if (flags.json) json(r);
      else out(renderAction(verb, r, colour));
      return r.ok ? EXIT.OK : EXIT.FAILED;
    };
    switch (cmd) {
      case 'status': {
        const peer = args[0] === undefined ? undefined : peerArg(cmd, args[0]);
        const report = await client.request('status', peer === undefined ? {} : { peer });
        const states = flags.states;
        if (states) report.peers = report.peers.filter((p) => states.includes(p.state));
        if (flags.json) json(report);
        else {
          const p = peer === undefined ? undefined : report.peers.find((x) => x.name === peer);
          out(p ? renderPeerDetail(report, p, now(), colour) : renderStatus(report, now(), colour));
        }
        return EXIT.OK;
      }
      case 'initiate':
      case 'terminate':
      case 'dpd':
        return action(cmd, await client.request(cmd, target as Target));
      case 'rekey': {
        const kind = flags.child ? 'child' : 'ike';
        return action(`rekey ${kind}`, await client.request('rekey', { ...(target as Target), kind }));
      }
      case 'reload': {
        const r = await client.request('reload', {});
        if (flags.json) json(r);
        else out(renderReload(r));
        return r.ok ? EXIT.OK : EXIT.FAILED;
      }
      case 'restart':
        return action('restart', await client.request('restart', {}));
      case 'keylog':
        return action('keylog', await client.request('keylog', { on: keylogOn as boolean }));
      case 'events': {
        const stream = await client.events((ev) =>
          out(flags.json ? `${JSON.stringify(ev)}\n` : `${renderEvent(ev, colour)}\n`),
        );
        const aborted = new Promise<'aborted'>((resolve) => {
          if (io.signal?.aborted) resolve('aborted');
          io.signal?.addEventListener('abort', () => resolve('aborted'), { once: true });
        });
        const how = await Promise.race([stream.done.then(() => 'ended' as const), aborted]);
        stream.stop();
        if (how === 'aborted') return EXIT.OK;
        io.stderr.write('coatictl: coatid closed the event stream\n');
        return EXIT.UNREACHABLE;
      }
      case 'version': {
        const report = await client.request('status', {});
        if (flags.json)
          json({ coatictl: CLI_VERSION, protocol: PROTOCOL_VERSION, coatid: report.daemonVersion, host: report.host });
        else
          out(
            `coatid ${report.daemonVersion} on ${report.host}, up since ${report.startedAt} (${relative(report.startedAt, now())})\n`,
          );
        return EXIT.OK;
      }
      default:
        throw new UsageError(`unknown command ${JSON.stringify(cmd)}`);
    }
  } finally {
    client.close();
  }
}

export async function main(argv: string[], io: CliIO): Promise<number> {
  const err = (s: string) => io.stderr.write(s.endsWith('\n') ? s : `${s}\n`);
  // Offline and with its own options: `import racoon ...` (see import-racoon.ts).
  if (argv[0] === 'import') return importCommand(argv.slice(1), io);
  try {
    const { flags, help, positionals } = parse(argv);
    const [cmd, ...args] = positionals;
    if (help || cmd === 'help') {
      io.stdout.write(USAGE);
      return EXIT.OK;
    }
    if (cmd === undefined) {
      err('coatictl: missing command');
      io.stderr.write(USAGE);
      return EXIT.USAGE;
    }
    allowOnly(cmd, flags);
    if (cmd === 'mesh-check') return await meshCheck(args, flags, io);
    const socketPath = flags.socket ?? io.env.COATI_SOCKET ?? DEFAULT_SOCKET_PATH;
    if (cmd === 'version') {
      expectArgs(cmd, args, 0, 0, '');
      if (!flags.json) io.stdout.write(`coatictl ${CLI_VERSION} (control protocol ${PROTOCOL_VERSION})\n`);
      try {
        return await online(cmd, args, flags, io, socketPath);
      } catch (e) {
        if (!(e instanceof ControlConnectError)) throw e;
        if (flags.json)
          io.stdout.write(`${JSON.stringify({ coatictl: CLI_VERSION, protocol: PROTOCOL_VERSION, coatid: null })}\n`);
        else io.stdout.write(`coatid: not reachable (${e.message})\n`);
        return EXIT.OK;
      }
    }
    if (!['status', 'initiate', 'terminate', 'rekey', 'dpd', 'reload', 'restart', 'keylog', 'events'].includes(cmd)) {
      throw new UsageError(`unknown command ${JSON.stringify(cmd)}; see coatictl --help`);
    }
    return await online(cmd, args, flags, io, socketPath);
  } catch (e) {
    if (e instanceof UsageError) {
      err(`coatictl: ${e.message}`);
      return EXIT.USAGE;
    }
    if (e instanceof ControlConnectError) {
      err(`coatictl: ${e.message}`);
      return EXIT.UNREACHABLE;
    }
    if (e instanceof ControlError) {
      err(`coatictl: ${e.code}: ${e.message}`);
      if (e.code === 'TOO_MANY_CONNECTIONS' || e.code === 'IDLE_TIMEOUT') return EXIT.UNREACHABLE;
      return e.code === 'BAD_REQUEST' || e.code === 'UNSUPPORTED_VERSION' || e.code === 'UNKNOWN_COMMAND'
        ? EXIT.USAGE
        : EXIT.FAILED;
    }
    err(`coatictl: ${e instanceof Error ? e.message : String(e)}`);
    return EXIT.FAILED;
  }
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(script)).href;
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  process.once('SIGTERM', () => controller.abort());
  process.stdout.on('error', () => process.exit(EXIT.OK)); // e.g. `coatictl events | head`
  main(process.argv.slice(2), {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    signal: controller.signal,
  }).then((code) => {
    process.exitCode = code;
    // Nothing else should keep us alive once the command is done.
    setTimeout(() => process.exit(code), 100).unref();
  });
}
