// Both Journal implementations pass the one conformance suite.
import { FileJournal } from '../../runtime/journal/file-journal.js';
import { MemoryJournal, MemoryStore } from '../../runtime/journal/memory-journal.js';
import { journalConformance } from './journal-conformance.js';
import { tempDir } from './journal-fixtures.js';

journalConformance('MemoryJournal', async (o) => {
  const store = new MemoryStore();
  return { make: () => new MemoryJournal({ deviceId: 'reefer-07', maxBytes: o.maxBytes, store, verifyHashes: o.verifyHashes ?? true, maxUnitBytes: 96 << 10 }), cleanup: async () => {} };
});

journalConformance('FileJournal', async (o) => {
  const { dir, cleanup } = await tempDir('conf');
  // Small segments so compaction and the quota act within a test's worth of records.
  return { make: () => new FileJournal({ dir, deviceId: 'reefer-07', maxBytes: o.maxBytes ?? 64 << 20, segmentBytes: 256 << 10, groupCommitMs: 1, verifyHashes: o.verifyHashes }), cleanup };
});
