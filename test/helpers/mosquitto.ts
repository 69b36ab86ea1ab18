// Real mosquitto brokers for tests (ARCHITECTURE §6): Debian's `mosquitto`
// on 127.0.0.1 and a free port with its own config file and persistence dir,
// started and stopped by PID. `startGatewayBridge` starts a second broker as
// the gateway's local one, bridged to the first with the project's bridge
// config (configs/mosquitto/gateway-bridge.conf, rendered for the test).
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
  writeFileSync(file, `user ${userInfo().username}\n${conf}`);
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

/**
 * The consortium broker: the repo's configs/mosquitto/consortium.conf with
 * the port and directories of this test filled in.
 */
export async function startConsortiumBroker(o: { dir?: string; port?: number } = {}): Promise<Broker> {
  const dir = o.dir ?? tempDir('iscm-mosq-');
  const port = o.port ?? (await freePort());
  mkdirSync(join(dir, 'data'), { recursive: true });
  const conf = readFileSync(join(root, 'configs/mosquitto/consortium.conf'), 'utf8')
    .replace(/^listener 1883.*$/m, `listener ${port} 127.0.0.1`)
    .replace(/^persistence_location .*$/m, `persistence_location ${join(dir, 'data')}/`)
    .replace(/^log_dest .*$/m, 'log_dest stderr')
    .replace(/#AUTH-BEGIN[\s\S]*#AUTH-END/, 'allow_anonymous true');
  return run('consortium', conf, dir, port);
}

/**
 * A gateway's local broker bridged to `upstream`, with the repo's
 * configs/mosquitto/gateway-bridge.conf: `devices` are the device ids this
 * gateway serves (their batch/status topics go out, their receipts come in).
 */
export async function startGatewayBridge(upstream: Broker, gatewayId: string, devices: string[], o: { dir?: string; port?: number; prefix?: string } = {}): Promise<Broker> {
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
  return run(`gateway-${gatewayId}`, conf, dir, port);
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
