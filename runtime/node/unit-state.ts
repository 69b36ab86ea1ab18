// The light node's state blob: what the pipeline journals atomically with the
// records of each unit (Journal.appendUnit), so that a crash can never leave
// a reading acknowledged to the firmware yet missing from both the records
// and the in-memory state it fed (ARCHITECTURE §2 invariant 1):
//
//   State = { 1: version (1),
//             2: builder snapshot, JSON text (runtime/events/builder.ts; held readings left out),
//             3: [[source tstr, boot uint, acked uint, consumed uint, [held seq …]] …],
//             4: written ms }
//
// Per input source and MCU boot: `acked` — the firmware was told everything
// through it is durable; `consumed` — every reading through it is in a record
// or in the builder state, except the `held` seqs (waiting for a trusted time,
// in memory only, never acknowledged). After a restart the firmware resends
// everything above `acked`; the pipeline drops what it already consumed and
// takes the held ones again.
import { decode, encode } from '../../protocol/cbor.js';
import { aarray, amap, astr, auint, ValidationError } from '../../protocol/errors.js';
import type { BuilderSnapshot } from '../events/builder.js';

export const STATE_VERSION = 1;
/** Boots remembered per source (the oldest are forgotten: their firmware moved on long ago). */
export const MAX_BOOTS_PER_SOURCE = 64;

export interface SourcePosition {
  acked: number;
  consumed: number;
  /** Seqs in (acked, consumed] held for a trusted time (not in any record or state). */
  held: Set<number>;
}

export interface NodeState {
  builder: BuilderSnapshot | undefined;
  /** source → boot id → position. */
  positions: Map<string, Map<number, SourcePosition>>;
  writtenMs: number;
}

export function encodeNodeState(s: NodeState): Uint8Array {
  const pos: unknown[] = [];
  for (const [source, boots] of s.positions) for (const [boot, p] of boots) pos.push([source, boot, p.acked, p.consumed, [...p.held].sort((a, b) => a - b)]);
  const m = new Map<number, unknown>([
    [1, STATE_VERSION],
    [3, pos],
    [4, s.writtenMs],
  ]);
  if (s.builder) m.set(2, JSON.stringify(s.builder));
  return encode(m);
}

export function decodeNodeState(bytes: Uint8Array): NodeState {
  let top: unknown;
  try {
    top = decode(bytes, { maxBytes: 1 << 20, maxDepth: 8 });
  } catch (e) {
    throw new ValidationError('state', `the journal's pipeline state does not decode: ${(e as Error).message}`);
  }
  const m = amap(top, 'state');
  const v = auint(m.get(1), 'state.version');
  if (v !== STATE_VERSION) throw new ValidationError('state.version', `pipeline state version ${v}; this release reads version ${STATE_VERSION} (a newer release wrote this journal: upgrade, or keep running the newer one)`);
  let builder: BuilderSnapshot | undefined;
  if (m.has(2)) {
    try {
      builder = JSON.parse(astr(m.get(2), 'state.builder')) as BuilderSnapshot;
    } catch (e) {
      throw new ValidationError('state.builder', `the event builder snapshot is not JSON: ${(e as Error).message}`);
    }
  }
  const positions = new Map<string, Map<number, SourcePosition>>();
  aarray(m.get(3), 'state.positions').forEach((x, i) => {
    const f = `state.positions[${i}]`;
    const a = aarray(x, f, 5, 5);
    const source = astr(a[0], `${f}.source`);
    const boot = auint(a[1], `${f}.boot`, 0, 0xffffffff);
    const acked = auint(a[2], `${f}.acked`, 0, 0xffffffff);
    const consumed = auint(a[3], `${f}.consumed`, 0, 0xffffffff);
    if (consumed < acked) throw new ValidationError(`${f}.consumed`, `consumed (${consumed}) is below acked (${acked})`);
    const held = new Set(aarray(a[4], `${f}.held`).map((h, j) => auint(h, `${f}.held[${j}]`, acked + 1, consumed)));
    let boots = positions.get(source);
    if (!boots) positions.set(source, (boots = new Map()));
    boots.set(boot, { acked, consumed, held });
  });
  return { builder, positions, writtenMs: auint(m.get(4), 'state.written') };
}
