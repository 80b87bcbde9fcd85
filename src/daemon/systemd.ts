import { loadNative } from '../native.js';

/**
 * systemd's notify protocol (sd_notify): READY, STATUS, STOPPING and the
 * watchdog. The watchdog is fed only while the event loop is healthy: a timer
 * measures its own lateness, and a loop stalled past half the watchdog period
 * stops the pings so systemd restarts us.
 */
export class Systemd {
  private readonly socket = process.env.NOTIFY_SOCKET;
  private watchdog: NodeJS.Timeout | undefined;
  lastLagMs = 0;

  constructor(private readonly send: (path: string, msg: string) => void = (p, m) => loadNative().sdNotify(p, m)) {}

  get enabled(): boolean {
    return !!this.socket;
  }

  notify(msg: string): void {
    if (!this.socket) return;
    try {
      this.send(this.socket, msg);
    } catch {
      // systemd gone or socket unusable: nothing to tell
    }
  }

  ready(status: string): void {
    this.notify(`READY=1\nSTATUS=${status}\nMAINPID=${process.pid}`);
    this.startWatchdog();
  }

  status(text: string): void {
    this.notify(`STATUS=${text}`);
  }

  stopping(): void {
    this.notify('STOPPING=1');
    if (this.watchdog) clearInterval(this.watchdog);
  }

  /** WATCHDOG_USEC from the environment (only for our PID), or undefined. */
  static watchdogUsec(env: NodeJS.ProcessEnv = process.env): number | undefined {
    const usec = Number(env.WATCHDOG_USEC);
    if (!Number.isFinite(usec) || usec <= 0) return undefined;
    if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== process.pid) return undefined;
    return usec;
  }

  private startWatchdog(): void {
    const usec = Systemd.watchdogUsec();
    if (!usec) return;
    const period = Math.max(100, usec / 1000 / 4);
    let expected = Date.now() + period;
    this.watchdog = setInterval(() => {
      const now = Date.now();
      this.lastLagMs = Math.max(0, now - expected);
      expected = now + period;
      if (this.lastLagMs < usec / 1000 / 2) this.notify('WATCHDOG=1');
    }, period);
    this.watchdog.unref();
  }
}
