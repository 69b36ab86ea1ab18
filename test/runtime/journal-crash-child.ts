// Child process of the crash suite (journal-crash.test.ts). Appends records
// and units (records + a state blob) in bursts, batches and commit marks,
// forever, and prints each acknowledgement on stdout only after its promise
// resolved (that is, after the fsync):
//   OPEN <next seq> <dropped bytes>   after recovery
//   R <seq>                            a record is durable
//   P <id> <first> <last> <sha256>     a unit is about to be appended (its state's hash)
//   U <id> <first> <last>              that unit is durable
//   B <batch_seq> <first_seq> <count>  a batch is durable
//   C <batch_seq>                      a commit mark is durable
// The parent kills it with SIGKILL at a random moment. stdout writes to a
// pipe are synchronous on Linux, so a printed line was really printed.
// Usage: node --import tsx journal-crash-child.ts DIR SEED
import { sha256, toHex } from '../../protocol/bytes.js';
import { FileJournal } from '../../runtime/journal/file-journal.js';
import { JournalError } from '../../runtime/journal/errors.js';
import { prng } from '../helpers/prng.js';
import { crashJournalOptions, unitState } from './journal-crash-options.js';
import { DeviceStream, receiptFor } from './journal-fixtures.js';

const [dir, seedArg] = process.argv.slice(2);
const rnd = prng(Number(seedArg));
const out = (s: string): void => void process.stdout.write(`${s}\n`);

const j = new FileJournal({ dir, ...crashJournalOptions, groupCommitMs: Math.floor(rnd() * 3) });
await j.open();
out(`OPEN ${j.head().nextSeq} ${j.stats().recovery?.dropped?.bytes ?? 0}`);
const d = new DeviceStream(crashJournalOptions.deviceId, j.head());

const backoff = (e: unknown) => {
  if (e instanceof JournalError && (e.kind === 'QUOTA' || e.kind === 'DISK_FULL')) return new Promise((r) => setTimeout(r, 5));
  throw e;
};

let units = 0;
for (;;) {
  // A burst of concurrent appends — records and units, with and without
  // caller hashes — sharing group commits.
  const n = 1 + Math.floor(rnd() * 64);
  const ps: Promise<void>[] = [];
  const withHashes = rnd() < 0.5;
  for (let i = 0; i < n; i++) {
    if (rnd() < 0.15) {
      const recs = d.records(Math.floor(rnd() * 12)); // state-only units too
      const id = `${seedArg}.${units++}`;
      const state = unitState(id, rnd() < 0.1 ? 8000 + Math.floor(rnd() * 20000) : Math.floor(rnd() * 600));
      const first = d.nextSeq - recs.length;
      out(`P ${id} ${first} ${d.nextSeq - 1} ${toHex(sha256(state))}`);
      ps.push(
        j.appendUnit(recs, state, withHashes ? recs.map((r) => sha256(r)) : undefined).then(
          (a) => out(`U ${id} ${a.firstSeq} ${a.lastSeq}`),
          (e) => {
            out(`X ${id}`); // refused: its seqs will be used again
            throw e;
          },
        ),
      );
    } else {
      const r = d.record();
      ps.push(j.appendRecord(r, withHashes ? d.prev : undefined).then((a) => out(`R ${a.seq}`)));
    }
  }
  const res = await Promise.allSettled(ps);
  const failed = res.find((r) => r.status === 'rejected');
  if (failed) {
    d.sync(j.head()); // a refused append: continue from what is durable
    await backoff((failed as PromiseRejectedResult).reason);
  }
  if (rnd() < 0.35) {
    const recs: Uint8Array[] = [];
    for await (const r of j.unbatchedRecords()) {
      recs.push(r.bytes);
      if (recs.length >= 400) break;
    }
    if (recs.length) {
      d.sync(j.head());
      const a = await j.appendBatch(d.batch(recs));
      out(`B ${a.batchSeq} ${a.firstSeq} ${a.count}`);
    }
  }
  if (rnd() < 0.4) {
    const open: number[] = [];
    for await (const b of j.unreceiptedBatches()) open.push(b.batchSeq);
    // Leave the newest two without receipts; sometimes receipts arrive out of order.
    const commit = open.slice(0, Math.max(0, open.length - 2));
    if (commit.length > 1 && rnd() < 0.3) [commit[0], commit[1]] = [commit[1], commit[0]];
    for (const b of commit.slice(0, 3)) {
      const c = await j.markCommitted(b, receiptFor(b));
      out(`C ${c.batchSeq}`);
    }
  }
}
