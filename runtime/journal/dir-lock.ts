// One writer per journal directory. Two processes appending to the same
// segments would interleave frames and break every promise the journal makes.
//
// Node has no flock(2), so the lock is a LOCK file holding the owner's pid,
// created with O_EXCL. A lock left by a dead process (kill -9, power loss) is
// taken over: its pid no longer runs. Within one process a set of held
// directories stops two instances.
import { open, readFile, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { JournalError, fsError } from './errors.js';

const held = new Set<string>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the lock of `dir`; returns its release function. */
export async function lockDir(dir: string): Promise<() => Promise<void>> {
  const key = resolve(dir);
  const path = join(dir, 'LOCK');
  if (held.has(key)) throw new JournalError('LOCKED', `${dir} is already open in this process; close the other Journal instance first`, { path });
  for (let attempt = 0; ; attempt++) {
    try {
      const fh = await open(path, 'wx');
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new JournalError('LOCKED', `${path}: another process took the lock while this one was taking over a stale lock`, { path });
        throw fsError(e, 'create lock', path);
      }
      const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
      if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && alive(pid))
        throw new JournalError('LOCKED', `${dir} is in use by process ${pid}; stop it first (if no iscm-edge process has that pid, delete ${path})`, { path });
      await unlink(path).catch(() => {}); // stale: its owner is gone
    }
  }
  held.add(key);
  return async () => {
    held.delete(key);
    await unlink(path).catch(() => {});
  };
}
