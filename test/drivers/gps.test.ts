// NMEA 0183 driver: unit cases, then the ten real receiver captures of
// ../shared/vectors/nmea (gpsd's .chk output as the reference).
//
// Framing decision: line by line (see drivers/gps/nmea.ts and docs/LINK.md):
// a sentence must be alone on its line; spliced lines are malformed. So the
// per-file counts asserted below are the README's line-rule counts (valid /
// bad checksum / malformed), not gpsd's "accepted" count (which differs on
// isync, triton400 and coldboot, where gpsd re-joins spliced sentences).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkValues } from '../../protocol/reading.js';
import { classifyLine, decodeSentence, NmeaError, parseSentence, type Gga, type Rmc } from '../../drivers/gps/nmea.js';
import { fixToReading, NmeaDriver, nmeaSentence, type GpsFix } from '../../drivers/gps/driver.js';
import { vectorDir } from '../helpers/vectors.js';

// ------------------------------------------------------------ unit

test('checksum: valid, wrong, lower-case hex, malformed shapes', () => {
  const good = '$GPGGA,223251.00,3757.92653,N,12231.94543,W,1,05,1.20,9.2,M,-25.1,M,,*6C';
  assert.is(classifyLine(good), 'valid');
  assert.is(classifyLine(good.replace('*6C', '*6c')), 'valid');
  assert.is(classifyLine(good.replace('*6C', '*6E')), 'checksum');
  assert.is(classifyLine(good.slice(0, 30)), 'malformed');
  assert.is(classifyLine('$GPGGA,0301$GPGLL,1,2*00'), 'malformed');
  assert.is(classifyLine('\u0000\u0000$GPRMC*00'), 'malformed');
  assert.throws(() => parseSentence(good.replace('*6C', '*6E')), (e: unknown) => e instanceof NmeaError && e.kind === 'checksum');
  assert.throws(() => parseSentence('garbage'), (e: unknown) => e instanceof NmeaError && e.kind === 'malformed');
});

test('talkers GP, GN, GL, IN and the worked example of the vectors README', () => {
  for (const t of ['GP', 'GN', 'GL', 'GA', 'IN']) {
    const line = nmeaSentence(`${t}RMC,223251.00,A,3757.92653,N,12231.94543,W,0.068,338.51,210416,0.00,E,A,V`);
    const d = decodeSentence(parseSentence(line)) as Rmc;
    assert.is(d.type, 'RMC');
    assert.is(d.talker, t);
    assert.ok(Math.abs(d.lat! - 37.965442167) < 1e-8);
    assert.ok(Math.abs(d.lon! + 122.532423833) < 1e-8);
    assert.equal(d.date, { year: 2016, month: 4, day: 21 });
  }
  const g = decodeSentence(parseSentence('$GPGGA,223251.00,3757.92653,N,12231.94543,W,1,05,1.20,9.2,M,-25.1,M,,*6C')) as Gga;
  assert.is(g.altMsl, 9.2);
  assert.is(g.geoidSep, -25.1);
  assert.is(g.sats, 5);
  assert.is(g.hdop, 1.2);
});

test('void fixes give mode 1 and no reading', () => {
  const fixes: GpsFix[] = [];
  const d = new NmeaDriver({ onFix: (f) => fixes.push(f) });
  d.push(nmeaSentence('GPRMC,081836,V,,,,,,,130998,,') + '\r\n');
  d.push(nmeaSentence('GPGGA,081837,,,,,0,00,99.99,,,,,,') + '\n');
  d.push(nmeaSentence('GPGLL,,,,,081838,V,N') + '\n');
  d.end();
  assert.is(fixes.length, 3);
  for (const f of fixes) {
    assert.is(f.mode, 1);
    assert.is(f.lat, undefined);
    assert.is(fixToReading(f), null);
  }
});

test('a cycle merges RMC + GGA + GSA + VTG into one 3D fix usable as a gps Reading', () => {
  const fixes: GpsFix[] = [];
  const d = new NmeaDriver({ onFix: (f) => fixes.push(f) });
  const text = [
    '$GPRMC,223251.00,A,3757.92653,N,12231.94543,W,0.068,338.51,210416,0.00,E,A,V*5B',
    '$GPVTG,338.51,T,0.00,M,0.068,N,0.126,K,A*24',
    '$GPGGA,223251.00,3757.92653,N,12231.94543,W,1,05,1.20,9.2,M,-25.1,M,,*6C',
    '$GPGSA,A,3,07,30,19,11,15,,,,,,,,2.88,1.20,2.62,1*10',
  ].join('\r\n') + '\r\n';
  // Feed in awkward chunks.
  for (let i = 0; i < text.length; i += 7) d.push(new TextEncoder().encode(text.slice(i, i + 7)));
  d.end();
  assert.is(fixes.length, 1);
  const f = fixes[0];
  assert.is(f.mode, 3);
  assert.is(f.time, Date.UTC(2016, 3, 21, 22, 32, 51));
  assert.is(f.altMsl, 9.2);
  assert.is(f.pdop, 2.88);
  const r = fixToReading(f)!;
  assert.ok(r);
  assert.is(r.timeSource, 'gps');
  assert.equal(checkValues('gps', r.values), r.values);
  assert.is(r.values.fix, '3d');
  assert.is(r.values.sats, 5);
});

test('junk without newlines is bounded and counted, not buffered forever', () => {
  const d = new NmeaDriver();
  d.push('x'.repeat(10_000));
  d.push('\n' + nmeaSentence('GPZDA,201530.00,04,07,2002,00,00') + '\n');
  d.end();
  assert.is(d.stats.malformed, 1);
  assert.is(d.stats.valid, 1);
});

test('field errors in a valid-checksum sentence are typed, never thrown out of the driver', () => {
  const errs: NmeaError[] = [];
  const d = new NmeaDriver({ onError: (e) => errs.push(e) });
  d.push(nmeaSentence('GPRMC,xx,A,3757.9,N,12231.9,W,0,0,210416,,') + '\n');
  d.push(nmeaSentence('GPGGA,223251.00,9957.92653,N,12231.94543,W,1,05,1.20,9.2,M,-25.1,M,,') + '\n');
  assert.is(d.stats.fieldErrors, 2);
  assert.ok(errs.every((e) => e instanceof NmeaError && e.kind === 'field'));
});

// ------------------------------------------------------------ vectors

const dir = vectorDir('nmea');
if (dir) {
  const g = join(dir, 'gpsd');
  // From the vectors README, "Counts and sizes (derived)": the line-by-line rule.
  const table: Record<string, { data: number; valid: number; checksum: number; malformed: number; types: Record<string, number> }> = {
    'navika-100-fix': { data: 180, valid: 180, checksum: 0, malformed: 0, types: { GPRMC: 20, GPVTG: 20, GPGGA: 20, GPGSA: 20, GPGLL: 20, GPZDA: 20, GPGSV: 60 } },
    'gr8013-w': { data: 48, valid: 48, checksum: 0, malformed: 0, types: { GNRMC: 3, GNVTG: 3, GNGGA: 3, GNGSA: 6, GNGLL: 3, GNZDA: 3, GNGST: 3, GNGBS: 3, GPGSV: 12, GLGSV: 9 } },
    'humminbird-M37': { data: 98, valid: 98, checksum: 0, malformed: 0, types: { INRMC: 17, INGLL: 8, INVTG: 8, INGGA: 8, INZDA: 8, INDPT: 33, INMTW: 16 } },
    'nmea-fuzzy-cases': { data: 28, valid: 28, checksum: 0, malformed: 0, types: { GPGGA: 7, GPRMC: 7, GNGGA: 7, GNRMC: 7 } },
    'firefly-II': { data: 69, valid: 46, checksum: 23, malformed: 0, types: { GPRMC: 23, GPZDA: 23 } },
    isync: { data: 135, valid: 133, checksum: 0, malformed: 2, types: { GPRMC: 12, GPVTG: 12, GPGGA: 12, GPGSA: 12, GPGSV: 41, GPGST: 11, GPZDA: 11, GPGBS: 11, PTNTA: 11 } },
    triton400: { data: 28, valid: 27, checksum: 0, malformed: 1, types: { GPGLL: 4, GPGGA: 4, GPRMC: 4, GPGSA: 3, GPGSV: 12 } },
    'gp-320fw-2019-04-07-coldboot': { data: 134, valid: 86, checksum: 32, malformed: 16, types: { GPRMC: 12, GPVTG: 10, GPGGA: 9, GPGSA: 13, GPGLL: 8, GPZDA: 7, GPGSV: 27 } },
    'ublox-lea-5q': { data: 63, valid: 63, checksum: 0, malformed: 0, types: { GPVTG: 9, GPGGA: 9, GPGSA: 9, GPGSV: 9, GPGLL: 9, GPGST: 9, GPRMC: 9 } },
    'magellan-ec10': { data: 76, valid: 76, checksum: 0, malformed: 0, types: { GPRMC: 38, GPRMB: 38 } },
  };
  const read = (name: string) => readFileSync(join(g, name), 'latin1');
  const dataLines = (text: string) => text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l)).filter((l) => l !== '' && l[0] !== '#');
  const chkLines = (name: string) => read(`${name}.log.chk`).split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l)).filter((l) => l !== '');
  const tod = (iso: string) => iso.slice(11, 23);
  const todOf = (ms: number) => new Date(ms).toISOString().slice(11, 23);

  for (const [name, want] of Object.entries(table)) {
    test(`vectors ${name}: line-rule counts (data, valid, checksum, malformed, per type)`, () => {
      const d = new NmeaDriver();
      d.push(readFileSync(join(g, `${name}.log`)));
      d.end();
      assert.is(d.stats.lines, want.data, 'data lines');
      assert.is(d.stats.valid, want.valid, 'valid');
      assert.is(d.stats.checksum, want.checksum, 'bad checksum');
      assert.is(d.stats.malformed, want.malformed, 'malformed');
      assert.equal(d.stats.byType, want.types);
      // Every sentence we accept, gpsd accepted too (the .chk echoes them).
      const accepted = new Set(chkLines(name).filter((l) => l[0] !== '{'));
      for (const l of dataLines(read(`${name}.log`))) if (classifyLine(l) === 'valid') assert.ok(accepted.has(l), `gpsd did not accept ${l}`);
    });
  }

  /** Walks each file: for every valid line we accept of type T, its echo in the .chk and the reports after it. */
  function walk(name: string, fn: (line: string, d: ReturnType<typeof decodeSentence>, after: string[]) => void) {
    const chk = chkLines(name);
    let at = 0;
    for (const l of dataLines(read(`${name}.log`))) {
      if (classifyLine(l) !== 'valid') continue;
      const i = chk.indexOf(l, at);
      assert.ok(i >= 0, `${name}: ${l} not echoed in order`);
      at = i + 1;
      fn(l, decodeSentence(parseSentence(l)), chk.slice(i + 1));
    }
  }

  test('vectors rule 2: every status-A RMC agrees with gpsd (lat/lon 1e-8°, speed 0.001 m/s, track 1e-4°, date, magvar)', () => {
    let total = 0, matched = 0, magvars = 0;
    for (const name of Object.keys(table)) {
      if (name === 'gp-320fw-2019-04-07-coldboot') {
        /* included: its single valid RMC is dated consistently (README) */
      }
      walk(name, (line, d, after) => {
        if (!d || d.type !== 'RMC' || !d.valid) return;
        total++;
        const t = todOf(d.timeOfDayMs!);
        const tpv = after.filter((x) => x.startsWith('{"class":"TPV"')).map((x) => JSON.parse(x)).find((o) => o.time && tod(o.time) === t);
        if (!tpv) return;
        matched++;
        assert.ok(Math.abs(tpv.lat - d.lat!) < 1e-8, `${name} ${line}: lat ${d.lat} vs ${tpv.lat}`);
        assert.ok(Math.abs(tpv.lon - d.lon!) < 1e-8, `${name} ${line}: lon`);
        if (d.speedKn !== undefined) assert.ok(Math.abs(tpv.speed - d.speedKn * 0.514444) <= 0.001, `${name} ${line}: speed ${tpv.speed}`);
        if (d.courseDeg !== undefined) assert.ok(Math.abs(tpv.track - d.courseDeg) <= 1e-4, `${name} ${line}: track`);
        const dt = d.date!;
        assert.is(tpv.time.slice(0, 10), `${dt.year}-${String(dt.month).padStart(2, '0')}-${String(dt.day).padStart(2, '0')}`, `${name} ${line}: date`);
        if (d.magvarDeg) {
          magvars++;
          assert.ok(Math.abs(tpv.magvar - d.magvarDeg) <= 0.05, `${name} ${line}: magvar ${d.magvarDeg} vs ${tpv.magvar}`);
        }
      });
    }
    assert.is(total, 115, 'status-A RMCs in the nine files');
    assert.is(matched, 113, 'RMCs with a TPV of the same time of day');
    assert.ok(magvars > 0);
  });

  test('vectors rule 3 and 4: GGA altitude, position, satellites and HDOP agree with gpsd', () => {
    let withFix = 0, matched = 0, sky = 0;
    for (const name of Object.keys(table)) {
      walk(name, (line, d, after) => {
        if (!d || d.type !== 'GGA') return;
        // Rule 4: the first SKY with uSat before the next echoed sentence.
        for (const x of after) {
          if (x[0] !== '{') break;
          const o = JSON.parse(x);
          if (o.class === 'SKY' && o.uSat !== undefined) {
            sky++;
            assert.is(o.uSat, d.sats, `${name} ${line}: uSat`);
            assert.ok(Math.abs(o.hdop - d.hdop!) < 1e-9, `${name} ${line}: hdop`);
            break;
          }
        }
        if (d.quality === 0) return;
        withFix++;
        const t = todOf(d.timeOfDayMs!);
        const tpv = after.filter((x) => x.startsWith('{"class":"TPV"')).map((x) => JSON.parse(x)).find((o) => o.time && tod(o.time) === t && o.altMSL !== undefined);
        if (!tpv) return;
        matched++;
        assert.ok(Math.abs(tpv.altMSL - d.altMsl!) <= 0.001, `${name} ${line}: alt ${d.altMsl} vs ${tpv.altMSL}`);
        assert.ok(Math.abs(tpv.lat - d.lat!) < 1e-8 && Math.abs(tpv.lon - d.lon!) < 1e-8, `${name} ${line}: position`);
        if (d.quality === 2) assert.is(tpv.status, 2);
        if (d.quality === 4) assert.is(tpv.status, 3);
      });
    }
    assert.is(withFix, 63, 'GGAs with a fix');
    assert.is(matched, 60, 'GGAs with a TPV carrying altMSL');
    assert.ok(sky >= 60, `SKY reports compared: ${sky}`);
  });

  test('vectors rule 5: no-fix files give no position (ublox-lea-5q: 0 fixes; magellan-ec10: void then 2D then void)', () => {
    const fixes: GpsFix[] = [];
    const d = new NmeaDriver({ onFix: (f) => fixes.push(f) });
    d.push(readFileSync(join(g, 'ublox-lea-5q.log')));
    d.end();
    assert.ok(fixes.length >= 9);
    assert.ok(fixes.every((f) => f.mode === 1 && f.lat === undefined && fixToReading(f) === null));
    const chk = chkLines('ublox-lea-5q').filter((l) => l.startsWith('{"class":"TPV"')).map((l) => JSON.parse(l));
    assert.is(chk.length, 28);
    assert.ok(chk.every((o) => o.mode === 1 && o.time === undefined));

    const mf: GpsFix[] = [];
    const m = new NmeaDriver({ onFix: (f) => mf.push(f) });
    m.push(readFileSync(join(g, 'magellan-ec10.log')));
    m.end();
    const modes = mf.map((f) => f.mode).join('');
    assert.match(modes, /^1+2+1+$/);
    assert.is(mf.filter((f) => f.mode === 2).length, 21);
  });

  test('vectors: every file streams through the driver in 1..64-byte chunks with the same result', () => {
    for (const name of Object.keys(table)) {
      const bytes = readFileSync(join(g, `${name}.log`));
      const whole = new NmeaDriver();
      const fa: GpsFix[] = [];
      const wf = new NmeaDriver({ onFix: (f) => fa.push(f) });
      wf.push(bytes);
      wf.end();
      whole.push(bytes);
      whole.end();
      const fb: GpsFix[] = [];
      const chunked = new NmeaDriver({ onFix: (f) => fb.push(f) });
      let seed = 7;
      for (let i = 0; i < bytes.length; ) {
        seed = (seed * 1103515245 + 12345) >>> 0;
        const n = 1 + (seed % 64);
        chunked.push(bytes.subarray(i, i + n));
        i += n;
      }
      chunked.end();
      assert.equal(chunked.stats, whole.stats, name);
      assert.equal(fb, fa, name);
      for (const f of fa) {
        const r = fixToReading(f);
        if (r) checkValues('gps', r.values);
      }
    }
  });

  test('vectors: 3D fixes with time from navika-100-fix, GN multi-GNSS from gr8013-w', () => {
    const fixes: GpsFix[] = [];
    const d = new NmeaDriver({ onFix: (f) => fixes.push(f) });
    d.push(readFileSync(join(g, 'navika-100-fix.log')));
    d.end();
    assert.is(fixes.length, 20);
    assert.ok(fixes.every((f) => f.mode === 3 && f.time !== null && f.altMsl !== undefined));
    assert.is(fixes[0].time, Date.parse('2016-04-21T22:32:51.000Z'));
    const gn: GpsFix[] = [];
    const d2 = new NmeaDriver({ onFix: (f) => gn.push(f) });
    d2.push(readFileSync(join(g, 'gr8013-w.log')));
    d2.end();
    assert.is(gn.length, 3);
    assert.ok(gn.every((f) => f.talker === 'GN' && f.mode === 3));
  });
}

test.run();
