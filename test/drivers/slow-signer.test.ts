// The slow-token wrapper: real signatures, added latency, serialisation, close.
// Timing is only checked as a lower bound from timers (never an upper bound):
// the machine is shared and may be slow.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateKeyPairSync } from 'node:crypto';
import { IscmError } from '../../protocol/errors.js';
import { ALG, verifySignature } from '../../protocol/cose/algorithms.js';
import { toHex } from '../../protocol/bytes.js';
import { softwareSignerFromKey } from '../../drivers/software/signer.js';
import { slowSigner } from '../../drivers/slow-signer.js';
import type { Signer } from '../../drivers/signer.js';

function inner(): Signer & { active: number; maxActive: number; order: string[]; closed: boolean; close(): Promise<void> } {
  const base = softwareSignerFromKey(ALG.EdDSA, generateKeyPairSync('ed25519').privateKey);
  const s = {
    alg: base.alg,
    publicKey: base.publicKey,
    kid: base.kid,
    active: 0,
    maxActive: 0,
    order: [] as string[],
    closed: false,
    async sign(data: Uint8Array) {
      s.active++;
      s.maxActive = Math.max(s.maxActive, s.active);
      s.order.push(new TextDecoder().decode(data));
      try {
        await new Promise((r) => setImmediate(r));
        return await base.sign(data);
      } finally {
        s.active--;
      }
    },
    async close() {
      s.closed = true;
    },
  };
  return s;
}

test('signatures are real and the key is the inner one', async () => {
  const i = inner();
  const s = slowSigner(i, { latencyMs: 5 });
  assert.is(s.alg, i.alg);
  assert.is(toHex(s.kid), toHex(i.kid));
  const msg = new TextEncoder().encode('m');
  verifySignature(s.alg, s.publicKey, msg, await s.sign(msg));
});

test('serialised by default: one at a time, FIFO, latency added to each', async () => {
  const i = inner();
  const s = slowSigner(i, { latencyMs: 20 });
  const t0 = performance.now();
  const msgs = Array.from({ length: 6 }, (_, k) => `m${k}`);
  const sigs = await Promise.all(msgs.map((m) => s.sign(new TextEncoder().encode(m))));
  const elapsed = performance.now() - t0;
  assert.is(sigs.length, 6);
  assert.is(i.maxActive, 1);
  assert.equal(i.order, msgs);
  const st = s.stats();
  assert.is(st.signs, 6);
  assert.is(st.maxActive, 1);
  assert.is(st.maxQueued, 5);
  assert.is(st.queued, 0);
  // Lower bound only: 6 serialised signatures of ≥ 20 ms each (timers never fire early by more than 1 ms).
  assert.ok(elapsed >= 6 * 20 - 6, `elapsed ${elapsed} ms < 114 ms: latency not applied per signature`);
});

test('concurrency N lets N sign at once, never more', async () => {
  const i = inner();
  const s = slowSigner(i, { latencyMs: 10, jitterMs: 5, concurrency: 3, random: () => 0.5 });
  await Promise.all(Array.from({ length: 12 }, (_, k) => s.sign(new TextEncoder().encode(`x${k}`))));
  assert.is(s.stats().maxActive, 3);
  assert.ok(i.maxActive <= 3);
});

test('close rejects waiting and sleeping calls, closes the inner signer, later calls fail', async () => {
  const i = inner();
  const s = slowSigner(i, { latencyMs: 60_000 });
  const pending = Array.from({ length: 3 }, () => s.sign(new Uint8Array(1)));
  await new Promise((r) => setTimeout(r, 10));
  assert.is(s.stats().active, 1);
  assert.is(s.stats().queued, 2);
  await s.close();
  const results = await Promise.allSettled(pending);
  for (const r of results) {
    assert.is(r.status, 'rejected');
    const e = (r as PromiseRejectedResult).reason;
    assert.ok(e instanceof IscmError && e.code === 'SIGNER_ERROR', String(e));
  }
  assert.ok(i.closed);
  try {
    await s.sign(new Uint8Array(1));
    assert.unreachable('signed after close');
  } catch (e) {
    assert.ok(e instanceof IscmError && e.code === 'SIGNER_ERROR');
  }
  assert.is(s.stats().active, 0);
});

test('closeInner: false leaves the inner signer open', async () => {
  const i = inner();
  await slowSigner(i, { latencyMs: 0, closeInner: false }).close();
  assert.not.ok(i.closed);
});

test('bad options are USAGE errors', () => {
  const i = inner();
  for (const o of [{ latencyMs: -1 }, { latencyMs: NaN }, { latencyMs: 1, concurrency: 0 }, { latencyMs: 1, jitterMs: -2 }])
    assert.throws(() => slowSigner(i, o), (e: unknown) => e instanceof IscmError && e.code === 'USAGE');
});

test.run();
