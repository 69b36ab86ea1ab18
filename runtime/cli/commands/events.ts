// iscm-edge events preview: the EPCIS events a gateway with this config would
// make from these readings (the JSON lines `iscm-edge firmware listen`
// writes), one JSON event per line, so an integrator sees the output before
// deploying. The preview runs on a clock that is not trusted (as on a board
// that booted in 1970): only the readings' own times count, so the output
// does not depend on when or where it runs.
import { readFileSync } from 'node:fs';
import { errorMessage } from '../../../protocol/errors.js';
import { parseReadingLine } from '../../../protocol/reading.js';
import { checkConfigFile, formatIssue } from '../../config/index.js';
import { EventBuilder, ManualClock, type BuiltEvent } from '../../events/index.js';
import { EPCIS_CONTEXT, ISCM_NS, ISCM_PREFIX } from '../../events/vocab.js';
import { EXIT, parse, UsageError, type Command } from '../usage.js';

/** The preview's floor for plausible times: old recordings are fine, 1970 is not. */
const PREVIEW_NOT_BEFORE = Date.UTC(2020, 0, 1);

const usage = `usage: iscm-edge events preview --config FILE --readings READINGS.jsonl [--document] [--no-env]

Prints the GS1 EPCIS 2.0 events that the readings would produce with this
gateway config, one JSON event per line (each with its GS1 event hash ID).
READINGS.jsonl is what \`iscm-edge firmware listen\` writes: one reading per
line, {"boot_id","seq","sensor","kind","time","time_source","mono_ms"?,"values"};
blank lines and lines starting with # are skipped. Open aggregation windows are
closed at the end of the file. The preview's clock is not trusted (a board that
just booted): only the readings' own times count, and any time from 2020 on (or
clock.not_before) is plausible, so recordings older than this release work.

  --config FILE        the gateway config (YAML)
  --readings FILE      the readings
  --document           print one EPCISDocument holding all events instead
  --no-env             ignore ISCM__… environment overrides

Problems (invalid lines, readings the config does not know) and warnings go to
stderr with FILE:LINE. Exit: 0 all readings used, 1 a reading was refused or
the config is invalid, 2 usage error.`;

export const command: Command = {
  name: 'events',
  summary: 'preview the EPCIS events readings would produce',
  usage,
  async run(argv, io) {
    const [sub, ...rest] = argv;
    if (sub !== 'preview') throw new UsageError(sub === undefined ? 'give a subcommand: preview' : `unknown subcommand "${sub}" (preview)`);
    const { values, positionals } = parse(rest, { config: { type: 'string' }, readings: { type: 'string' }, document: { type: 'boolean' }, 'no-env': { type: 'boolean' } }, false);
    void positionals;
    if (!values.config) throw new UsageError('--config FILE is required');
    if (!values.readings) throw new UsageError('--readings READINGS.jsonl is required');
    const checked = checkConfigFile(values.config, { env: values['no-env'] ? {} : io.env });
    if (!checked.config) {
      for (const i of checked.issues) io.err(formatIssue(i));
      io.err(`${values.config}: invalid config`);
      return EXIT.INVALID;
    }
    let text: string;
    try {
      text = readFileSync(values.readings, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      io.err(`${values.readings}: cannot read (${code === 'ENOENT' ? 'no such file' : code ?? errorMessage(e)})`);
      return EXIT.INVALID;
    }
    const file = values.readings;
    let lineNo = 0;
    const builder = new EventBuilder(checked.config, {
      clock: new ManualClock(),
      // Recorded readings may predate this release: a file's times count from 2020 on (or clock.not_before).
      notBefore: checked.config.clock.not_before ?? PREVIEW_NOT_BEFORE,
      onWarning: (m) => io.err(`${file}:${lineNo}: warning: ${m}`),
    });
    const events: BuiltEvent[] = [];
    let count = 0;
    const emit = (list: BuiltEvent[]) => {
      count += list.length;
      if (values.document) events.push(...list);
      else for (const e of list) io.out(JSON.stringify(e.event));
    };
    let refused = 0;
    let readings = 0;
    for (const line of text.split('\n')) {
      lineNo++;
      const l = line.trim();
      if (l === '' || l.startsWith('#')) continue;
      try {
        const r = parseReadingLine(l, `${file}:${lineNo}`);
        emit(builder.push(r));
        readings++;
      } catch (e) {
        refused++;
        const m = errorMessage(e);
        io.err(m.startsWith(`${file}:${lineNo}`) ? m : `${file}:${lineNo}: ${m}`);
      }
    }
    lineNo = 0;
    emit(builder.flush());
    const p = builder.pending();
    if (p.held) io.err(`${file}: warning: ${p.held} reading(s) never got a trusted time (no plausible time of their own, no time anchor for their MCU boot): a gateway holds them until its clock is trusted`);
    if (values.document) {
      const last = events.reduce((m, e) => Math.max(m, e.time), 0);
      io.out(
        JSON.stringify({
          '@context': [EPCIS_CONTEXT, { [ISCM_PREFIX]: ISCM_NS }],
          type: 'EPCISDocument',
          schemaVersion: '2.0',
          creationDate: new Date(last).toISOString(),
          epcisBody: { eventList: events.map((e) => e.event) },
        }),
      );
    }
    io.err(`${file}: ${readings} reading(s) → ${count} event(s)${refused ? `; ${refused} line(s) refused` : ''}`);
    return refused ? EXIT.INVALID : EXIT.OK;
  },
};
