// RS-485 mode through the kernel (TIOCSRS485), for UARTs whose driver drives
// the transceiver's DE/RE pin from RTS (8250/omap/imx/stm32/atmel and many
// SoC UARTs). USB adapters with automatic direction control (most FTDI/CH340
// RS-485 dongles) need nothing: use rs485 mode "auto" (no ioctl).
//
// Node has no ioctl(2) and serialport does not expose this one, so the call
// is made by a tiny helper process (perl, from Debian's essential perl-base,
// or python3). The setting lives in the kernel's uart_port, so it stays in
// force after the helper exits. A driver without RS-485 support answers
// ENOTTY/EINVAL: reported as RS485_UNSUPPORTED with the reason.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { SerialError } from './errors.js';

export interface Rs485Options {
  /** "kernel": ask the UART driver (TIOCSRS485); "auto": the adapter switches direction itself; "off": plain RS-232/TTL. */
  mode: 'kernel' | 'auto' | 'off';
  /** RTS level while sending (default true) and after sending (default false). */
  rtsOnSend?: boolean;
  rtsAfterSend?: boolean;
  delayBeforeSendMs?: number;
  delayAfterSendMs?: number;
  /** Keep receiving while sending (default false: no echo of our own frames). */
  rxDuringTx?: boolean;
  /** Switch the bus termination resistor on, where the driver has a GPIO for it. */
  terminateBus?: boolean;
}

const FLAG = { ENABLED: 1 << 0, RTS_ON_SEND: 1 << 1, RTS_AFTER_SEND: 1 << 2, RX_DURING_TX: 1 << 4, TERMINATE_BUS: 1 << 5 };

/** TIOCSRS485 for this architecture (asm-generic 0x542F; MIPS encodes direction and size). */
export function tiocsrs485(arch: string = process.arch): number {
  return arch === 'mips' || arch === 'mipsel' || arch === 'mips64' || arch === 'mips64el' ? 0xc020542f : 0x542f;
}

export function rs485Flags(o: Rs485Options): number {
  if (o.mode !== 'kernel') return 0;
  let f = FLAG.ENABLED;
  if (o.rtsOnSend ?? true) f |= FLAG.RTS_ON_SEND;
  if (o.rtsAfterSend ?? false) f |= FLAG.RTS_AFTER_SEND;
  if (o.rxDuringTx) f |= FLAG.RX_DURING_TX;
  if (o.terminateBus) f |= FLAG.TERMINATE_BUS;
  return f;
}

const PERL = `use Fcntl; sysopen(my $fh, $ARGV[0], O_RDWR|O_NOCTTY|O_NONBLOCK) or die "open: $!\\n";
my $buf = pack("L8", $ARGV[2], $ARGV[3], $ARGV[4], 0, 0, 0, 0, 0);
ioctl($fh, $ARGV[1], $buf) or die "ioctl: $!\\n"; print "ok\\n";`;
const PY = `import sys, os, fcntl, struct
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
try:
    fcntl.ioctl(fd, int(sys.argv[2]), struct.pack("8I", int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), 0, 0, 0, 0, 0))
except OSError as e:
    sys.stderr.write("ioctl: " + e.strerror + "\\n"); sys.exit(1)
print("ok")`;

function helper(): { cmd: string; args: (a: string[]) => string[] } | undefined {
  const dirs = (process.env.PATH ?? '/usr/bin:/bin').split(':').concat(['/usr/bin', '/bin']);
  const has = (c: string) => dirs.some((d) => existsSync(`${d}/${c}`));
  if (has('perl')) return { cmd: 'perl', args: (a) => ['-e', PERL, ...a] };
  if (has('python3')) return { cmd: 'python3', args: (a) => ['-c', PY, ...a] };
  return undefined;
}

/** Applies the RS-485 settings to the UART at `path`; rejects with SerialError. "auto" and "off" do nothing. */
export async function applyRs485(path: string, o: Rs485Options): Promise<void> {
  if (o.mode !== 'kernel') return;
  const h = helper();
  if (!h)
    throw new SerialError('RS485_UNSUPPORTED', path, `cannot switch ${path} to RS-485: no perl or python3 here to issue TIOCSRS485; enable it at boot (device tree linux,rs485-enabled-at-boot-time) or use an adapter with automatic direction control (rs485 mode "auto")`);
  const args = [path, String(tiocsrs485()), String(rs485Flags(o)), String(Math.round(o.delayBeforeSendMs ?? 0)), String(Math.round(o.delayAfterSendMs ?? 0))];
  const r = await new Promise<{ status: number; stdout: string; stderr: string; error?: Error }>((resolve) =>
    execFile(h.cmd, h.args(args), { encoding: 'utf8', timeout: 5000 }, (error, stdout, stderr) =>
      resolve({ status: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr, ...(error && !stderr ? { error } : {}) }),
    ),
  );
  if (r.status === 0 && r.stdout.includes('ok')) return;
  const why = (r.stderr || r.error?.message || `exit ${r.status}`).trim();
  const unsupported = /Inappropriate ioctl|ENOTTY|Invalid argument|not supported/i.test(why);
  throw new SerialError(unsupported ? 'RS485_UNSUPPORTED' : 'IO', path, unsupported ? `${path}: the kernel driver of this port has no RS-485 mode (${why}); use an adapter with automatic direction control (rs485 mode "auto")` : `${path}: cannot set RS-485 mode: ${why}`);
}
