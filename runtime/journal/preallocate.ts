// Preallocating segment files (docs/JOURNAL.md "Preallocation"): giving a new
// segment its blocks before any append lands in it, so appends never allocate
// (no ENOSPC halfway through a group) and a full disk shows up a segment ahead.
//
// Node has no fallocate(2). Two ways to get the blocks:
// - 'fallocate': util-linux (or BusyBox) `fallocate(1)`. The filesystem
//   reserves the blocks as unwritten extents: nothing is written, reads
//   return zeros (what the journal's end marker needs), ENOSPC comes back at
//   once. The first write into each block converts its extent, so the
//   fdatasync after a group also commits a small metadata transaction
//   (measured +0.1..0.2 ms per fsync on ext4 here; bench/journal.ts).
// - 'zero-fill': write zeros over the whole file, fsync'd every 4 MiB. Every
//   byte of the journal is written twice (zeros, then data); an fdatasync
//   after an append has no metadata to commit.
// 'fallocate' falls back to 'zero-fill' when the command is missing or the
// filesystem does not support it (EOPNOTSUPP), and the journal remembers that.
//
// Why a long-lived `sh` runs the command: spawning from Node forks the whole
// process, which stalls the event loop for 2–15 ms (page tables of a large
// heap, copy-on-write faults until exec) — a latency spike on every append in
// flight, once per segment. The shell is spawned once, when the journal opens,
// and forks only itself per segment.
//
// Neither method reserves space for overwrites on copy-on-write filesystems
// (btrfs, zfs): there, an append can still need new blocks.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import type { FileHandle } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { zeroFill } from './fs-util.js';

export type PreallocateMethod = 'fallocate' | 'zero-fill';

const MiB = 1024 * 1024;
const RC = '#ISCM-RC ';

// Reads "offset length name" lines; runs fallocate on ./name in the journal
// directory ($1); prints its messages, then the exit code after RC. A file
// that is gone is not created: when the journal's process is killed, this
// shell may still read a last request, after the next process cleaned up.
const SCRIPT = `cd -- "$1" || exit 1
while read -r off len name; do
  if [ -e "./$name" ]; then fallocate -o "$off" -l "$len" -- "./$name" 2>&1; else echo "$name: No such file or directory"; false; fi
  echo "${RC}$?"
done`;

/** What `fallocate(1)` said, as the errno it reported (its message is the C library's, in the C locale). */
function errnoOf(text: string): string | undefined {
  const table: Array<[RegExp, string]> = [
    [/No space left/i, 'ENOSPC'],
    [/quota exceeded/i, 'EDQUOT'],
    [/Read-only file system/i, 'EROFS'],
    [/Permission denied/i, 'EACCES'],
    [/Operation not permitted/i, 'EPERM'],
    [/No such file or directory/i, 'ENOENT'],
  ];
  for (const [re, code] of table) if (re.test(text)) return code;
  return undefined;
}

/** The shell that runs fallocate(1) for one journal directory. */
class FallocateShell {
  private child: ChildProcessWithoutNullStreams | undefined;
  private out = '';
  private waiting: ((r: { rc: number; text: string } | undefined) => void) | undefined;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly dir: string) {}

  /** Starts the shell now (at open: the fork's stall hits nothing in flight). */
  start(): void {
    if (this.child) return;
    let child: ChildProcessWithoutNullStreams;
    try {
      child = spawn('sh', ['-c', SCRIPT, 'sh', this.dir], { env: { ...process.env, LC_ALL: 'C' }, stdio: ['pipe', 'pipe', 'pipe'] });
    } catch {
      return;
    }
    this.child = child;
    child.on('error', () => this.gone(child));
    child.on('exit', () => this.gone(child));
    child.stdout.setEncoding('latin1');
    child.stdout.on('data', (s: string) => {
      this.out += s;
      const at = this.out.indexOf(RC);
      const nl = at < 0 ? -1 : this.out.indexOf('\n', at);
      if (nl < 0) return;
      const r = { rc: Number(this.out.slice(at + RC.length, nl)), text: this.out.slice(0, at).trim() };
      this.out = this.out.slice(nl + 1);
      const w = this.waiting;
      this.waiting = undefined;
      this.hold(false);
      w?.(r);
    });
    child.stderr.resume();
    child.stdin.on('error', () => this.gone(child)); // EPIPE: the shell went away
    this.hold(false);
  }

  /** An idle shell never keeps the process alive; one working on a request does (its answer is awaited). */
  private hold(on: boolean): void {
    const c = this.child;
    if (!c) return;
    for (const h of [c, c.stdin, c.stdout, c.stderr] as unknown as Array<{ ref?: () => void; unref?: () => void }>) (on ? h.ref : h.unref)?.call(h);
  }

  private gone(child: ChildProcessWithoutNullStreams): void {
    if (this.child !== child) return;
    this.child = undefined;
    this.out = '';
    const w = this.waiting;
    this.waiting = undefined;
    w?.(undefined);
  }

  /** Runs fallocate on `name` in the directory; undefined when the shell is not there (no sh). */
  run(name: string, from: number, len: number): Promise<{ rc: number; text: string } | undefined> {
    const p = this.chain.then(
      () =>
        new Promise<{ rc: number; text: string } | undefined>((res) => {
          this.start();
          const child = this.child;
          if (!child) return res(undefined);
          this.waiting = res;
          this.hold(true);
          child.stdin.write(`${from} ${len} ${name}\n`);
        }),
    );
    this.chain = p.catch(() => {});
    return p;
  }

  stop(): void {
    this.child?.stdin.end();
    this.child = undefined;
  }
}

/**
 * Preallocates the files of one journal directory with `method`, falling back
 * from 'fallocate' to 'zero-fill' (for good) where the former cannot work.
 */
export class Preallocator {
  private shell: FallocateShell | undefined;
  /** Times the shell was not there when asked; after a few, fallocate is given up. */
  private shellMisses = 0;

  constructor(
    private readonly dir: string,
    public method: PreallocateMethod,
  ) {}

  /** Spawns what 'fallocate' needs now (open() calls this, before appends are in flight). */
  start(): void {
    if (this.method !== 'fallocate') return;
    this.shell ??= new FallocateShell(resolve(this.dir));
    this.shell.start();
  }

  /**
   * Gives [from, to) of `fh` (the file `path`, in this directory) its blocks.
   * Not fsync'd: the caller's own fdatasync after it writes the segment
   * header commits the allocation with it (zero-fill does sync as it goes, so
   * that fdatasync has no burst of zeros to flush). A system error (ENOSPC,
   * EROFS …, with `code` set) is thrown for the caller to map with fsError.
   */
  async allocate(fh: FileHandle, path: string, from: number, to: number): Promise<void> {
    if (to <= from) return;
    if (this.method === 'fallocate') {
      const name = basename(path);
      if (resolve(dirname(path)) !== resolve(this.dir) || !/^[A-Za-z0-9._-]+$/.test(name)) throw new Error(`internal: cannot preallocate ${path} outside ${this.dir}`);
      this.start();
      const r = await this.shell!.run(name, from, to - from);
      if (r && r.rc === 0) return;
      if (r) {
        const errno = errnoOf(r.text);
        if (errno) throw Object.assign(new Error(`fallocate ${path}: ${r.text}`), { code: errno });
        // No such command (127), or the filesystem cannot (EOPNOTSUPP): zeros from now on.
        this.method = 'zero-fill';
      } else if (++this.shellMisses >= 3) this.method = 'zero-fill';
    }
    // fsync'd every 4 MiB: one 64 MiB burst of write-back would queue in
    // front of the appends' own fsyncs and stall acknowledgements.
    await zeroFill(fh, from, to, 4 * MiB);
    await fh.datasync();
  }

  stop(): void {
    this.shell?.stop();
    this.shell = undefined;
  }
}
