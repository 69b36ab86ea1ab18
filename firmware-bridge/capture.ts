// The capture file of `iscm-edge firmware listen`: one formatReadingLine()
// JSON line per new reading, appended and fsync'd before the readings are
// acknowledged. On open, a torn last line (a crash mid-append: that reading
// was never acknowledged and will be resent) is cut off, and the (boot_id,
// seq) of the lines after the offset recorded in the link state are fed back
// into the dedupe table, so a reading is in the file exactly once across
// restarts and kill -9.
import { open, type FileHandle } from 'node:fs/promises';
import { fsyncDir } from '../drivers/fs/atomic.js';
import { dirname } from 'node:path';
import { formatReadingLine, parseReadingLine, type Reading } from '../protocol/reading.js';
import { errorMessage } from '../protocol/errors.js';

export class CaptureFile {
  private fh: FileHandle | undefined;
  private size = 0;
  /** End of the data whose dedupe entries the session has taken in (see session `aux`). */
  ackedOffset = 0;
  written = 0;

  constructor(readonly path: string) {}

  /** Opens (creating) the file; cuts a torn tail; returns the (boot_id, seq) of every line from `scanFrom`. */
  async open(scanFrom = 0, onLine?: (bootId: number, seq: number) => void, onBadLine?: (where: string, message: string) => void): Promise<{ truncated: number; scanned: number }> {
    let created = false;
    try {
      this.fh = await open(this.path, 'r+');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      this.fh = await open(this.path, 'w+', 0o644);
      created = true;
    }
    const st = await this.fh.stat();
    this.size = st.size;
    let truncated = 0;
    let scanned = 0;
    if (this.size > 0) {
      const from = scanFrom > 0 && scanFrom <= this.size ? scanFrom : 0;
      const buf = Buffer.alloc(this.size - from);
      let got = 0;
      while (got < buf.length) {
        const { bytesRead } = await this.fh.read(buf, got, buf.length - got, from + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      const lastNl = buf.lastIndexOf(0x0a, got - 1);
      const keep = lastNl + 1;
      if (keep < got) {
        // A torn last line: never fsync'd, never acknowledged.
        truncated = got - keep;
        await this.fh.truncate(from + keep);
        await this.fh.sync();
        this.size = from + keep;
      }
      let start = 0;
      let lineNo = 0;
      while (start < keep) {
        const nl = buf.indexOf(0x0a, start);
        const line = buf.toString('utf8', start, nl);
        start = nl + 1;
        lineNo++;
        if (!line) continue;
        try {
          const r = parseReadingLine(line, `${this.path}@${from}+${lineNo}`);
          scanned++;
          onLine?.(r.bootId, r.seq);
        } catch (e) {
          onBadLine?.(`${this.path} line ${lineNo} after offset ${from}`, errorMessage(e));
        }
      }
    }
    if (created) await fsyncDir(dirname(this.path));
    this.ackedOffset = this.size;
    return { truncated, scanned };
  }

  /** Appends the readings' lines and fsyncs; resolves when they are durable. */
  async append(readings: Reading[]): Promise<void> {
    if (!this.fh) throw new Error('capture file is not open');
    // Everything before this call is durable and known to the dedupe table.
    this.ackedOffset = this.size;
    const text = readings.map((r) => formatReadingLine(r) + '\n').join('');
    const bytes = Buffer.from(text, 'utf8');
    try {
      let done = 0;
      while (done < bytes.length) {
        const { bytesWritten } = await this.fh.write(bytes, done, bytes.length - done, this.size + done);
        done += bytesWritten;
      }
      await this.fh.datasync();
    } catch (e) {
      // Not durable, not acknowledged: cut what may have reached the file so a
      // later, shorter append cannot leave a stale line behind it.
      await this.fh.truncate(this.size).catch(() => {});
      throw e;
    }
    this.size += bytes.length;
    this.written += readings.length;
  }

  async close(): Promise<void> {
    await this.fh?.close();
    this.fh = undefined;
  }
}
