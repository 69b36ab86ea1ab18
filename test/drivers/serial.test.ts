// Serial transport over real ptys (Debian socat): typed errors for ENOENT /
// EACCES / EBUSY (naming the holder) / not-a-tty, reconnect with capped
// backoff after an unplug, reopen on request, RS-485 on a port that has no
// RS-485, and port listing without udevadm. Never a crash, never an 'error'
// event, never a process exit.
import { spawn } from 'node:child_process';
import { mkdirSync, readlinkSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SerialError } from '../../drivers/serial/errors.js';
import { listPorts } from '../../drivers/serial/list.js';
import { rs485Flags, tiocsrs485 } from '../../drivers/serial/rs485.js';
import { checkSerialOptions, classifyOpenError, SerialTransport, type SerialTransportOptions } from '../../drivers/serial/transport.js';
import { haveCommand, start, tempDir, waitUntil, type Proc } from '../helpers/proc.js';
import { haveSocat, ptyPair, type PtyPair } from '../helpers/socat.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const live: (SerialTransport | PtyPair | Proc)[] = [];
test.after.each(async () => {
  for (const x of live.splice(0)) await x.stop().catch(() => {});
});

function transport(o: SerialTransportOptions) {
  const t = new SerialTransport({ reconnect: { initialMs: 20, maxMs: 200 }, ...o });
  live.push(t);
  const faults: SerialError[] = [];
  const delays: number[] = [];
  const data: Buffer[] = [];
  let opens = 0;
  t.on('fault', (e: SerialError) => faults.push(e));
  t.on('reconnect', (r: { delayMs: number }) => delays.push(r.delayMs));
  t.on('data', (b: Buffer) => data.push(b));
  t.on('open', () => opens++);
  return { t, faults, delays, data, opens: () => opens, text: () => Buffer.concat(data).toString() };
}

test('options are checked up front (typed CONFIG errors)', () => {
  const bad: Partial<SerialTransportOptions>[] = [{ path: '' }, { baudRate: 7 }, { baudRate: 1.5 }, { dataBits: 9 as 8 }, { parity: 'mark' as 'odd' }, { stopBits: 3 as 2 }, { rs485: { mode: 'kernel' }, rtscts: true }];
  for (const b of bad) assert.throws(() => checkSerialOptions({ path: '/dev/ttyX', ...b }), (e: unknown) => e instanceof SerialError && e.kind === 'CONFIG', JSON.stringify(b));
  checkSerialOptions({ path: '/dev/serial/by-id/usb-FTDI_x-if00-port0', baudRate: 9600, parity: 'even', stopBits: 2, dataBits: 7 });
});

test('binding messages map to typed errors', () => {
  const c = (m: string) => classifyOpenError('/dev/ttyX', new Error(m)).kind;
  assert.is(c('Error: No such file or directory, cannot open /dev/ttyX'), 'NOT_FOUND');
  assert.is(c('Error: Permission denied, cannot open /dev/ttyX'), 'ACCESS_DENIED');
  assert.is(c('Error Resource temporarily unavailable Cannot lock port'), 'BUSY');
  assert.is(c('Error: Inappropriate ioctl for device setting custom baud rate of 115200'), 'NOT_A_TTY');
  assert.is(c('Error: Input/output error'), 'IO');
});

test('ENOENT: NOT_FOUND fault, then reconnect attempts with capped exponential backoff', async () => {
  const dir = tempDir('iscm-ser-');
  const x = transport({ path: join(dir, 'missing'), reconnect: { initialMs: 10, maxMs: 80, factor: 2, jitter: 0 } });
  x.t.start();
  await waitUntil(() => x.delays.length >= 6, 20_000, '6 reconnect attempts');
  assert.ok(x.faults.every((f) => f instanceof SerialError && f.kind === 'NOT_FOUND'));
  assert.match(x.faults[0].message, /by-id/);
  assert.equal(x.delays.slice(0, 6), [10, 20, 40, 80, 80, 80]);
  // Jitter stays inside ±jitter and under the cap.
  const j = new SerialTransport({ path: join(dir, 'missing'), reconnect: { initialMs: 100, maxMs: 1000, jitter: 0.5 }, random: () => 0.999 });
  live.push(j);
  const d: number[] = [];
  j.on('reconnect', (r: { delayMs: number }) => d.push(r.delayMs));
  j.on('fault', () => {});
  j.start();
  await waitUntil(() => d.length >= 1, 5000, 'one attempt');
  assert.ok(d[0] >= 100 && d[0] <= 150);
});

test('not a serial port: a regular file and /dev/null', async () => {
  const dir = tempDir('iscm-ser-');
  writeFileSync(join(dir, 'file'), 'x');
  for (const p of [join(dir, 'file'), '/dev/null']) {
    const x = transport({ path: p });
    x.t.start();
    await waitUntil(() => x.faults.length > 0, 10_000, `fault for ${p}`);
    assert.is(x.faults[0].kind, 'NOT_A_TTY', x.faults[0].message);
    await x.t.stop();
  }
});

if (haveSocat('drivers serial')) {
  test('open, data both ways, and reconnect after an unplug (socat killed, back 1 s later)', async () => {
    const dir = tempDir('iscm-ser-');
    const pair = await ptyPair(dir);
    live.push(pair);
    const a = transport({ path: pair.a });
    const b = transport({ path: pair.b });
    a.t.start();
    b.t.start();
    await waitUntil(() => a.t.isOpen && b.t.isOpen, 10_000, 'both open');
    a.t.write(Buffer.from('ping\n'));
    await waitUntil(() => b.text().includes('ping'), 10_000, 'a → b');
    b.t.write(Buffer.from('pong\n'));
    await waitUntil(() => a.text().includes('pong'), 10_000, 'b → a');
    const closed = new Promise((r) => a.t.once('close', r));
    await pair.kill();
    await closed; // EIO on the vanished pty: noticed without any help from above
    assert.ok(a.faults.some((f) => f.kind === 'IO'), JSON.stringify(a.faults.map((f) => f.message)));
    assert.is(a.t.write(Buffer.from('lost')), false, 'writes while unplugged are refused');
    await new Promise((r) => setTimeout(r, 1000));
    await pair.restart();
    await waitUntil(() => a.opens() >= 2 && b.opens() >= 2 && a.t.isOpen && b.t.isOpen, 20_000, 'both reopened');
    a.t.write(Buffer.from('again\n'));
    await waitUntil(() => b.text().includes('again'), 10_000, 'data after the reconnect');
  });

  test('reopen() from above (a dead link) closes and reopens the port', async () => {
    const dir = tempDir('iscm-ser-');
    const pair = await ptyPair(dir);
    live.push(pair);
    const a = transport({ path: pair.a });
    a.t.start();
    await waitUntil(() => a.t.isOpen, 10_000, 'open');
    a.t.reopen('heartbeat: nothing received for 3500 ms');
    await waitUntil(() => a.opens() === 2 && a.t.isOpen, 10_000, 'reopened');
    assert.ok(a.faults.some((f) => f.kind === 'DEAD'));
  });

  test('EBUSY: the port is locked by another process, which the error names', async () => {
    if (!haveCommand('perl', 'perl-base', 'drivers serial EBUSY')) return;
    const dir = tempDir('iscm-ser-');
    const pair = await ptyPair(dir);
    live.push(pair);
    // flock(LOCK_EX|LOCK_NB) as serialport's own lock does.
    const holder = start('perl', ['-e', 'open(F, "+<", $ARGV[0]) or die "open: $!"; flock(F, 6) or die "flock: $!"; $| = 1; print "locked\\n"; sleep 120;', pair.a], { name: 'perl-holder' });
    live.push(holder);
    await holder.waitFor(/locked/, 10_000);
    const a = transport({ path: pair.a });
    a.t.start();
    await waitUntil(() => a.faults.length > 0, 10_000, 'fault');
    const f = a.faults[0];
    assert.is(f.kind, 'BUSY');
    assert.ok(f.holders.some((h) => h.pid === holder.pid), JSON.stringify(f.holders));
    assert.match(f.message, new RegExp(`PID ${holder.pid} \\(perl`));
    // Released: the transport gets the port by itself.
    await holder.kill9();
    await waitUntil(() => a.t.isOpen, 10_000, 'open after the holder went away');
  });

  test('EACCES: permission denied names the dialout fix', async () => {
    const dir = tempDir('iscm-ser-');
    const pair = await ptyPair(dir);
    live.push(pair);
    const dev = readlinkSync(pair.a);
    if (process.getuid?.() === 0) {
      // Root may open anything: try as nobody in a child process.
      chmodSync(dev, 0o600);
      const script = `import('${join(root, 'drivers/serial/transport.ts')}').then((m) => { const t = new m.SerialTransport({ path: '${pair.a}' }); t.on('fault', (e) => { console.log('FAULT ' + e.kind + ' ' + e.message); process.exit(0); }); t.start(); });`;
      const child = spawn(process.execPath, ['--import', 'tsx', '-e', script], { cwd: root, uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TSX_TSCONFIG_PATH: join(root, 'tsconfig.json') } });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      const code = await new Promise((r) => child.on('exit', r));
      assert.is(code, 0, out);
      assert.match(out, /FAULT ACCESS_DENIED .*permission denied.*dialout/);
    } else {
      chmodSync(dev, 0);
      const a = transport({ path: pair.a });
      a.t.start();
      await waitUntil(() => a.faults.length > 0, 10_000, 'fault');
      assert.is(a.faults[0].kind, 'ACCESS_DENIED');
    }
  });

  test('RS-485 kernel mode on a port without RS-485 (a pty): typed RS485_UNSUPPORTED, no crash', async () => {
    if (!haveCommand('perl', 'perl-base', 'drivers serial RS-485') && !haveCommand('python3', 'python3', 'drivers serial RS-485')) return;
    const dir = tempDir('iscm-ser-');
    const pair = await ptyPair(dir);
    live.push(pair);
    const a = transport({ path: pair.a, rs485: { mode: 'kernel' } });
    a.t.start();
    await waitUntil(() => a.faults.length > 0, 10_000, 'fault');
    assert.is(a.faults[0].kind, 'RS485_UNSUPPORTED', a.faults[0].message);
    assert.match(a.faults[0].message, /no RS-485 mode/);
    // auto mode needs no ioctl and opens.
    const b = transport({ path: pair.b, rs485: { mode: 'auto' } });
    b.t.start();
    await waitUntil(() => b.t.isOpen, 10_000, 'auto mode opens');
  });
}

test('RS-485 ioctl number and flags', () => {
  assert.is(tiocsrs485('x64'), 0x542f);
  assert.is(tiocsrs485('arm64'), 0x542f);
  assert.is(tiocsrs485('arm'), 0x542f);
  assert.is(tiocsrs485('mips64el'), 0xc020542f);
  assert.is(rs485Flags({ mode: 'kernel' }), 0b11);
  assert.is(rs485Flags({ mode: 'kernel', rtsOnSend: false, rtsAfterSend: true, rxDuringTx: true, terminateBus: true }), 1 | 4 | 16 | 32);
  assert.is(rs485Flags({ mode: 'auto' }), 0);
});

test('port listing reads /sys and /dev/serial, never udevadm', () => {
  const dir = tempDir('iscm-sys-');
  const sys = join(dir, 'sys');
  const devices = join(sys, 'devices');
  const cls = join(sys, 'class/tty');
  const drivers = join(sys, 'drivers');
  mkdirSync(cls, { recursive: true });
  for (const d of ['ftdi_sio', 'serial8250']) mkdirSync(join(drivers, d), { recursive: true });
  // A USB adapter: device → interface dir → usb device dir with idVendor.
  const usbDev = join(devices, 'usb1/1-1');
  const iface = join(usbDev, '1-1:1.0/ttyUSB0');
  mkdirSync(iface, { recursive: true });
  writeFileSync(join(usbDev, 'idVendor'), '0403\n');
  writeFileSync(join(usbDev, 'idProduct'), '6001\n');
  writeFileSync(join(usbDev, 'manufacturer'), 'FTDI\n');
  writeFileSync(join(usbDev, 'serial'), 'A12345\n');
  symlinkSync(join(drivers, 'ftdi_sio'), join(iface, 'driver'));
  mkdirSync(join(cls, 'ttyUSB0'));
  symlinkSync(iface, join(cls, 'ttyUSB0/device'));
  // Two 8250 ports: one without a UART (type 0), one real.
  for (const [n, type] of [['ttyS0', '0'], ['ttyS1', '4']]) {
    const d = join(devices, `platform/serial8250/${n}`);
    mkdirSync(d, { recursive: true });
    symlinkSync(join(drivers, 'serial8250'), join(d, 'driver'));
    mkdirSync(join(cls, n));
    symlinkSync(d, join(cls, `${n}/device`));
    writeFileSync(join(cls, `${n}/type`), `${type}\n`);
  }
  mkdirSync(join(cls, 'tty1')); // virtual console: no device
  const ports = listPorts(cls, '/dev');
  assert.equal(ports.map((p) => p.path), ['/dev/ttyS1', '/dev/ttyUSB0']);
  assert.is(ports[1].driver, 'ftdi_sio');
  assert.equal(ports[1].usb, { vendorId: '0403', productId: '6001', manufacturer: 'FTDI', serial: 'A12345' });
  // The real system: no throw whatever is there.
  assert.ok(Array.isArray(listPorts()));
  assert.equal(listPorts(join(dir, 'nothing')), []);
});

test('`iscm-edge firmware ports` works with no udevadm on PATH', async () => {
  const dir = tempDir('iscm-path-');
  const p = start(process.execPath, ['--import', 'tsx', join(root, 'runtime/cli/iscm-edge.ts'), 'firmware', 'ports'], { cwd: root, env: { ...process.env, PATH: dir } });
  assert.is(await p.exited, 0, p.output());
});

test.run();
