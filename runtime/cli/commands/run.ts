// iscm-edge run: the light node (runtime/node/light-node.ts), as the systemd
// service runs it. Stops cleanly on SIGTERM / SIGINT (no more readings, what
// is in flight made durable and acknowledged, journal closed with a clean
// checkpoint), so the next start is fast.
import { errorMessage } from '../../../protocol/errors.js';
import { EXIT, parse, UsageError, type Command } from '../usage.js';

const usage = `usage: iscm-edge run --config FILE [--log-level LEVEL] [--log-format text|json]

Runs the light node: reads the sensor firmware on the configured ports (and
GPS receivers, and the local input socket), turns readings into EPCIS events,
journals them (acknowledging the firmware only once they are on disk), signs
them in batches with the device key, sends them to the ledger over MQTT and
keeps every verified receipt. Operations endpoint (metrics.listen):
/metrics, /healthz, /status; see also \`iscm-edge status\`.

  --config FILE        the gateway config (docs/CONFIG.md)
  --log-level LEVEL    error | warn | info | debug (default: logging.level)
  --log-format F       text | json (default: logging.format)

Secrets (PIN, passphrase, MQTT password) come only from the files or
environment variables the config names.
Exit: 0 after a clean stop, 1 when the node cannot start (config, journal),
2 usage error.`;

export const command: Command = {
  name: 'run',
  summary: 'run the light node',
  usage,
  async run(argv, io) {
    const { values, positionals } = parse(argv, { config: { type: 'string' }, 'log-level': { type: 'string' }, 'log-format': { type: 'string' } }, false);
    if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`);
    if (!values.config) throw new UsageError('--config FILE is required');
    const level = values['log-level'];
    if (level !== undefined && !['error', 'warn', 'info', 'debug'].includes(level)) throw new UsageError('--log-level must be error, warn, info or debug');
    const format = values['log-format'];
    if (format !== undefined && format !== 'text' && format !== 'json') throw new UsageError('--log-format must be text or json');
    const { loadConfig, formatIssue } = await import('../../config/index.js');
    const { createLogger } = await import('../../ops/log.js');
    const { LightNode } = await import('../../node/light-node.js');
    let config;
    const warnings: string[] = [];
    try {
      config = loadConfig(values.config, io.env, (w) => warnings.push(formatIssue(w)));
    } catch (e) {
      io.err(`iscm-edge run: ${errorMessage(e)}`);
      return EXIT.INVALID;
    }
    const log = createLogger({ level: (level ?? config.logging.level) as 'info', format: (format ?? config.logging.format) as 'text', base: { device: config.device.id }, sink: { write: (l) => process.stderr.write(l) } });
    for (const w of warnings) log.warn('config warning', { warning: w });
    const node = new LightNode({ config, env: io.env, log });
    // A stray rejection in some component is reported, never fatal.
    const onRejection = (e: unknown) => log.error('unhandled rejection (reported, node keeps running)', { error: e });
    process.on('unhandledRejection', onRejection);
    const stopSignal = new Promise<string>((resolve) => {
      process.once('SIGINT', () => resolve('SIGINT'));
      process.once('SIGTERM', () => resolve('SIGTERM'));
    });
    try {
      await node.start();
    } catch (e) {
      log.error('cannot start', { error: e });
      io.err(`iscm-edge run: cannot start: ${errorMessage(e)}`);
      await node.stop().catch(() => {});
      process.off('unhandledRejection', onRejection);
      return EXIT.INVALID;
    }
    const sig = await stopSignal;
    log.info('stopping', { signal: sig });
    await node.stop();
    process.off('unhandledRejection', onRejection);
    return EXIT.OK;
  },
};
