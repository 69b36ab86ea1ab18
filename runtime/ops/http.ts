// The operations endpoint: /metrics (Prometheus text), /healthz, /status
// (JSON), on a loopback address by default. Read-only; nothing here changes
// the node's state, and nothing secret is in any answer.
import { createServer, type Server } from 'node:http';
import type { Registry } from './metrics.js';

export interface OpsServerOptions {
  host?: string;
  port: number;
  registry: Registry;
  /** Current status document (must not throw; keep it cheap). */
  status: () => Record<string, unknown>;
  /** Healthy = every component up; the reasons when not. */
  health: () => { ok: boolean; reasons: string[] };
}

export class OpsServer {
  private server: Server | undefined;
  port = 0;
  constructor(private readonly o: OpsServerOptions) {}

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      const send = (code: number, type: string, body: string) => {
        res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store' });
        res.end(body);
      };
      try {
        if (req.method !== 'GET') return send(405, 'text/plain', 'GET only\n');
        const path = (req.url ?? '/').split('?')[0];
        if (path === '/metrics') return send(200, 'text/plain; version=0.0.4', this.o.registry.render());
        if (path === '/healthz') {
          const h = this.o.health();
          return send(h.ok ? 200 : 503, 'application/json', JSON.stringify(h) + '\n');
        }
        if (path === '/status') return send(200, 'application/json', JSON.stringify(this.o.status(), null, 1) + '\n');
        return send(404, 'text/plain', 'not found: try /metrics, /healthz or /status\n');
      } catch (e) {
        return send(500, 'text/plain', `internal error: ${(e as Error).message}\n`);
      }
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.o.port, this.o.host ?? '127.0.0.1', () => {
        server.off('error', reject);
        this.port = (server.address() as { port: number }).port;
        resolve();
      });
    });
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }
}
