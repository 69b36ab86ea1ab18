// iscm-edge: the light node's command line. Each subcommand lives in its own
// file under commands/ and is loaded only when it runs, so `--help` and the
// offline verifier start fast and do not load MQTT, serial or PKCS#11 code.
import { errorMessage } from '../../protocol/errors.js';
import { EXIT, processIo, UsageError, type Command, type Io } from './usage.js';
import { version } from './version.js';

type Loader = () => Promise<Command>;

const commands: Record<string, { summary: string; load: Loader }> = {
  run: { summary: 'run the light node (readings → events → journal → signed batches → ledger receipts)', load: async () => (await import('./commands/run.js')).command },
  status: { summary: 'show what a running light node is doing (links, backlog, receipts, alarms)', load: async () => (await import('./commands/status.js')).command },
  'export-proof': { summary: 'write the proof bundle (.iscm) of one receipted event', load: async () => (await import('./commands/export-proof.js')).command },
  verify: { summary: 'verify event proof bundles (.iscm) offline, end to end', load: async () => (await import('./commands/verify.js')).command },
  keys: { summary: 'create, list and show signing keys (PKCS#11 token or key file); write a CSR', load: async () => (await import('./commands/keys.js')).command },
  'sim-firmware': { summary: 'simulate sensor firmware on a serial port (tests, demos)', load: async () => (await import('./commands/sim-firmware.js')).command },
  firmware: { summary: 'talk to sensor firmware: `firmware listen` captures readings', load: async () => (await import('./commands/firmware.js')).command },
  config: { summary: 'check a gateway config file', load: async () => (await import('./commands/config.js')).command },
  events: { summary: 'preview the EPCIS events readings would produce', load: async () => (await import('./commands/events.js')).command },
};

function help(io: Io): void {
  io.out(`iscm-edge ${version()} — light node for signed supply-chain tracking

usage: iscm-edge <command> [options]

commands:`);
  for (const [name, c] of Object.entries(commands)) io.out(`  ${name.padEnd(13)} ${c.summary}`);
  io.out(`
options:
  -h, --help     this help (or: iscm-edge <command> --help)
  -V, --version  print the version

exit codes: 0 ok, 1 a check failed, 2 usage error`);
}

export async function main(argv: string[], io: Io = processIo): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === '-h' || first === '--help' || first === 'help') {
    help(io);
    return first === undefined ? EXIT.USAGE : EXIT.OK;
  }
  if (first === '-V' || first === '--version') {
    io.out(version());
    return EXIT.OK;
  }
  const entry = commands[first];
  if (!entry) {
    io.err(`iscm-edge: unknown command "${first}" (commands: ${Object.keys(commands).join(', ')}; see iscm-edge --help)`);
    return EXIT.USAGE;
  }
  const cmd = await entry.load();
  if (rest.includes('-h') || rest.includes('--help')) {
    io.out(cmd.usage);
    return EXIT.OK;
  }
  try {
    return await cmd.run(rest, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`iscm-edge ${first}: ${e.message}\n\n${cmd.usage}`);
      return EXIT.USAGE;
    }
    io.err(`iscm-edge ${first}: ${errorMessage(e)}`);
    return EXIT.INVALID;
  }
}

// Run when executed (from source through tsx, or as the bundle).
const isMain = process.argv[1] && /iscm-edge(\.ts|\.mjs|\.js)?$/.test(process.argv[1]);
if (isMain) {
  // `… | head` closes the pipe early: that is the reader's choice, not an error.
  for (const stream of [process.stdout, process.stderr])
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw e;
    });
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.stderr.write(`iscm-edge: internal error: ${errorMessage(e)}\n`);
      process.exitCode = 70;
    },
  );
}
