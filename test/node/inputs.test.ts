// The light node's other reading sources, through the real process:
// - the local input socket: answers in order, once durable; bad lines named;
//   exactly-once with boot_id + seq; a `firmware listen` capture line replayed;
// - a GPS receiver on its own UART (a socat pty) speaking NMEA 0183: one gps
//   event per fix, void cycles and broken sentences counted, not recorded.
// No broker runs: the node journals and signs offline (sync keeps retrying).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createConnection, type Socket } from 'node:net';
import { openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { ALG } from '../../protocol/cose/algorithms.js';
import { decodeRecord } from '../../protocol/record.js';
import { generateKeyFile } from '../../drivers/software/keyfile.js';
import { nmeaSentence } from '../../drivers/gps/driver.js';
import { FileJournal } from '../../runtime/journal/index.js';
import { haveSocat, ptyPair, type PtyPair } from '../helpers/socat.js';
import type { Proc } from '../helpers/proc.js';
import { freePort, metric, metricsText, startNode, status, tempDir, waitUntil, writeNodeConfig } from './_env.js';

const SUITE = 'light node inputs';
const ok = haveSocat(SUITE);
const DEVICE = 'inputs-dev';
const PASS = 'inputs test passphrase';
let node: Proc;
let pty: PtyPair;
let dir: string;
let sock: string;
let metricsPort: number;

/** A client of the local socket that collects answer lines. */
function client(): Promise<{ s: Socket; answers: Record<string, unknown>[]; send(l: string): void }> {
  return new Promise((resolve, reject) => {
    const s = createConnection(sock);
    const answers: Record<string, unknown>[] = [];
    let buf = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      buf += d;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        answers.push(JSON.parse(buf.slice(0, i)));
        buf = buf.slice(i + 1);
      }
    });
    s.once('error', reject);
    s.once('connect', () => resolve({ s, answers, send: (l) => s.write(l + '\n') }));
  });
}

const today = () => {
  const d = new Date();
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getUTCDate())}${p(d.getUTCMonth() + 1)}${String(d.getUTCFullYear()).slice(2)}`;
};

if (ok) {
  test.before(async () => {
    dir = tempDir('iscm-inputs-');
    pty = await ptyPair(dir, 'gps');
    const keyFile = join(dir, 'device.key');
    await generateKeyFile(keyFile, ALG.EdDSA, { passphraseEnv: 'DEV_PASS', env: { DEV_PASS: PASS } }, { scrypt: { N: 2 ** 10 } });
    metricsPort = await freePort();
    sock = join(dir, 'readings.sock');
    const deadBroker = await freePort();
    const config = writeNodeConfig({
      deviceId: DEVICE,
      dir: join(dir, 'node'),
      mqttUrl: `mqtt://127.0.0.1:${deadBroker}`,
      ledgerPem: join(dir, 'none.pem'),
      softwareKey: { file: keyFile, passEnv: 'DEV_PASS' },
      metricsPort,
      ports: { rx: { path: pty.a, sensors: ['g1'], protocol: 'nmea', baud: 9600 } },
      extra: `local_input:\n  socket: ${sock}\n  mode: "0600"`,
    });
    // trust.ledger_keys must exist as a file: any PEM public key will do (no receipts come).
    const { generateKeyPairSync } = await import('node:crypto');
    (await import('node:fs')).writeFileSync(join(dir, 'none.pem'), generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }));
    node = await startNode(config, { DEV_PASS: PASS });
  });
  test.after(async () => {
    await node?.stop();
    await pty?.stop();
  });

  test('local socket: every line answered in order once durable; bad lines named, never recorded', async () => {
    const c = await client();
    const before = (await status(metricsPort)).journal.last_seq as number;
    c.send('{"sensor":"t1","kind":"temperature","values":{"celsius":4.2}}');
    c.send('{"sensor":"h1","kind":"humidity","values":{"percent":55},"time":"2026-12-01T10:00:00Z"}');
    c.send('not json');
    c.send('{"sensor":"t9","kind":"temperature","values":{"celsius":4}}');
    c.send('{"sensor":"t1","kind":"temperature","values":{"celsius":"warm"}}');
    c.send('{"sensor":"t1","kind":"humidity","values":{"percent":4}}');
    c.send('{"sensor":"t1","kind":"temperature","values":{"celsius":5},"seq":3}');
    c.send('{"sensor":"d1","kind":"door","values":{"open":true},"boot_id":4242,"seq":1}');
    await waitUntil(() => c.answers.length === 8, 20_000, '8 answers');
    assert.equal(c.answers.map((a) => a.line), [1, 2, 3, 4, 5, 6, 7, 8], 'one answer per line, in order');
    assert.equal(c.answers.map((a) => a.ok), [true, true, false, false, false, false, false, true]);
    assert.match(String(c.answers[2].error), /not JSON/);
    assert.match(String(c.answers[3].error), /sensor "t9" is not in the gateway config/);
    assert.is(c.answers[4].field, 'line.values.celsius');
    assert.match(String(c.answers[5].error), /configured as temperature, not humidity/);
    assert.match(String(c.answers[6].error), /boot_id and seq go together/);
    assert.ok(c.answers.every((a) => a.ok || a.retry === false), 'bad input is not worth a retry');
    assert.equal([c.answers[7].boot_id, c.answers[7].seq], [4242, 1]);
    const after = (await status(metricsPort)).journal.last_seq as number;
    assert.is(after - before, 3, 'three events recorded, none for the bad lines');
    // The same exactly-once line again: answered ok, not recorded twice.
    c.send('{"sensor":"d1","kind":"door","values":{"open":true},"boot_id":4242,"seq":1}');
    // A line of a `firmware listen` capture, as it is.
    c.send('{"boot_id":777,"seq":9,"sensor":"t1","kind":"temperature","time":1764500000000,"time_source":"mcu","values":{"celsius":3.5}}');
    await waitUntil(() => c.answers.length === 10, 20_000, '10 answers');
    assert.equal([c.answers[8].ok, c.answers[9].ok], [true, true]);
    assert.is((await status(metricsPort)).journal.last_seq - after, 1, 'the duplicate was not recorded again; the capture line was');
    const m = await metricsText(metricsPort);
    assert.is(metric(m, 'iscm_local_lines_total', 'outcome="invalid"'), 5);
    c.s.end();
  });

  test('GPS receiver on its own port (NMEA 0183): one gps event per fix; void cycles and bad sentences are counted, not recorded', async () => {
    const before = (await status(metricsPort)).journal.last_seq as number;
    const fd = openSync(pty.b, 'w');
    const day = today();
    const w = (s: string) => writeSync(fd, s + '\r\n');
    for (let i = 0; i < 5; i++) {
      const tod = `1200${String(i).padStart(2, '0')}.00`;
      w(nmeaSentence(`GPRMC,${tod},A,5231.1234,N,01323.4567,E,12.5,90.0,${day},,,A`));
      w(nmeaSentence(`GPGGA,${tod},5231.1234,N,01323.4567,E,1,09,0.9,34.2,M,44.1,M,,`));
    }
    w(nmeaSentence(`GPRMC,120005.00,V,,,,,,,${day},,,N`)); // no fix
    w('$GPRMC,120006.00,A,5231.1234,N,01323.4567,E,12.5,90.0,' + day + ',,,A*00'); // bad checksum
    w(nmeaSentence(`GPRMC,120007.00,A,5231.2000,N,01323.5000,E,12.5,90.0,${day},,,A`));
    w(nmeaSentence(`GPRMC,120008.00,A,5231.3000,N,01323.6000,E,12.5,90.0,${day},,,A`)); // closes 120007
    closeSync(fd);
    await waitUntil(async () => (await status(metricsPort)).journal.last_seq - before >= 6, 20_000, 'gps events');
    await new Promise((r) => setTimeout(r, 500));
    const s = await status(metricsPort);
    assert.is(s.journal.last_seq - before, 6, 'fixes at 120000..120004 and 120007; none for the void cycle or the broken sentence');
    assert.is(s.links.rx.protocol, 'nmea');
    assert.ok(s.links.rx.bad_sentences >= 1);
    const m = await metricsText(metricsPort);
    assert.ok(metric(m, 'iscm_nmea_fixes_total', 'fix="none"') >= 1);
    assert.ok(metric(m, 'iscm_nmea_sentences_total', 'outcome="checksum"') >= 1);
  });

  test('the records: gps events carry the position; local events their sensors', async () => {
    await node.stop();
    const j = new FileJournal({ dir: join(dir, 'node', 'journal'), deviceId: DEVICE, readOnly: true, maxBytes: 64 << 20 });
    await j.open();
    const recs = [];
    for await (const r of j.records(1)) recs.push(decodeRecord(r.bytes));
    await j.close();
    const gps = recs.filter((r) => (r.source as { sensor?: string }).sensor === 'g1');
    assert.is(gps.length, 6);
    assert.match(JSON.stringify(gps[0].event), /geo:52\.51872/, 'readPoint from the fix');
    const sensors = recs.map((r) => (r.source as { sensor?: string }).sensor);
    assert.ok(sensors.includes('t1') && sensors.includes('h1') && sensors.includes('d1'));
  });
}

test.run();
