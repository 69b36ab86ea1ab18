// CLI plumbing shared by every subcommand: typed usage errors and exit codes.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { IscmError } from '../../protocol/errors.js';

/** Exit codes: 0 success, 1 a check failed (invalid input data), 2 usage error. */
export const EXIT = { OK: 0, INVALID: 1, USAGE: 2 } as const;

export class UsageError extends IscmError {
  constructor(message: string) {
    super('USAGE', message);
    this.name = 'UsageError';
  }
}

export interface Io {
  out(line: string): void;
  err(line: string): void;
  env: NodeJS.ProcessEnv;
}

export const processIo: Io = {
  out: (l) => process.stdout.write(`${l}\n`),
  err: (l) => process.stderr.write(`${l}\n`),
  env: process.env,
};

export interface Command {
  name: string;
  summary: string;
  usage: string;
  run(argv: string[], io: Io): Promise<number>;
}

/** util.parseArgs with errors turned into UsageError (unknown flag, missing value …). */
export function parse<T extends ParseArgsConfig['options']>(argv: string[], options: T, allowPositionals = true) {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/^TypeError \[[A-Z_]+\]: /, ''));
  }
}
