#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { applyDaemonV8Flags } from '../util/v8-flags.js';
import { Daemon, VERSION } from './daemon.js';

const USAGE = `usage: coatid [--config FILE] [--check-config] [--version]
       coatid --demo [--keep]

  --config FILE     main configuration (default /etc/coati/coati.conf)
  --check-config    validate the configuration and every peer file, then exit
                    (0 = valid; 1 = errors, each with file:line:col)
  --demo            run the built-in demo: three daemons negotiate, one is
                    killed and restarted, recovery is timed (needs root)
  --version         print the version`;

async function main(argv: string[]): Promise<number> {
  let args: ReturnType<typeof parseArgs<{ options: Record<string, { type: 'string' | 'boolean' }> }>>['values'];
  try {
    args = parseArgs({
      args: argv,
      options: {
        config: { type: 'string' },
        'check-config': { type: 'boolean' },
        demo: { type: 'boolean' },
        keep: { type: 'boolean' },
        version: { type: 'boolean' },
        help: { type: 'boolean' },
      },
    }).values;
  } catch (err) {
    process.stderr.write(`coatid: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (args.version) {
    process.stdout.write(`coatid ${VERSION}\n`);
    return 0;
  }
  if (args.demo) {
    const { runDemo } = await import('./demo.js');
    return runDemo({ keep: !!args.keep });
  }
  const configPath = typeof args.config === 'string' ? args.config : '/etc/coati/coati.conf';
  if (args['check-config']) {
    try {
      const c = await Daemon.load(configPath);
      process.stdout.write(`${configPath}: ok (${c.peers.size} peers)\n`);
      return 0;
    } catch (err) {
      process.stderr.write(`${(err as Error).message}\n`);
      return 1;
    }
  }
  let v8Flags: string[];
  try {
    v8Flags = applyDaemonV8Flags();
  } catch (err) {
    process.stderr.write(`coatid: ${(err as Error).message}\n`);
    return 2;
  }
  const daemon = new Daemon({ configPath, v8Flags });
  process.on('uncaughtException', (err) => {
    // A bug: log it and exit so systemd restarts us (kernel SAs stay; peers see no outage).
    process.stderr.write(`<2>coatid: fatal: ${err.stack ?? err}\n`);
    process.exit(70);
  });
  process.on('unhandledRejection', (err) => {
    process.stderr.write(`<3>coatid: unhandled rejection: ${(err as Error)?.stack ?? err}\n`);
  });
  try {
    await daemon.start();
  } catch (err) {
    process.stderr.write(`<2>coatid: cannot start: ${(err as Error).message}\n`);
    return 1;
  }
  return new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      daemon.logger.notice(`${signal}: stopping`);
      const keep = daemon.config.daemon.shutdown === 'keep';
      daemon.stop({ keepKernel: keep }).then(
        () => resolve(0),
        (err) => {
          process.stderr.write(`<3>coatid: stop failed: ${(err as Error).message}\n`);
          resolve(1);
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => {
      daemon.reload().then((r) => {
        if (r.ok) daemon.logger.notice('reloaded', { added: r.added, removed: r.removed, changed: r.changed });
      });
    });
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`coatid: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
