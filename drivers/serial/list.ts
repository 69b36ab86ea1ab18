// Serial port listing without udevadm: serialport's own list() spawns
// `udevadm info -e` and crashes where udev is absent (containers, OpenWrt,
// minimal gateways). We read what the kernel and udev leave in the
// filesystem instead: /sys/class/tty/* (which ttys have a real device and
// which driver), the USB attributes up the sysfs tree, and the
// /dev/serial/by-id and by-path links when udev made them. Never throws.
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export interface PortEntry {
  /** The device node, e.g. /dev/ttyUSB0. */
  path: string;
  /** Stable names from udev, e.g. /dev/serial/by-id/usb-FTDI_…-if00-port0 (prefer these in configs). */
  links: string[];
  /** Kernel driver, e.g. ftdi_sio, cp210x, ch341-uart, cdc_acm, serial8250, pl011. */
  driver?: string;
  usb?: { vendorId?: string; productId?: string; manufacturer?: string; product?: string; serial?: string };
}

const read = (p: string): string | undefined => {
  try {
    return readFileSync(p, 'utf8').trim();
  } catch {
    return undefined;
  }
};

function links(): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const d of ['/dev/serial/by-id', '/dev/serial/by-path']) {
    let names: string[] = [];
    try {
      names = readdirSync(d);
    } catch {
      continue;
    }
    for (const n of names) {
      try {
        const real = realpathSync(join(d, n));
        m.set(real, [...(m.get(real) ?? []), join(d, n)]);
      } catch {
        /* dangling link */
      }
    }
  }
  return m;
}

export function listPorts(sysClass = '/sys/class/tty', dev = '/dev'): PortEntry[] {
  const out: PortEntry[] = [];
  let names: string[];
  try {
    names = readdirSync(sysClass);
  } catch {
    return out;
  }
  const byReal = links();
  const sysRoot = dirname(dirname(sysClass));
  for (const name of names.sort()) {
    const base = join(sysClass, name);
    const devLink = join(base, 'device');
    if (!existsSync(devLink)) continue; // virtual: tty*, pts, console, ptmx
    let device: string;
    try {
      device = realpathSync(devLink);
    } catch {
      continue;
    }
    let driver: string | undefined;
    try {
      driver = basename(realpathSync(join(device, 'driver')));
    } catch {
      driver = undefined;
    }
    // 8250 registers ttyS0..N whether or not a UART is there; type 0 = none.
    if (driver === 'serial8250' || /^ttyS\d+$/.test(name)) {
      const type = read(join(base, 'type'));
      if (type !== undefined && type === '0') continue;
    }
    const path = join(dev, name);
    const e: PortEntry = { path, links: byReal.get(path) ?? [] };
    if (driver) e.driver = driver;
    // USB attributes live a few levels up (interface → device).
    for (let d = device, i = 0; i < 6 && d !== '/' && d.startsWith(sysRoot); i++, d = dirname(d)) {
      const vid = read(join(d, 'idVendor'));
      if (vid) {
        e.usb = { vendorId: vid, productId: read(join(d, 'idProduct')), manufacturer: read(join(d, 'manufacturer')), product: read(join(d, 'product')), serial: read(join(d, 'serial')) };
        for (const k of Object.keys(e.usb) as (keyof NonNullable<PortEntry['usb']>)[]) if (e.usb[k] === undefined) delete e.usb[k];
        break;
      }
    }
    out.push(e);
  }
  return out;
}
