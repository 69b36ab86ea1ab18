// The query API (HTTP on loopback by default): for auditors and light nodes.
//
//   GET  /v1/health                               node id, role, store reachability, head size
//   GET  /v1/head                                 JSON: height, size, root, time, sequencer, sth (base64)
//   GET  /v1/head.cose                            the signed tree head itself (application/cose)
//   GET  /v1/blocks/{height}                      JSON block: its batches and leaf entries
//   GET  /v1/batches/{device}/{batch_seq}         JSON: where it is committed, sign1 and records (base64)
//   GET  /v1/receipts/{device}/{batch_seq}[?known_size=N]
//                                                 the COSE Receipt against the current head (application/cose)
//   GET  /v1/proofs/inclusion?device=&batch_seq=[&tree_size=]   or ?leaf_index=&tree_size=
//   GET  /v1/proofs/consistency?first=M&second=N  JSON: path and both roots
//   GET  /v1/devices/{device}                     JSON device status: head, last seen, rejects, keys
//   GET  /v1/events/{eventID}/bundle              the event proof bundle (.iscm, application/cbor)
//   GET  /v1/evidence[?device=]                   fork evidence (JSON; sign1 base64)
//   POST /v1/registry/claims                      an operator-signed claim (COSE_Sign1 body)
//   GET  /metrics                                 Prometheus text
//
// Errors: JSON {"error": CODE, "message": …} with 400 (bad request), 404 (not
// in the log), 503 (store unavailable).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { toHex } from '../protocol/bytes.js';
import { IscmError } from '../protocol/errors.js';
import { DEVICE_ID_RE } from '../protocol/record.js';
import { LedgerError, errorText } from './errors.js';
import type { Logger } from './logger.js';
import type { LedgerMetrics } from './metrics.js';
import type { LedgerReader } from './query.js';
import type { Registry } from './registry.js';
import type { Block, HeadState } from './store/types.js';

const b64 = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.length).toString('base64');

export function headJson(chainId: string, h: HeadState) {
  return { chain_id: chainId, height: h.height, size: h.size, root: toHex(h.root), time: h.time, sequencer: h.sequencer, sth: b64(h.sth) };
}

export function blockJson(b: Block) {
  return {
    height: b.height,
    first_leaf: b.firstLeaf,
    size: b.size,
    root: toHex(b.root),
    time: b.time,
    sequencer: b.sequencer,
    sth: b64(b.sth),
    batches: b.batches.map((x, i) => ({ leaf_index: b.firstLeaf + i, device_id: x.deviceId, batch_seq: x.batchSeq, entry: toHex(x.entry), first_seq: x.firstSeq, count: x.count, received: x.received })),
  };
}

class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

const bad = (m: string) => new HttpError(400, 'BAD_REQUEST', m);

function uintParam(v: string | null, name: string, required = true): number | undefined {
  if (v === null || v === '') {
    if (required) throw bad(`query parameter ${name} is required`);
    return undefined;
  }
  if (!/^\d{1,15}$/.test(v)) throw bad(`${name} must be an unsigned integer`);
  return Number(v);
}

function deviceParam(v: string | null | undefined): string {
  if (!v || !DEVICE_ID_RE.test(v)) throw bad('device must match [a-z0-9][a-z0-9_-]{0,63}');
  return v;
}

export interface ApiContext {
  chainId: string;
  nodeId: string;
  reader: LedgerReader;
  registry: Registry;
  metrics: LedgerMetrics;
  logger: Logger;
  role: () => 'active' | 'standby' | 'disabled';
  mqttConnected: () => boolean;
}

async function body(req: IncomingMessage, max: number): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n > max) throw new HttpError(413, 'TOO_LARGE', `request body over ${max} bytes`);
    chunks.push(c as Buffer);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

export function createApi(ctx: ApiContext): Server {
  const { reader, registry, metrics } = ctx;
  const json = (res: ServerResponse, status: number, v: unknown) => {
    const s = JSON.stringify(v);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s), 'cache-control': 'no-store' });
    res.end(s);
  };
  const binary = (res: ServerResponse, type: string, b: Uint8Array, name?: string) => {
    const h: Record<string, string | number> = { 'content-type': type, 'content-length': b.length, 'cache-control': 'no-store' };
    if (name) h['content-disposition'] = `attachment; filename="${name}"`;
    res.writeHead(200, h);
    res.end(Buffer.from(b.buffer, b.byteOffset, b.length));
  };

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const p = url.pathname.split('/').filter(Boolean).map((s) => decodeURIComponent(s));
    const q = url.searchParams;
    if (req.method === 'POST' && url.pathname === '/v1/registry/claims') {
      const claim = await body(req, 16 * 1024);
      const c = await registry.submit(claim);
      ctx.logger.info('registry: claim accepted', { kind: c.kind, device: c.deviceId });
      return json(res, 201, { kind: c.kind, device_id: c.deviceId, issued_at: c.issuedAt });
    }
    if (req.method !== 'GET') throw new HttpError(405, 'METHOD', `${req.method} is not supported here`);
    if (url.pathname === '/metrics') {
      const t = metrics.render();
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4', 'content-length': Buffer.byteLength(t) });
      return void res.end(t);
    }
    if (p[0] !== 'v1') throw new HttpError(404, 'NOT_FOUND', `no route ${url.pathname}`);
    switch (p[1]) {
      case 'health': {
        let store = 'ok';
        let size: number | null = null;
        try {
          size = (await reader.store.head()).head?.size ?? 0;
        } catch (e) {
          store = errorText(e);
        }
        return json(res, store === 'ok' ? 200 : 503, { node_id: ctx.nodeId, chain_id: ctx.chainId, role: ctx.role(), store, mqtt_connected: ctx.mqttConnected(), size });
      }
      case 'head.cose':
        return binary(res, 'application/cose', (await reader.head()).sth);
      case 'head':
        if (p.length === 2) return json(res, 200, headJson(ctx.chainId, await reader.head()));
        break;
      case 'blocks': {
        const h = uintParam(p[2] ?? null, 'height')!;
        const b = await reader.store.block(h);
        if (!b) throw new LedgerError('NOT_FOUND', `no block ${h}`);
        return json(res, 200, blockJson(b));
      }
      case 'batches': {
        const ref = await reader.ref(deviceParam(p[2]), uintParam(p[3] ?? null, 'batch_seq')!);
        const d = await reader.batchData(ref);
        return json(res, 200, { device_id: ref.deviceId, batch_seq: ref.batchSeq, leaf_index: ref.leafIndex, height: ref.height, entry: toHex(ref.entry), first_seq: ref.firstSeq, count: ref.count, sign1: b64(d.sign1), records: d.records.map(b64) });
      }
      case 'receipts': {
        const known = uintParam(q.get('known_size'), 'known_size', false) ?? 0;
        const r = await reader.receipt(deviceParam(p[2]), uintParam(p[3] ?? null, 'batch_seq')!, known);
        return binary(res, 'application/cose', r.receipt);
      }
      case 'proofs': {
        const head = await reader.head();
        if (p[2] === 'inclusion') {
          const size = uintParam(q.get('tree_size'), 'tree_size', false) ?? head.size;
          if (size > head.size) throw new LedgerError('NOT_FOUND', `tree_size ${size} is beyond the head (${head.size})`);
          let leaf: number;
          if (q.has('device')) {
            const ref = await reader.ref(deviceParam(q.get('device')), uintParam(q.get('batch_seq'), 'batch_seq')!);
            leaf = ref.leafIndex;
          } else leaf = uintParam(q.get('leaf_index'), 'leaf_index (or device and batch_seq)')!;
          const path = await reader.log.inclusion(leaf, size);
          const out: Record<string, unknown> = { leaf_index: leaf, tree_size: size, path: path.map(toHex), root: toHex(await reader.log.rootAt(size)) };
          if (size === head.size) out.receipt = b64(await reader.log.receipt(head, leaf));
          return json(res, 200, out);
        }
        if (p[2] === 'consistency') {
          const first = uintParam(q.get('first'), 'first')!;
          const second = uintParam(q.get('second'), 'second', false) ?? head.size;
          if (second > head.size) throw new LedgerError('NOT_FOUND', `second ${second} is beyond the head (${head.size})`);
          const path = await reader.log.consistency(first, second);
          return json(res, 200, { first, second, path: path.map(toHex), first_root: toHex(await reader.log.rootAt(first)), second_root: toHex(await reader.log.rootAt(second)) });
        }
        break;
      }
      case 'devices': {
        const s = await reader.deviceStatus(deviceParam(p[2]));
        return json(res, 200, {
          device_id: s.deviceId,
          head: s.head && { batch_seq: s.head.batchSeq, last_seq: s.head.lastSeq, last_leaf: s.head.lastLeaf, height: s.head.height, events: s.head.events, committed_at: s.head.committedAt },
          last_seen: s.lastSeen,
          batches_seen: s.batchesSeen,
          rejects: s.rejects,
          last_reject: s.lastReject,
          last_reject_time: s.lastRejectTime,
          keys: s.keys.map((k) => ({ kid: k.kid, revoked: k.revoked, revoked_reason: k.revokedReason, not_before: k.notBefore, not_after: k.notAfter })),
          fork_evidence: s.forkEvidence,
          pending: s.pending,
        });
      }
      case 'events': {
        if (p[3] !== 'bundle' || !p[2]) break;
        const b = await reader.eventBundle(p[2]);
        return binary(res, 'application/cbor', b, 'event.iscm');
      }
      case 'evidence': {
        const dev = q.get('device');
        const list = await reader.store.evidence(dev ? deviceParam(dev) : undefined);
        return json(res, 200, list.map((e) => ({ device_id: e.deviceId, batch_seq: e.batchSeq, kind: e.kind, entry: toHex(e.entry), other_entry: toHex(e.otherEntry), reason: e.reason, detected: e.detected, node: e.node, sign1: b64(e.sign1) })));
      }
    }
    throw new HttpError(404, 'NOT_FOUND', `no route ${url.pathname}`);
  }

  return createServer((req, res) => {
    route(req, res).catch((e) => {
      let status = 500;
      let code = 'INTERNAL';
      if (e instanceof HttpError) {
        status = e.status;
        code = e.code;
      } else if (e instanceof LedgerError) {
        code = e.code;
        status = e.code === 'NOT_FOUND' ? 404 : e.code === 'REGISTRY' ? 400 : e.code === 'STORE_UNAVAILABLE' ? 503 : 500;
      } else if (e instanceof IscmError) {
        code = e.code;
        status = 400;
      }
      if (status >= 500) ctx.logger.warn('api: request failed', { path: req.url?.slice(0, 200), error: errorText(e) });
      if (!res.headersSent) json(res, status, { error: code, message: errorText(e) });
      else res.destroy();
    });
  });
}
