// iscm-edge sim-firmware: a sensor MCU on a serial port, for tests, demos and
// field checks of the gateway (firmware-bridge/simulator.ts does the work).
import { closeSync, openSync, writeSync } from 'node:fs';
import { EXIT, parse, UsageError, type Command } from '../usage.js';

const usage = `usage: iscm-edge sim-firmware --port PATH [options]

Behaves like sensor firmware on the MCU link (docs/LINK.md): readings go into a
ring buffer of unacknowledged data (persisted to --state), are sent in frames,
retransmitted until acknowledged, and survive reboots and restarts.

  --port PATH          serial port (a pty from socat in tests)
  --sensors LIST       temp,humidity,shock,door,gps,rfid (default all)
  --rate HZ            readings per second, all sensors together (default 10)
  --count N            create N readings, then stop creating (default unlimited)
  --state FILE         persist the ring buffer here (else in memory)
  --noise P            fault probability per frame, 0..1 (bit flips, dropped and
                       duplicated bytes, garbage between frames, partial frames;
                       also bit flips on received bytes)
  --reboot-every S     reboot (new boot_id) every S seconds (±20 %)
  --log FILE           JSON lines: {"event":"created",…} {"event":"acked",…} …
  --window N           data frames in flight (default 512)
  --ring N             ring buffer capacity (default 4096)
  --retransmit-ms MS   resend unacknowledged frames after MS (default 1000)
  --baud N             baud rate (default 115200)
  --seed N             PRNG seed for values and faults
  --link-versions L    protocol versions to offer, e.g. 2,3 (default 1; for tests)
  --firmware NAME      firmware name in HELLO (default iscm-sim/1.0)

Runs until SIGINT/SIGTERM. With --count it prints "all N readings acknowledged"
on stderr once every created reading is acknowledged (and keeps running).`;

function num(v: string | undefined, name: string, def: number, min: number, max: number, integer = false): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) throw new UsageError(`--${name} ${v}: expected ${integer ? 'an integer' : 'a number'} in ${min}..${max}`);
  return n;
}


export const command: Command = {
  name: 'sim-firmware',
  summary: 'simulate sensor firmware on a serial port (tests, demos)',
  usage,
  async run(argv, io) {
    const { values, positionals } = parse(
      argv,
      {
        port: { type: 'string' },
        sensors: { type: 'string' },
        rate: { type: 'string' },
        count: { type: 'string' },
        state: { type: 'string' },
        noise: { type: 'string' },
        'reboot-every': { type: 'string' },
        log: { type: 'string' },
        window: { type: 'string' },
        ring: { type: 'string' },
        'retransmit-ms': { type: 'string' },
        baud: { type: 'string' },
        seed: { type: 'string' },
        'link-versions': { type: 'string' },
        firmware: { type: 'string' },
      },
      false,
    );
    if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`);
    if (!values.port) throw new UsageError('--port PATH is required');
    const { parseSensorList } = await import('../../../firmware-bridge/sensors.js');
    let sensors;
    try {
      sensors = values.sensors ? parseSensorList(values.sensors) : undefined;
    } catch (e) {
      throw new UsageError(`--sensors: ${(e as Error).message}`);
    }
    const rate = num(values.rate, 'rate', 10, 0, 1_000_000);
    const count = values.count === undefined ? undefined : num(values.count, 'count', 0, 0, 1e12, true);
    const noise = num(values.noise, 'noise', 0, 0, 1);
    const rebootEvery = values['reboot-every'] === undefined ? undefined : num(values['reboot-every'], 'reboot-every', 0, 0.1, 1e9);
    const window = num(values.window, 'window', 512, 1, 65536, true);
    const ring = num(values.ring, 'ring', 4096, 1, 10_000_000, true);
    const retransmitMs = num(values['retransmit-ms'], 'retransmit-ms', 1000, 10, 600_000, true);
    const baud = num(values.baud, 'baud', 115200, 50, 4_000_000, true);
    const seed = values.seed === undefined ? undefined : num(values.seed, 'seed', 0, 0, 2 ** 32 - 1, true);
    let versions: number[] | undefined;
    if (values['link-versions']) {
      versions = values['link-versions'].split(',').map((x) => num(x, 'link-versions', 1, 1, 255, true));
    }
    const { SerialTransport } = await import('../../../drivers/serial/transport.js');
    const { FirmwareSimulator } = await import('../../../firmware-bridge/simulator.js');
    const { FaultInjector, seededRandom } = await import('../../../firmware-bridge/faults.js');
    const random = seed === undefined ? Math.random : seededRandom(seed);

    let logFd: number | undefined;
    if (values.log) logFd = openSync(values.log, 'a');
    let logBuf: string[] = [];
    const flushLog = () => {
      if (logFd === undefined || logBuf.length === 0) return;
      const text = logBuf.join('');
      logBuf = [];
      writeSync(logFd, text);
    };
    const faults = new FaultInjector(noise, random);
    const transport = new SerialTransport({ path: values.port, baudRate: baud, reconnect: { initialMs: 100, maxMs: 2000 } });
    const sim = new FirmwareSimulator({
      send: (b) => transport.write(faults.frame(b)),
      ...(sensors ? { sensors } : {}),
      rateHz: rate,
      ...(count !== undefined ? { maxReadings: count } : {}),
      ...(values.state ? { statePath: values.state } : {}),
      ...(rebootEvery !== undefined ? { rebootEverySec: rebootEvery } : {}),
      window,
      ringSize: ring,
      retransmitMs,
      random,
      ...(versions ? { versions } : {}),
      ...(values.firmware ? { firmware: values.firmware } : {}),
      log: logFd === undefined ? undefined : (o) => logBuf.push(JSON.stringify(o) + '\n'),
    });
    const say = (m: string) => io.err(`sim-firmware: ${m}`);
    let lastFault = '';
    transport.on('open', (o: { realPath: string }) => {
      say(`port open ${values.port} (${o.realPath})`);
      sim.reconnected();
    });
    transport.on('close', (o: { reason: string }) => say(`port closed: ${o.reason}`));
    transport.on('fault', (e: Error) => {
      if (e.message !== lastFault) say(`fault: ${e.message}`);
      lastFault = e.message;
    });
    transport.on('drain', () => sim.resume());
    transport.on('data', (b: Buffer) => sim.receive(faults.rx(b)));
    sim.on('linked', (v: number) => say(`linked boot ${sim.bootId} (protocol v${v})`));
    sim.on('reboot', (r: { from: number; to: number }) => say(`reboot ${r.from} -> ${r.to}`));
    sim.on('remoteError', (m: { message: string; versions?: number[] }) => say(`gateway error: ${m.message}${m.versions ? ` (gateway versions ${m.versions.join(', ')})` : ''}`));
    sim.on('allAcked', () => say(`all ${count} readings acknowledged`));
    const flusher = setInterval(flushLog, 20);
    sim.start();
    transport.start();
    say(`started boot ${sim.bootId} sensors ${(sensors ?? ['all']).join(',')} rate ${rate}/s noise ${noise}`);

    await new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    });
    await sim.stop();
    clearInterval(flusher);
    flushLog();
    if (logFd !== undefined) closeSync(logFd);
    await transport.stop();
    const c = sim.counters;
    say(`stopped: created ${c.created}, acked ${c.acked}, rejected ${c.rejected}, unacked ${sim.ringLength}, retransmits ${c.retransmits}, reboots ${c.reboots}, faults ${JSON.stringify(faults.counts)}`);
    return EXIT.OK;
  },
};
