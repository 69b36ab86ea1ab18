// `npm start` / `iscm-devnet`: runs the embedded devnet (devnet/devnet.ts)
// for --duration seconds, shows live progress, then waits until every
// reading created is acknowledged, committed in the ledger and verified on
// its device, and prints the summary. Ctrl-C ends the run early the same
// way (a second Ctrl-C gives up waiting).
//
// Exit: 0 when nothing was lost, 1 when something was (or the drain timed
// out), 2 usage error.
import { parseArgs } from 'node:util';
import { mkdtempSync, rmSync, createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Devnet, type DevnetCounts } from './devnet.js';

const USAGE = `usage: npm start -- [options]     (or: node --import tsx devnet/cli.ts [options])

The whole system in one process: an MQTT broker, a ledger (in memory), and
K light nodes, each with a simulated sensor MCU. Shows readings, events,
batches, ledger commits and verified receipts as they happen; after
--duration the simulators stop and the devnet waits until everything
created is committed and verified, then prints the summary.

  --devices K     light nodes (default 3)
  --rate HZ       readings per second per device (default 20)
  --duration S    seconds of readings (default 20)
  --export DIR    write every committed event's proof bundle as DIR/*.iscm and the
                  ledger's public key as DIR/ledger-key.pem
                  (check them: iscm-edge verify --ledger-key DIR/ledger-key.pem DIR)
  --json          the last line printed is one JSON object: created, acknowledged,
                  committed, verified, lost, …
  --dir DIR       keep the work dir (journals, logs) here instead of a temp dir
  --drain-timeout S   give up waiting for the drain after S seconds (default 120)
  -h, --help

Exit: 0 nothing lost, 1 something lost or not drained in time, 2 usage error.`;

function fail(msg: string): never {
  process.stderr.write(`iscm-devnet: ${msg}\n\n${USAGE}\n`);
  process.exit(2);
}

function int(v: string | undefined, name: string, def: number, min: number, max: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max) fail(`--${name} ${v}: expected a number ${min}..${max}`);
  return n;
}

let args;
try {
  args = parseArgs({
    options: {
      devices: { type: 'string' },
      rate: { type: 'string' },
      duration: { type: 'string' },
      export: { type: 'string' },
      json: { type: 'boolean' },
      dir: { type: 'string' },
      'drain-timeout': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: false,
    strict: true,
  });
} catch (e) {
  fail((e as Error).message);
}
const v = args.values;
if (v.help) {
  process.stdout.write(USAGE + '\n');
  process.exit(0);
}
const devices = int(v.devices, 'devices', 3, 1, 64);
const rate = int(v.rate, 'rate', 20, 0.1, 5000);
const duration = int(v.duration, 'duration', 20, 1, 86_400);
const drainTimeout = int(v['drain-timeout'], 'drain-timeout', 120, 1, 86_400);
const keep = v.dir !== undefined;
const dir = keep ? resolve(v.dir!) : mkdtempSync(join(tmpdir(), 'iscm-devnet-'));
const tty = Boolean(process.stdout.isTTY) && !v.json;
const logFile = join(dir, 'devnet.log');
let logStream: ReturnType<typeof createWriteStream> | undefined;

const say = (line: string) => process.stdout.write(line + '\n');
const fmt = (c: DevnetCounts, t: number) =>
  `t=${String(Math.round(t)).padStart(3)}s  readings ${c.created}  acked ${c.acknowledged}  events ${c.events}  batches ${c.batches}  committed ${c.committed}  verified ${c.verified}  backlog ${c.backlog}`;

const net = new Devnet({ devices, rateHz: rate, dir, log: (l) => logStream?.write(l.endsWith('\n') ? l : l + '\n') });
(await import('node:fs')).mkdirSync(dir, { recursive: true });
logStream = createWriteStream(logFile, { flags: 'a' });
say(`iscm devnet: ${devices} light node${devices > 1 ? 's' : ''} × ${rate} readings/s for ${duration} s; broker, ledger and nodes in this process (work dir ${dir}, log ${logFile})`);
const t0 = Date.now();
try {
  await net.start();
} catch (e) {
  process.stderr.write(`iscm-devnet: cannot start: ${(e as Error).message}\n`);
  await net.stop().catch(() => {});
  process.exit(1);
}
say(`ledger API ${net.ledger!.apiUrl}; ledger key ${net.ledgerPem}`);

let interrupted = 0;
let wakeUp: (() => void) | undefined;
process.on('SIGINT', () => {
  interrupted++;
  if (interrupted === 1) process.stderr.write('\ninterrupted: stopping the simulators and waiting for everything created to be committed (Ctrl-C again to give up waiting)\n');
  wakeUp?.();
});
const sleep = (ms: number) =>
  new Promise<void>((r) => {
    const t = setTimeout(r, ms);
    wakeUp = () => {
      clearTimeout(t);
      r();
    };
  });
const progress = async () => {
  const c = await net.counts();
  const line = fmt(c, (Date.now() - t0) / 1000);
  if (tty) process.stdout.write(`\r\x1b[2K${line}`);
  else say(line);
};

// Readings phase: --duration counts from when the simulators run.
const end = Date.now() + duration * 1000;
while (Date.now() < end && interrupted === 0) {
  await sleep(tty ? 250 : 2000);
  await progress();
}
net.stopCreating();
// Drain phase.
const drainEnd = Date.now() + drainTimeout * 1000;
let settled = false;
while (interrupted < 2 && Date.now() < drainEnd) {
  if ((settled = await net.settled())) break;
  await sleep(tty ? 250 : 2000);
  await progress();
}
await progress();
if (tty) process.stdout.write('\n');
const counts = await net.counts();
const audit = await net.audit();
let exported: number | undefined;
if (v.export) {
  exported = await net.export(resolve(v.export));
  say(`exported ${exported} proof bundles to ${resolve(v.export)} (verify: iscm-edge verify --ledger-key ${join(resolve(v.export), 'ledger-key.pem')} ${resolve(v.export)})`);
}
const summary = {
  created: counts.created,
  acknowledged: counts.acknowledged,
  committed: counts.committed,
  verified: counts.verified,
  lost: audit.lost,
  duplicated: audit.duplicated,
  events: counts.events,
  batches: counts.batches,
  devices,
  seconds: Math.round((Date.now() - t0) / 100) / 10,
  drained: settled,
  ...(exported !== undefined ? { exported } : {}),
};
say(`summary: created ${summary.created}, acknowledged ${summary.acknowledged}, committed ${summary.committed}, verified ${summary.verified}, lost: ${summary.lost}${summary.duplicated ? `, duplicated: ${summary.duplicated}` : ''}${settled ? '' : ' (NOT drained: gave up waiting)'}`);
await net.stop();
logStream.end();
if (!keep) rmSync(dir, { recursive: true, force: true });
if (v.json) say(JSON.stringify(summary));
process.exit(summary.lost === 0 && summary.duplicated === 0 && settled ? 0 : 1);
