// The node's /status document and /healthz verdict: one JSON object an
// operator (or `iscm-edge status`) reads to see at a glance that readings come
// in, get signed, and come back receipted — and, when not, which part is
// stuck and why. Cheap to build (no I/O) and never secret: no PINs, keys or
// passwords, only key ids and states.
import { version } from '../cli/version.js';
import type { GatewayLink } from '../../firmware-bridge/link.js';
import type { LightNode } from './light-node.js';

export interface StatusParts {
  node: LightNode;
  alarms: Map<string, { message: string; since: number }>;
  linkInfo: Map<string, { state: string; lastEvent?: string; firmware?: string; bootId?: number }>;
  startedAt: number;
  state: string;
}

function linkStatus(l: GatewayLink, info: { state: string; firmware?: string; bootId?: number } | undefined): Record<string, unknown> {
  const s = l.session.stats;
  const bad = Object.values(s.badFrames).reduce((a, b) => a + b, 0);
  return {
    protocol: 'iscm-link',
    state: info?.state ?? 'unknown',
    firmware: info?.firmware ?? null,
    boot_id: info?.bootId ?? null,
    readings: s.readings,
    duplicates: s.duplicates,
    invalid: s.invalid,
    bad_frames: bad,
    acks: s.acks,
    nacks: s.nacks,
    rtt_ms: s.lastRttMs ?? null,
  };
}

export function nodeStatus(p: StatusParts): Record<string, unknown> {
  const n = p.node;
  const now = Date.now();
  const js = n.journal.stats();
  const jm = n.journal.metrics();
  const links: Record<string, unknown> = {};
  for (const [name, l] of n.links) links[name] = linkStatus(l, p.linkInfo.get(name));
  for (const [name, g] of n.nmea) links[name] = g.status();
  const sync = n.sync;
  const head = n.head.current();
  return {
    device: n.config.device.id,
    version: version(),
    state: p.state,
    uptime_s: p.startedAt ? Math.round((now - p.startedAt) / 1000) : 0,
    links,
    local_input: n.local ? { socket: n.config.local_input?.socket } : null,
    pipeline: n.pipeline.pending(),
    journal: {
      last_seq: js.lastSeq,
      batched_through_seq: js.batchedThroughSeq,
      committed_through_seq: js.committedThroughSeq,
      last_batch_seq: js.lastBatchSeq,
      committed_through_batch: js.committedThroughBatch,
      backlog_records: jm.backlog_records,
      backlog_bytes: jm.backlog_bytes,
      backlog_age_s: Math.round(jm.backlog_age_seconds),
      used_bytes: js.usedBytes,
      capacity_bytes: js.capacityBytes,
      backpressure: js.backpressure.state,
      backpressure_reason: js.backpressure.reason,
      segments: js.segments,
      recovery_ms: js.recovery?.ms ?? null,
    },
    signer: n.signer.detail(),
    batcher: { signing: n.batcher.signing, last_error: n.batcher.lastError ?? null },
    sync: sync
      ? {
          state: sync.state,
          in_flight: sync.inFlight(),
          halted: sync.halted ?? null,
          last_receipt_age_s: sync.lastReceiptAt ? Math.round((now - sync.lastReceiptAt) / 1000) : null,
          trusted_tree_size: head?.size ?? 0,
        }
      : { state: 'disabled' },
    alarms: [...p.alarms].map(([key, a]) => ({ key, message: a.message, since: new Date(a.since).toISOString() })),
  };
}

/** Healthy: running, journal writable, sync not halted. The reasons otherwise. */
export function nodeHealth(p: StatusParts): { ok: boolean; reasons: string[] } {
  const n = p.node;
  const reasons: string[] = [];
  if (p.state !== 'running') reasons.push(`node is ${p.state}`);
  try {
    const jm = n.journal.metrics();
    if (jm.failed) reasons.push('journal failed (fsync error): restart the node');
    if (jm.backpressure_state === 2) reasons.push('journal full: readings are refused');
  } catch {
    reasons.push('journal not open');
  }
  if (n.sync?.halted) reasons.push(`sync halted: ${n.sync.halted}`);
  if (n.signer.state === 'failed') reasons.push(`signer: ${n.signer.lastError ?? 'cannot open the key'}`);
  return { ok: reasons.length === 0, reasons };
}
