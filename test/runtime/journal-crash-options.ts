// The journal the crash child writes and the crash suite checks.
export const crashJournalOptions = {
  deviceId: 'reefer-07',
  maxBytes: 64 << 20,
  // Small segments: rollovers, sidecars, spares and compaction happen every cycle.
  segmentBytes: 256 << 10,
  // A short group bound keeps torn tails short and checkpoints frequent.
  maxGroupBytes: 96 << 10,
  checkpointEveryBytes: 128 << 10,
} as const;

/** The state blob of unit `id`: it names the unit, then `pad` bytes (sizes vary, some beyond a page). */
export function unitState(id: string, pad: number): Uint8Array {
  const head = Buffer.from(`unit ${id};`);
  const b = Buffer.alloc(head.length + pad, id.length & 0xff);
  head.copy(b);
  return new Uint8Array(b);
}
