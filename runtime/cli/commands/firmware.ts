// iscm-edge firmware: talk to sensor firmware over the MCU link.
//   firmware listen --port PATH --out FILE.jsonl   capture readings (fsync before ACK)
//   firmware ports                                 list serial ports (no udevadm needed)
import { EXIT, parse, UsageError, type Command, type Io } from '../usage.js';
import { errorMessage } from '../../../protocol/errors.js';

const usage = `usage: iscm-edge firmware listen --port PATH --out FILE.jsonl [options]
       iscm-edge firmware ports [--json]

listen: runs the gateway side of the MCU link (docs/LINK.md) on a serial
port and appends every NEW reading to FILE, one JSON line each (boot_id, seq,
sensor, kind, time, time_source, values), fsync'd before the firmware is
acknowledged. Duplicates are dropped, also across restarts of this tool. It
reconnects by itself when the port goes away; stop it with Ctrl-C (SIGINT) or
SIGTERM.

  --port PATH        /dev/ttyUSB0, /dev/serial/by-id/… (preferred), a pty …
  --out FILE         the capture file (created; appended to)
  --state FILE       link state: duplicate table (default FILE.link-state.json)
  --baud N           baud rate (default 115200)
  --data-bits N      5..8 (default 8)
  --parity P         none | even | odd (default none)
  --stop-bits N      1 | 2 (default 1)
  --rtscts           hardware flow control
  --rs485 MODE       off | auto (adapter switches direction) | kernel (TIOCSRS485)
  --config K=V       setting pushed to the firmware (repeatable), e.g. rate_hz=5
  --ping-ms MS       heartbeat PING interval (default 1000)
  --dead-ms MS       declare the link dead after MS of silence (default 3500)
  --json             log events as JSON lines on stderr
  --quiet            log only problems

ports: lists serial ports from /sys and /dev/serial (path, by-id links,
driver, USB ids).

Exit: 0 after a clean stop, 1 when the capture file cannot be used, 2 usage error.`;

function parseConfig(list: string[] | undefined): Record<string, number | string | boolean> | undefined {
  if (!list?.length) return undefined;
  const out: Record<string, number | string | boolean> = {};
  for (const kv of list) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new UsageError(`--config ${kv}: expected KEY=VALUE`);
    const k = kv.slice(0, i);
    const v = kv.slice(i + 1);
    if (!/^[a-z][a-z0-9_]{0,31}$/.test(k)) throw new UsageError(`--config ${kv}: setting names are lower-case letters, digits and _`);
    out[k] = v === 'true' ? true : v === 'false' ? false : v !== '' && Number.isFinite(Number(v)) ? Number(v) : v;
  }
  return out;
}

function int(v: string | undefined, name: string, def: number, min: number, max: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} ${v}: expected an integer ${min}..${max}`);
  return n;
}

async function ports(argv: string[], io: Io): Promise<number> {
  const { values } = parse(argv, { json: { type: 'boolean' } }, false);
  const { listPorts } = await import('../../../drivers/serial/list.js');
  const list = listPorts();
  if (values.json) for (const p of list) io.out(JSON.stringify(p));
  else if (list.length === 0) io.out('no serial ports found (USB adapters appear as /dev/ttyUSB* or /dev/ttyACM*; check dmesg)');
  else
    for (const p of list)
      io.out(`${p.path}  ${p.driver ?? '?'}${p.usb ? `  usb ${p.usb.vendorId}:${p.usb.productId} ${[p.usb.manufacturer, p.usb.product, p.usb.serial].filter(Boolean).join(' ')}` : ''}${p.links.length ? `\n    ${p.links.join('\n    ')}` : ''}`);
  return EXIT.OK;
}

async function listen(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      port: { type: 'string' },
      out: { type: 'string' },
      state: { type: 'string' },
      baud: { type: 'string' },
      'data-bits': { type: 'string' },
      parity: { type: 'string' },
      'stop-bits': { type: 'string' },
      rtscts: { type: 'boolean' },
      rs485: { type: 'string' },
      config: { type: 'string', multiple: true },
      'ping-ms': { type: 'string' },
      'dead-ms': { type: 'string' },
      json: { type: 'boolean' },
      quiet: { type: 'boolean' },
    },
    false,
  );
  if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`);
  if (!values.port) throw new UsageError('--port PATH is required');
  if (!values.out) throw new UsageError('--out FILE.jsonl is required');
  const parity = values.parity ?? 'none';
  if (parity !== 'none' && parity !== 'even' && parity !== 'odd') throw new UsageError('--parity must be none, even or odd');
  const stopBits = int(values['stop-bits'], 'stop-bits', 1, 1, 2) as 1 | 2;
  const dataBits = int(values['data-bits'], 'data-bits', 8, 5, 8) as 5 | 6 | 7 | 8;
  const rs485 = values.rs485;
  if (rs485 !== undefined && rs485 !== 'off' && rs485 !== 'auto' && rs485 !== 'kernel') throw new UsageError('--rs485 must be off, auto or kernel');
  const pingMs = int(values['ping-ms'], 'ping-ms', 1000, 50, 60_000);
  const deadMs = int(values['dead-ms'], 'dead-ms', 3500, 200, 600_000);
  if (deadMs <= pingMs) throw new UsageError('--dead-ms must be larger than --ping-ms');
  const config = parseConfig(values.config);

  const { GatewayLink } = await import('../../../firmware-bridge/link.js');
  const { CaptureFile } = await import('../../../firmware-bridge/capture.js');
  const { SerialError } = await import('../../../drivers/serial/errors.js');

  const log = (o: Record<string, unknown>, problem = false) => {
    if (values.quiet && !problem) return;
    if (values.json) io.err(JSON.stringify({ t: new Date().toISOString(), ...o }));
    else {
      const { event, ...rest } = o;
      io.err(`firmware listen: ${event}${Object.keys(rest).length ? ' ' + Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'string' ? JSON.stringify(v) : v}`).join(' ') : ''}`);
    }
  };

  const capture = new CaptureFile(values.out);
  let link: InstanceType<typeof GatewayLink>;
  try {
    link = new GatewayLink({
      serial: { path: values.port, baudRate: int(values.baud, 'baud', 115200, 50, 4_000_000), dataBits, parity, stopBits, rtscts: values.rtscts ?? false, ...(rs485 ? { rs485: { mode: rs485 } } : {}) },
      statePath: values.state ?? `${values.out}.link-state.json`,
      deliver: (readings) => capture.append(readings),
      session: { pingIntervalMs: pingMs, deadAfterMs: deadMs, gateway: 'iscm-edge firmware listen', ...(config ? { config } : {}), aux: () => ({ capture_offset: capture.ackedOffset }) },
    });
  } catch (e) {
    if (e instanceof SerialError && e.kind === 'CONFIG') throw new UsageError(e.message);
    throw e;
  }
  let badFrames = 0;
  link.on('event', (e: { event: string; repeat?: boolean }) => {
    if (e.event === 'bad_frame') {
      badFrames++;
      return;
    }
    if (e.event === 'fault' && e.repeat) return;
    log(e as Record<string, unknown>, e.event === 'fault' || e.event === 'dead' || e.event === 'link_error');
  });
  const aux = await link.session.open();
  const from = typeof aux?.capture_offset === 'number' ? aux.capture_offset : 0;
  let opened;
  try {
    opened = await capture.open(from, (b, s) => link.session.seed(b, s), (where, m) => log({ event: 'bad_line', where, message: m }, true));
  } catch (e) {
    await link.session.close();
    io.err(`iscm-edge firmware listen: cannot use ${values.out}: ${errorMessage(e)}`);
    return EXIT.INVALID;
  }
  if (opened.truncated) log({ event: 'torn_tail_cut', bytes: opened.truncated }, true);
  log({ event: 'listening', port: values.port, out: values.out, resumed_lines: opened.scanned });
  link.transport.start();

  const stats = setInterval(() => {
    const s = link.session.stats;
    log({ event: 'stats', written: capture.written, readings: s.readings, duplicates: s.duplicates, gaps: s.gaps, invalid: s.invalid, bad_frames: badFrames, acks: s.acks });
  }, 10_000);
  stats.unref();

  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  clearInterval(stats);
  await link.stop();
  await capture.close();
  log({ event: 'stopped', written: capture.written, bad_frames: badFrames });
  return EXIT.OK;
}

export const command: Command = {
  name: 'firmware',
  summary: 'talk to sensor firmware: `firmware listen` captures readings',
  usage,
  async run(argv, io) {
    const [sub, ...rest] = argv;
    if (sub === 'listen') return listen(rest, io);
    if (sub === 'ports') return ports(rest, io);
    throw new UsageError(sub ? `unknown subcommand "${sub}" (listen, ports)` : 'give a subcommand: listen or ports');
  },
};
