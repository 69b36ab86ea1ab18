// Checks between sections, which a JSON Schema cannot express: references
// (a port's sensors, a sensor's window, a rule's sensor), what each sensor
// kind allows, addresses that must stay local, and — with `config check
// --files` — that referenced files and environment variables exist and that
// secret files are private.
import { accessSync, constants, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { isIP } from 'node:net';
import type { ConfigIssue } from './validate.js';
import type { GatewayConfig } from './types.js';
import { didYouMean } from './suggest.js';

type Report = (path: string, message: string, severity?: 'error' | 'warning') => void;

const WINDOW_KINDS = ['temperature', 'humidity', 'shock', 'gps'];
const RULE_KINDS = ['temperature', 'humidity', 'shock', 'door'];

/** Cross-section checks on a config whose sections each validated. */
export function semanticChecks(c: GatewayConfig, report: Report): void {
  const sensorIds = Object.keys(c.sensors);
  // Ports name existing sensors, each sensor on one port.
  const portOf = new Map<string, string>();
  for (const [name, p] of Object.entries(c.ports)) {
    p.sensors.forEach((id, i) => {
      if (!c.sensors[id]) report(`ports.${name}.sensors[${i}]`, `sensor "${id}" is not defined under sensors${didYouMean(id, sensorIds)}`);
      else if (portOf.has(id)) report(`ports.${name}.sensors[${i}]`, `sensor "${id}" is already on port ${portOf.get(id)}; a sensor reports on one port`);
      else portOf.set(id, name);
    });
  }
  for (const [name, p] of Object.entries(c.ports)) {
    if (p.protocol !== 'nmea') continue;
    // A GPS receiver has no sensor ids of its own: its fixes are reported as the one gps sensor listed.
    if (p.sensors.length !== 1) report(`ports.${name}.sensors`, `an nmea port reports its fixes as exactly one gps sensor; it lists ${p.sensors.length}`);
    else if (c.sensors[p.sensors[0]] && c.sensors[p.sensors[0]].kind !== 'gps') report(`ports.${name}.sensors[0]`, `sensor "${p.sensors[0]}" is ${c.sensors[p.sensors[0]].kind}; an nmea port can only report a gps sensor`);
    if (p.rs485) report(`ports.${name}.rs485`, 'NMEA receivers talk plain UART; rs485 does not apply to an nmea port');
  }
  for (const [id, s] of Object.entries(c.sensors)) {
    const at = `sensors.${id}`;
    if (Object.keys(c.ports).length > 0 && !portOf.has(id)) report(at, `is on no port (list it under ports.<name>.sensors), so its readings would be refused as unknown`, 'warning');
    if (s.window !== undefined) {
      if (!c.windows[s.window]) report(`${at}.window`, `window "${s.window}" is not defined under windows${didYouMean(s.window, Object.keys(c.windows))}`);
      else if (!WINDOW_KINDS.includes(s.kind)) report(`${at}.window`, `${s.kind} sensors are not aggregated (every ${s.kind} reading is an event); remove window (windows apply to ${WINDOW_KINDS.join(', ')})`);
    } else if (s.raw) report(`${at}.raw`, 'raw: true only matters with a window (without one, every reading is its own event already)', 'warning');
    if (s.station && s.kind !== 'rfid') report(`${at}.station`, `only rfid readers can be packing stations (this sensor is ${s.kind})`);
    if (s.error_codes.length > 0 && s.kind !== 'alarm') report(`${at}.error_codes`, `only alarm sensors send codes (this sensor is ${s.kind})`);
  }
  for (const [name, r] of Object.entries(c.rules)) {
    const at = `rules.${name}`;
    let kind = r.kind;
    if (r.sensor !== undefined) {
      const s = c.sensors[r.sensor];
      if (!s) {
        report(`${at}.sensor`, `sensor "${r.sensor}" is not defined under sensors${didYouMean(r.sensor, sensorIds)}`);
        continue;
      }
      kind = s.kind;
    } else if (kind && !Object.values(c.sensors).some((s) => s.kind === kind)) report(`${at}.kind`, `no sensor of kind ${kind} is defined, so this rule never fires`, 'warning');
    if (!kind) continue;
    if (!RULE_KINDS.includes(kind)) {
      report(at, `rules watch ${RULE_KINDS.join(', ')} sensors; ${kind} readings have no threshold`);
      continue;
    }
    if (kind === 'door') {
      if (r.above !== undefined || r.below !== undefined) report(at, 'a door rule has no above/below; it fires on open (or on closed with open: false)');
    } else if (r.above === undefined && r.below === undefined) report(at, `needs "above" or "below" (the ${kind} threshold)`);
    else if (r.above !== undefined && r.below !== undefined && r.below > r.above) report(at, `below (${r.below}) is above "above" (${r.above}): the rule fires outside [below, above], so below must not exceed above`);
  }
  const gps = Object.values(c.sensors).some((s) => s.kind === 'gps');
  if (c.locations.use_gps && !gps) report('locations.use_gps', 'no gps sensor is defined, so there is no fix to use', 'warning');
  if (!c.locations.read_point && !c.locations.use_gps && c.assets.epcs.length === 0 && c.assets.quantities.length === 0 && Object.values(c.sensors).some((s) => s.kind !== 'rfid' && !s.read_point))
    report('locations', 'sensor events will name neither assets nor a read point, so nobody can tell what they are about: set locations.read_point or assets', 'warning');
  // Signer.
  const sg = c.signer;
  if (sg.driver === 'pkcs11' && sg.key_label !== undefined && sg.token === undefined && sg.slot === undefined) report('signer', 'with key_label, name the token (signer.token) or its slot (signer.slot)');
  if (sg.driver === 'pkcs11' && sg.uri !== undefined && !/[:;]object=|[:;]id=/.test(sg.uri)) report('signer.uri', 'names no key: add object=<key label> (or id=…) to the PKCS#11 URI');
  // MQTT.
  const scheme = /^([a-z]+):/.exec(c.mqtt.url)?.[1];
  if (c.mqtt.tls && (scheme === 'mqtt' || scheme === 'ws')) report('mqtt.tls', `TLS files are set but the url is ${scheme}://, which does not use TLS; use ${scheme}s://`);
  if (c.mqtt.tls && (c.mqtt.tls.cert_file === undefined) !== (c.mqtt.tls.key_file === undefined)) report('mqtt.tls', 'cert_file and key_file go together (mutual TLS needs both)');
  if (c.mqtt.password_file === undefined && c.mqtt.password_env === undefined && c.mqtt.username !== undefined) report('mqtt.username', 'a user name without password_file or password_env: the broker will see no password', 'warning');
  // Metrics stay local unless asked.
  if (c.metrics.enabled && !c.metrics.allow_remote) {
    const host = c.metrics.listen.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
    const loopback = host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
    if (!loopback) report('metrics.listen', `${c.metrics.listen} is reachable from the network; metrics reveal operational details. Listen on 127.0.0.1, or set metrics.allow_remote: true if a firewall protects it`);
  }
}

/** With `config check --files`: referenced files, folders and environment variables exist; secret files are private. */
export function fileChecks(c: GatewayConfig, env: Record<string, string | undefined>, report: Report): void {
  const file = (path: string, p: string | undefined, secret = false) => {
    if (p === undefined) return;
    let st;
    try {
      st = statSync(p);
    } catch {
      return report(path, `${p} does not exist`);
    }
    if (!st.isFile()) return report(path, `${p} is not a file`);
    try {
      accessSync(p, constants.R_OK);
    } catch {
      return report(path, `${p} is not readable by this user`);
    }
    if (secret && (st.mode & 0o077) !== 0) report(path, `${p} is readable by other users (mode ${(st.mode & 0o777).toString(8)}); it holds a secret: chmod 600 ${p}`);
  };
  const variable = (path: string, name: string | undefined) => {
    if (name !== undefined && !env[name]) report(path, `environment variable ${name} is not set (or empty)`);
  };
  const s = c.signer;
  file('signer.key_file', s.key_file);
  file('signer.passphrase_file', s.passphrase_file, true);
  variable('signer.passphrase_env', s.passphrase_env);
  file('signer.module', s.module);
  file('signer.pin_file', s.pin_file, true);
  variable('signer.pin_env', s.pin_env);
  file('mqtt.password_file', c.mqtt.password_file, true);
  variable('mqtt.password_env', c.mqtt.password_env);
  file('mqtt.tls.ca_file', c.mqtt.tls?.ca_file);
  file('mqtt.tls.cert_file', c.mqtt.tls?.cert_file);
  file('mqtt.tls.key_file', c.mqtt.tls?.key_file, true);
  c.trust.ledger_keys.forEach((k, i) => file(`trust.ledger_keys[${i}]`, k));
  for (const [name, p] of Object.entries(c.ports)) {
    try {
      statSync(p.path);
    } catch {
      report(`ports.${name}.path`, `${p.path} does not exist (is the adapter plugged in?)`, 'warning');
    }
  }
  // The journal folder exists, or can be created in an existing, writable parent.
  let dir = c.journal.dir;
  for (;;) {
    try {
      const st = statSync(dir);
      if (!st.isDirectory()) return report('journal.dir', `${dir} is not a folder`);
      accessSync(dir, constants.W_OK);
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EACCES') return report('journal.dir', `${dir} is not writable by this user`);
      const up = dirname(dir);
      if (up === dir) return report('journal.dir', `no existing parent folder of ${c.journal.dir}`);
      dir = up;
    }
  }
}

export type { ConfigIssue };
