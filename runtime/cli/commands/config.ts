// iscm-edge config: check a gateway config file (precise errors: file:line:col,
// key path, what was expected, "did you mean"), show the effective config
// (defaults and ISCM__… environment overrides applied), print the JSON Schema.
import { checkConfigFile, formatIssue, gatewayJsonSchemaText, type CheckResult } from '../../config/index.js';
import { EXIT, parse, UsageError, type Command } from '../usage.js';

const usage = `usage: iscm-edge config check [--files] [--no-env] [--json] FILE …
       iscm-edge config show [--no-env] FILE
       iscm-edge config schema

  check   validate gateway config files (YAML, docs/CONFIG.md): every problem
          with file:line:col, the key path, what was expected and a fix.
          Environment overrides (ISCM__SECTION__KEY=value) are applied unless
          --no-env. With --files, also check that referenced files exist and
          secret files are private, and that *_env variables are set.
  show    print the effective config as JSON: defaults filled in, overrides
          applied, durations in ms, sizes in bytes, paths resolved.
  schema  print the JSON Schema of the config (configs/gateway.schema.json).

  --json  check: one JSON object per file instead of text

Exit: 0 valid (warnings allowed), 1 invalid, 2 usage error.`;

function summary(r: CheckResult): string {
  const c = r.config!;
  const n = (o: object) => Object.keys(o).length;
  const env = r.envApplied.length ? `; environment overrides: ${r.envApplied.join(', ')}` : '';
  return `device ${c.device.id}: ${n(c.ports)} port(s), ${n(c.sensors)} sensor(s), ${n(c.windows)} window(s), ${n(c.rules)} rule(s), signer ${c.signer.driver}${env}`;
}

export const command: Command = {
  name: 'config',
  summary: 'check a gateway config file',
  usage,
  async run(argv, io) {
    const [sub, ...rest] = argv;
    if (sub === 'schema') {
      parse(rest, {}, false);
      io.out(gatewayJsonSchemaText().trimEnd());
      return EXIT.OK;
    }
    if (sub === 'check') {
      const { values, positionals } = parse(rest, { files: { type: 'boolean' }, 'no-env': { type: 'boolean' }, json: { type: 'boolean' } });
      if (positionals.length === 0) throw new UsageError('give at least one config file');
      let invalid = 0;
      for (const file of positionals) {
        const r = checkConfigFile(file, { env: values['no-env'] ? {} : io.env, files: !!values.files });
        const errors = r.issues.filter((i) => i.severity === 'error');
        if (errors.length) invalid++;
        if (values.json) {
          io.out(
            JSON.stringify({
              path: file,
              ok: errors.length === 0,
              errors: errors.map((i) => ({ where: i.where, path: i.path, message: i.message })),
              warnings: r.issues.filter((i) => i.severity === 'warning').map((i) => ({ where: i.where, path: i.path, message: i.message })),
              env_applied: r.envApplied,
            }),
          );
          continue;
        }
        for (const i of r.issues) io.out(formatIssue(i));
        io.out(errors.length ? `${file}: invalid (${errors.length} error${errors.length === 1 ? '' : 's'})` : `${file}: ok (${summary(r)})`);
      }
      return invalid ? EXIT.INVALID : EXIT.OK;
    }
    if (sub === 'show') {
      const { values, positionals } = parse(rest, { 'no-env': { type: 'boolean' } });
      if (positionals.length !== 1) throw new UsageError('give one config file');
      const r = checkConfigFile(positionals[0], { env: values['no-env'] ? {} : io.env });
      if (!r.config) {
        for (const i of r.issues) io.err(formatIssue(i));
        return EXIT.INVALID;
      }
      for (const i of r.issues) io.err(formatIssue(i));
      io.out(JSON.stringify(r.config, null, 2));
      return EXIT.OK;
    }
    throw new UsageError(sub === undefined ? 'give a subcommand: check, show or schema' : `unknown subcommand "${sub}" (check, show, schema)`);
  },
};
