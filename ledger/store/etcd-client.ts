// Creating etcd3 clients the way the ledger needs them.
//
// etcd3's default fault handling wraps every host in a circuit breaker that
// opens for 5 s after three failures, so killing the etcd leader turns into
// ~5 s of refused calls even though the cluster elects a new leader in ~1 s.
// The ledger retries on its own terms (store-level retries with deadlines),
// so the client gets pass-through policies, a constant short watch backoff
// (the election watches must come back fast after a leader change) and a
// deadline on every unary call (no call hangs while the cluster has no quorum).
//
// etcd3 is loaded with require() at run time rather than bundled: it reads its
// gRPC service definition (proto/rpc.proto) from its own package directory
// when it loads, which a single-file bundle cannot provide. So the ledger
// bundle (dist/iscm-ledger.mjs) needs node_modules/etcd3 beside it (a full
// node is a server with `npm ci` done; the gateway bundle never loads this).
import { createRequire } from 'node:module';
import type { Etcd3, IOptions } from 'etcd3';

type Etcd3Module = typeof import('etcd3');
let etcd3Module: Etcd3Module | null = null;

/** The etcd3 package (loaded on first use). */
export function etcd3(): Etcd3Module {
  if (!etcd3Module) etcd3Module = createRequire(import.meta.url)('etcd3') as Etcd3Module;
  return etcd3Module;
}

type Policy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;
type Backoff = NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>;

/** A policy that just runs the call (cockatiel's NoopPolicy, without importing cockatiel). */
export function passThroughPolicy(): Policy {
  const p = {
    execute: async <T>(fn: (ctx: { signal: AbortSignal }) => Promise<T> | T): Promise<T> => fn({ signal: new AbortController().signal }),
    onSuccess: () => ({ dispose() {} }),
    onFailure: () => ({ dispose() {} }),
  };
  return p as unknown as Policy;
}

/** A constant backoff (cockatiel's IBackoff shape). */
export function constantBackoff(ms: number): Backoff {
  const b = { duration: ms, next: () => b };
  return b as unknown as Backoff;
}

export interface EtcdClientOptions {
  endpoints: string[];
  /** Deadline of each unary call in ms (default 5000). */
  callTimeoutMs?: number;
  dialTimeoutMs?: number;
  credentials?: { rootCertificate: Buffer; privateKey?: Buffer; certChain?: Buffer };
  auth?: { username: string; password: string };
  /** gRPC max message sizes: must admit etcd's --max-request-bytes. */
  maxMessageBytes?: number;
}

export function createEtcdClient(o: EtcdClientOptions): Etcd3 {
  const callTimeout = o.callTimeoutMs ?? 5000;
  const maxMsg = Math.max(o.maxMessageBytes ?? 0, 16 * 1024 * 1024);
  const { Etcd3: Client } = etcd3();
  return new Client({
    hosts: o.endpoints,
    dialTimeout: o.dialTimeoutMs ?? 3000,
    credentials: o.credentials,
    auth: o.auth,
    grpcOptions: {
      'grpc.max_receive_message_length': maxMsg,
      'grpc.max_send_message_length': maxMsg,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
    },
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + callTimeout }),
    faultHandling: { host: () => passThroughPolicy(), global: passThroughPolicy(), watchBackoff: constantBackoff(250) },
  });
}
