// systemd notify and watchdog, where available: READY=1 once started,
// WATCHDOG=1 at half the WatchdogSec interval while healthy, STOPPING=1 on
// shutdown. Node has no AF_UNIX datagram sockets, so this goes through
// systemd-notify(1) (the unit sets NotifyAccess=all); without NOTIFY_SOCKET
// it does nothing.
import { execFile } from 'node:child_process';

export class SystemdNotifier {
  private timer: NodeJS.Timeout | undefined;
  readonly enabled: boolean;
  constructor(private readonly env: NodeJS.ProcessEnv = process.env) {
    this.enabled = Boolean(env.NOTIFY_SOCKET);
  }
  private send(...args: string[]): void {
    if (!this.enabled) return;
    execFile('systemd-notify', args, { env: this.env, timeout: 5000 }, () => {
      /* best effort: a missing binary or a refused message must not stop the node */
    });
  }
  ready(status?: string): void {
    this.send('--ready', ...(status ? [`--status=${status}`] : []));
  }
  status(text: string): void {
    this.send(`--status=${text}`);
  }
  /** Pets the watchdog every WATCHDOG_USEC/2 while `healthy()` holds. */
  startWatchdog(healthy: () => boolean): void {
    const usec = Number(this.env.WATCHDOG_USEC ?? 0);
    if (!this.enabled || !usec) return;
    this.timer = setInterval(() => {
      if (healthy()) this.send('WATCHDOG=1');
    }, Math.max(1000, usec / 2000));
    this.timer.unref();
  }
  stopping(): void {
    clearInterval(this.timer);
    this.send('STOPPING=1');
  }
}
