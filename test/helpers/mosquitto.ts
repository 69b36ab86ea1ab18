// Real mosquitto brokers for tests (ARCHITECTURE §6): Debian's `mosquitto`
// on 127.0.0.1 and a free port with its own config file and persistence dir,
// started and stopped by PID. `startGatewayBridge` starts a second broker as
// the gateway's local one, bridged to the first with the project's bridge
// config (configs/mosquitto/gateway-bridge.conf, rendered for the test).
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { fileURLToPath } from 'node:url';
import { connect } from 'node:net';
import { freePort, haveCommand, start, tempDir, waitUntil, type Proc } from './proc.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

export interface Broker {
  port: number;
  url: string;
  dir: string;
  proc: Proc;
  stop(): Promise<void>;
  kill9(): Promise<void>;
}

export function mosquittoAvailable(suite: string): boolean {
  return haveCommand('mosquitto', 'mosquitto', suite);
}

async function run(name: string, conf: string, dir: string, port: number): Promise<Broker> {
  const file = join(dir, `${name}.conf`);
  // Started as root, mosquitto would switch to the "mosquitto" user and lose access to the temp dir.
  writeFileSync(file, `user ${userInfo().username}\n${conf}`, { mode: 0o600 });
  const proc = start('mosquitto', ['-c', file], { name });
  await waitUntil(
    () =>
      new Promise<boolean>((resolve, reject) => {
        if (proc.child.exitCode !== null) return reject(new Error(`${name} exited: ${proc.output().slice(-1000)}`));
        const s = connect(port, '127.0.0.1', () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      }),
    15_000,
    `${name} listening on ${port}`,
    100,
  );
  return { port, url: `mqtt://127.0.0.1:${port}`, dir, proc, stop: () => proc.stop(), kill9: () => proc.kill9() };
}

/** Users and their gateways' devices for a consortium broker with its production auth. */
export interface BrokerAuth {
  /** The ledger processes' user (the ACL's "user ledger" block). */
  ledgerPassword: string;
  /** One user per gateway: its password and the devices it serves. */
  gateways: Record<string, { password: string; devices: string[] }>;
}

/**
 * A mosquitto password file (hashed by `mosquitto_passwd -U`, so no password
 * is ever an argument) for the ledger and the gateways of `auth`.
 */
function writePasswordFile(file: string, auth: BrokerAuth): void {
  const users = [['ledger', auth.ledgerPassword], ...Object.entries(auth.gateways).map(([u, g]) => [u, g.password])];
  writeFileSync(file, users.map(([u, p]) => `${u}:${p}`).join('\n') + '\n', { mode: 0o600 });
  execFileSync('mosquitto_passwd', ['-U', file], { stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * The repo's configs/mosquitto/consortium.acl as an installer would render it:
 * the ledger block as shipped, and the example gateway block repeated once per
 * gateway user with its own device ids.
 */
export function renderConsortiumAcl(gateways: Record<string, { devices: string[] }>): string {
  const tpl = readFileSync(join(root, 'configs/mosquitto/consortium.acl'), 'utf8');
  const at = tpl.indexOf('\nuser gw-truck-0042\n');
  if (at < 0) throw new Error('configs/mosquitto/consortium.acl: the example gateway block "user gw-truck-0042" is gone; update test/helpers/mosquitto.ts');
  const head = tpl.slice(0, at + 1);
  const block = tpl.slice(at + 1).split('\n').filter((l) => l.startsWith('user ') || l.startsWith('topic '));
  const out = [head];
  for (const [user, g] of Object.entries(gateways)) {
    out.push(`user ${user}`);
    for (const l of block.slice(1)) {
      if (!l.includes('reefer-0042-t1')) out.push(l);
      else for (const d of g.devices) out.push(l.replace('reefer-0042-t1', d));
    }
    out.push('');
  }
  return out.join('\n');
}

/**
 * The consortium broker: the repo's configs/mosquitto/consortium.conf with
 * the port and directories of this test filled in. Without `auth` its auth
 * block becomes "allow_anonymous true" (loopback only); with it the block is
 * kept as shipped, pointing at a password file and the rendered ACL.
 */
export async function startConsortiumBroker(o: { dir?: string; port?: number; auth?: BrokerAuth } = {}): Promise<Broker> {
  const dir = o.dir ?? tempDir('iscm-mosq-');
  const port = o.port ?? (await freePort());
  mkdirSync(join(dir, 'data'), { recursive: true });
  let conf = readFileSync(join(root, 'configs/mosquitto/consortium.conf'), 'utf8')
    .replace(/^listener 1883.*$/m, `listener ${port} 127.0.0.1`)
    .replace(/^persistence_location .*$/m, `persistence_location ${join(dir, 'data')}/`)
    .replace(/^log_dest .*$/m, 'log_dest stderr');
  if (o.auth) {
    writePasswordFile(join(dir, 'iscm.passwd'), o.auth);
    writeFileSync(join(dir, 'iscm.acl'), renderConsortiumAcl(o.auth.gateways));
    conf = conf.replace(/^password_file .*$/m, `password_file ${join(dir, 'iscm.passwd')}`).replace(/^acl_file .*$/m, `acl_file ${join(dir, 'iscm.acl')}`);
    if (!/#AUTH-BEGIN\nallow_anonymous false\n/.test(conf)) throw new Error('configs/mosquitto/consortium.conf: the auth block no longer starts with "allow_anonymous false"');
  } else conf = conf.replace(/#AUTH-BEGIN[\s\S]*#AUTH-END/, 'allow_anonymous true');
  return run('consortium', conf, dir, port);
}

/**
 * A gateway's local broker bridged to `upstream`, with the repo's
 * configs/mosquitto/gateway-bridge.conf: `devices` are the device ids this
 * gateway serves (their batch/status topics go out, their receipts come in).
 */
export async function startGatewayBridge(upstream: Broker, gatewayId: string, devices: string[], o: { dir?: string; port?: number; prefix?: string; login?: { username: string; password: string } } = {}): Promise<Broker> {
  const dir = o.dir ?? tempDir('iscm-gw-');
  const port = o.port ?? (await freePort());
  mkdirSync(join(dir, 'data'), { recursive: true });
  const prefix = o.prefix ?? 'iscm/v1';
  const tpl = readFileSync(join(root, 'configs/mosquitto/gateway-bridge.conf'), 'utf8');
  const perDevice = (line: string) => devices.map((d) => line.replace(/\{device_id\}/g, d)).join('\n');
  const conf = tpl
    .replace(/^listener 1883.*$/m, `listener ${port} 127.0.0.1`)
    .replace(/^persistence_location .*$/m, `persistence_location ${join(dir, 'data')}/`)
    .replace(/^log_dest .*$/m, 'log_dest stderr')
    .replace(/^address .*$/m, `address 127.0.0.1:${upstream.port}`)
    .replace(/\{gateway_id\}/g, gatewayId)
    .replace(/\{prefix\}/g, prefix)
    .replace(/^(topic .*\{device_id\}.*)$/gm, (l) => perDevice(l));
  // The template's commented username login, switched on (remote_password is mosquitto's own; the test writes the file 0600).
  const withLogin = o.login ? conf.replace(/^#remote_username .*$/m, `remote_username ${o.login.username}\nremote_password ${o.login.password}`) : conf;
  if (o.login && withLogin === conf) throw new Error('configs/mosquitto/gateway-bridge.conf: no "#remote_username" line to switch on');
  return run(`gateway-${gatewayId}`, withLogin, dir, port);
}

/** A broker with only a TLS listener (mqtts), requiring client certificates signed by `ca` (mutual TLS). */
export async function startTlsBroker(o: { ca: string; cert: string; key: string; dir?: string; port?: number }): Promise<Broker> {
  const dir = o.dir ?? tempDir('iscm-mosq-tls-');
  const port = o.port ?? (await freePort());
  mkdirSync(join(dir, 'data'), { recursive: true });
  const conf = [
    `listener ${port} 127.0.0.1`,
    `cafile ${o.ca}`,
    `certfile ${o.cert}`,
    `keyfile ${o.key}`,
    'require_certificate true',
    'use_identity_as_username true',
    'allow_anonymous false',
    'persistence true',
    `persistence_location ${join(dir, 'data')}/`,
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    'log_type notice',
  ].join('\n');
  const b = await run('mosquitto-tls', conf, dir, port);
  return { ...b, url: `mqtts://127.0.0.1:${port}` };
}
