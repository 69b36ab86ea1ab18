// `npm run bench -- signers`: signatures per second and p50/p99 latency per
// mechanism through the PKCS#11 driver on a SoftHSM2 token (temp dir), next
// to the software driver, plus the "slow token" wrapper (default 100 ms per
// signature, serialised like a USB token).
//
// Goals (issue 4): ES256 ≥ 10 000/s and Ed25519 ≥ 3 000/s through pkcs11js +
// SoftHSM on the dev box. Every row carries the 1-minute load average: other
// engineers run tests and benchmarks on the same 2 cores.
//
// Options (environment): ISCM_BENCH_MS (time per row, default 2000),
// ISCM_BENCH_SLOW_MS (slow token latency, default 100).
import { generateKeyPairSync } from 'node:crypto';
import { createRequire } from 'node:module';
import { cpus, loadavg } from 'node:os';
import { ALG, algName } from '../protocol/cose/algorithms.js';
import type { Signer } from '../drivers/signer.js';
import { softwareSignerFromKey } from '../drivers/software/signer.js';
import { openPkcs11Signer } from '../drivers/pkcs11/signer.js';
import { Pkcs11Token } from '../drivers/pkcs11/token.js';
import { slowSigner } from '../drivers/slow-signer.js';
import { CKA_CLASS, CKA_LABEL, CKF_OS_LOCKING_OK, CKF_SERIAL_SESSION, CKM_ECDSA, CKM_EDDSA, CKO_PRIVATE_KEY, CKU_USER } from '../drivers/pkcs11/constants.js';
import { createSoftHsm, softhsmModule, useSoftHsm } from '../test/helpers/softhsm.js';
import { emit, table } from './_util.js';

const MS = Number(process.env.ISCM_BENCH_MS ?? 2000);
const SLOW_MS = Number(process.env.ISCM_BENCH_SLOW_MS ?? 100);
const GOALS: Record<number, number> = { [ALG.ES256]: 10_000, [ALG.EdDSA]: 3_000 };

const load = () => Number(loadavg()[0].toFixed(2));

/** Runs `concurrency` loops of sign() for `ms` (after a warm-up); ops/s and latency percentiles in µs. */
async function measure(signer: Signer, ms: number, concurrency: number, payloadBytes = 200): Promise<{ ops: number; p50: number; p99: number; n: number }> {
  const data = new Uint8Array(payloadBytes).fill(0x5a);
  const warmEnd = performance.now() + Math.min(300, ms / 5);
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < warmEnd) await signer.sign(data);
    }),
  );
  const lat: number[] = [];
  const t0 = performance.now();
  const end = t0 + ms;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const s = performance.now();
        await signer.sign(data);
        lat.push(performance.now() - s);
      }
    }),
  );
  const elapsed = performance.now() - t0;
  lat.sort((a, b) => a - b);
  const pct = (p: number) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] * 1000 : 0);
  return { ops: (lat.length * 1000) / elapsed, p50: pct(0.5), p99: pct(0.99), n: lat.length };
}

emit({ bench: 'signers', what: 'machine', cpus: cpus().length, node: process.version, load_avg: loadavg().map((x) => Number(x.toFixed(2))), ms_per_row: MS });

// ---------------------------------------------------------------- software driver

const softKeys: [number, string, object][] = [
  [ALG.ES256, 'ec', { namedCurve: 'prime256v1' }],
  [ALG.EdDSA, 'ed25519', {}],
  [ALG.PS256, 'rsa', { modulusLength: 2048 }],
  [ALG.ES256K, 'ec', { namedCurve: 'secp256k1' }],
];
for (const [alg, type, opts] of softKeys) {
  const signer = softwareSignerFromKey(alg, generateKeyPairSync(type as 'ec', opts as { namedCurve: string }).privateKey);
  const r = await measure(signer, MS, 1);
  emit({ bench: 'signers', driver: 'software', alg: algName(alg), mode: 'in-process', concurrency: 1, ops_per_s: r.ops, p50_us: r.p50, p99_us: r.p99, samples: r.n, load_avg_1m: load() });
}

// ---------------------------------------------------------------- PKCS#11 through SoftHSM

const module = softhsmModule();
if (!module) {
  emit({ bench: 'signers', driver: 'pkcs11', skipped: 'SoftHSM2 not installed (Debian softhsm2)' });
} else {
  const hsm = createSoftHsm(['bench']);
  useSoftHsm(hsm);
  const env = { ISCM_PKCS11_PIN: hsm.pin };
  const t = await Pkcs11Token.open({ module, token: 'bench', env, rw: true });
  const labels: [number, string][] = [
    [ALG.ES256, 'es256'],
    [ALG.EdDSA, 'ed25519'],
    [ALG.PS256, 'ps256'],
    [ALG.ES256K, 'es256k'],
  ];
  for (const [alg, label] of labels) t.generateKeyPair({ alg, label, rsaBits: 2048 });
  await t.close();

  // Baseline at the same moment: pkcs11js alone (C_SignInit + C_Sign on the main thread, no
  // driver), so the driver's overhead can be told apart from the machine's load.
  {
    const p11 = createRequire(import.meta.url)('pkcs11js') as typeof import('pkcs11js');
    const p = new p11.PKCS11();
    p.load(module);
    p.C_Initialize({ flags: CKF_OS_LOCKING_OK });
    try {
      const slot = p.C_GetSlotList(true).find((sl) => p.C_GetTokenInfo(sl).label.trim() === 'bench')!;
      const session = p.C_OpenSession(slot, CKF_SERIAL_SESSION);
      p.C_Login(session, CKU_USER, hsm.pin);
      for (const [alg, label, mech] of [
        [ALG.ES256, 'es256', CKM_ECDSA],
        [ALG.EdDSA, 'ed25519', CKM_EDDSA],
      ] as const) {
        p.C_FindObjectsInit(session, [{ type: CKA_CLASS, value: CKO_PRIVATE_KEY }, { type: CKA_LABEL, value: label }]);
        const key = p.C_FindObjects(session, 1)[0];
        p.C_FindObjectsFinal(session);
        const input = alg === ALG.ES256 ? Buffer.alloc(32, 1) : Buffer.alloc(200, 0x5a);
        const out = Buffer.alloc(64);
        const fake: Signer = {
          alg,
          publicKey: undefined as never,
          kid: new Uint8Array(32),
          sign: async () => {
            p.C_SignInit(session, { mechanism: mech }, key);
            return p.C_Sign(session, input, out);
          },
        };
        const r = await measure(fake, MS, 1);
        emit({ bench: 'signers', driver: 'pkcs11js-raw (baseline, no driver)', token: 'softhsm2', alg: algName(alg), mode: 'blocking', concurrency: 1, ops_per_s: r.ops, p50_us: r.p50, p99_us: r.p99, samples: r.n, load_avg_1m: load() });
      }
      p.C_CloseSession(session);
    } finally {
      p.C_Finalize();
      p.close();
    }
  }

  const modes = [
    { mode: 'async', sessions: 1, concurrency: 1 },
    { mode: 'async', sessions: 2, concurrency: 4 },
    { mode: 'async', sessions: 4, concurrency: 8 },
    { mode: 'blocking', sessions: 1, concurrency: 1 },
  ];
  for (const [alg, label] of labels) {
    let best = 0;
    for (const m of modes) {
      const signer = await openPkcs11Signer({ module, token: 'bench', label, env, sessions: m.sessions, blocking: m.mode === 'blocking' });
      const r = await measure(signer, MS, m.concurrency);
      await signer.close();
      best = Math.max(best, r.ops);
      const goal = GOALS[alg];
      emit({
        bench: 'signers',
        driver: 'pkcs11',
        token: 'softhsm2',
        alg: algName(alg),
        mode: m.mode,
        sessions: m.sessions,
        concurrency: m.concurrency,
        ops_per_s: r.ops,
        p50_us: r.p50,
        p99_us: r.p99,
        samples: r.n,
        ...(goal ? { goal_ops_per_s: goal, meets_goal: r.ops >= goal } : {}),
        load_avg_1m: load(),
      });
    }
    const goal = GOALS[alg];
    if (goal) emit({ bench: 'signers', driver: 'pkcs11', alg: algName(alg), summary: 'best mode', ops_per_s: best, goal_ops_per_s: goal, meets_goal: best >= goal, load_avg_1m: load() });
  }

  // ---------------------------------------------------------------- slow token
  // A 100 ms token signs ~10/s however many callers wait: the batcher's job is
  // to put thousands of events under each of those signatures.
  for (const concurrency of [1, 16]) {
    const inner = await openPkcs11Signer({ module, token: 'bench', label: 'es256', env });
    const slow = slowSigner(inner, { latencyMs: SLOW_MS });
    const r = await measure(slow, Math.max(MS, 30 * SLOW_MS), concurrency);
    await slow.close();
    emit({
      bench: 'signers',
      driver: 'slow-token(pkcs11)',
      alg: 'ES256',
      latency_ms: SLOW_MS,
      mode: 'serialised',
      concurrency,
      ops_per_s: r.ops,
      p50_us: r.p50,
      p99_us: r.p99,
      samples: r.n,
      ceiling_ops_per_s: 1000 / SLOW_MS,
      load_avg_1m: load(),
    });
  }
}

emit({ bench: 'signers', what: 'done', load_avg: loadavg().map((x) => Number(x.toFixed(2))) });
table();
