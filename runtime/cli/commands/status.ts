// iscm-edge status: one screen of what a running light node is doing, read
// from its /status endpoint (runtime/node/status.ts): links, backlog, signer,
// last receipt, alarms. Exit 0 when healthy, 1 when it reports alarms or
// cannot be reached, 2 usage error.
import { get } from 'node:http';
import { errorMessage } from '../../../protocol/errors.js';
import { EXIT, parse, UsageError, type Command } from '../usage.js';

const usage = `usage: iscm-edge status [--config FILE | --url URL] [--json]

Asks the running light node for its status and prints it on one screen.

  --config FILE   the node's gateway config: its metrics.listen address is asked
  --url URL       the ops endpoint, e.g. http://127.0.0.1:9464 (instead of --config)
  --json          the raw /status document

Exit: 0 healthy, 1 the node reports alarms or cannot be reached, 2 usage error.`;

function fetchJson(url: string, timeoutMs = 5000): Promise<{ code: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = get(url, { timeout: timeoutMs }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (data += d));
      res.on('end', () => {
        try {
          resolve({ code: res.statusCode ?? 0, body: JSON.parse(data) });
        } catch (e) {
          reject(new Error(`${url} did not answer JSON: ${errorMessage(e)}`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

const age = (s: unknown) => (typeof s === 'number' ? (s < 120 ? `${s} s ago` : s < 7200 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`) : 'never');
const mib = (b: unknown) => (typeof b === 'number' ? (b >= 1 << 20 ? `${(b / (1 << 20)).toFixed(1)} MiB` : `${(b / 1024).toFixed(0)} KiB`) : '?');
const dur = (s: number) => (s < 3600 ? `${Math.floor(s / 60)}m${s % 60}s` : `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`);

/** The one-screen rendering of a /status document. */
export function renderStatus(s: Record<string, any>): string[] {
  const out: string[] = [];
  out.push(`${s.device}  iscm-edge ${s.version}  ${s.state}, up ${dur(s.uptime_s ?? 0)}`);
  const links = Object.entries(s.links ?? {}) as [string, any][];
  if (links.length === 0) out.push('links     none configured');
  links.forEach(([name, l], i) => {
    const what =
      l.protocol === 'nmea'
        ? `gps receiver, port ${l.state}, ${l.fixes} fixes, last ${age(l.last_fix_age_s)}${l.bad_sentences ? `, ${l.bad_sentences} bad sentences` : ''}`
        : `${l.state}${l.firmware ? ` (${l.firmware}, boot ${l.boot_id})` : ''}, ${l.readings} readings, ${l.duplicates} duplicates${l.bad_frames ? `, ${l.bad_frames} bad frames` : ''}${l.invalid ? `, ${l.invalid} invalid` : ''}`;
    out.push(`${i === 0 ? 'links     ' : '          '}${name}: ${what}`);
  });
  if (s.local_input) out.push(`local     ${s.local_input.socket}`);
  const j = s.journal ?? {};
  const behind = (j.last_seq ?? 0) - (j.committed_through_seq ?? 0);
  out.push(`journal   ${j.last_seq} records, ${j.committed_through_seq} receipted (${behind} behind, ${mib(j.backlog_bytes)}, oldest ${j.backlog_age_s ?? 0} s); ${j.capacity_bytes ? Math.round((100 * j.used_bytes) / j.capacity_bytes) : 0}% of ${mib(j.capacity_bytes)}; back-pressure ${j.backpressure}${j.backpressure !== 'ok' ? ` (${j.backpressure_reason})` : ''}`);
  if (s.pipeline && (s.pipeline.held || s.pipeline.windowed)) out.push(`pipeline  ${s.pipeline.windowed} readings in open windows, ${s.pipeline.held} held for a trusted time`);
  const sg = s.signer ?? {};
  out.push(`signer    ${sg.state}${sg.kid ? ` kid ${String(sg.kid).slice(0, 16)}…` : ''}${sg.error ? `: ${sg.error}` : ''}${s.batcher?.last_error ? ` (last batch error: ${s.batcher.last_error})` : ''}`);
  const sy = s.sync ?? {};
  out.push(`sync      ${sy.state}${sy.state === 'disabled' ? '' : `, ${sy.in_flight} batches in flight, last receipt ${age(sy.last_receipt_age_s)}, trusted tree size ${sy.trusted_tree_size}`}${sy.halted ? `; HALTED: ${sy.halted}` : ''}`);
  const alarms = (s.alarms ?? []) as { key: string; message: string; since: string }[];
  if (alarms.length === 0) out.push('alarms    none');
  alarms.forEach((a, i) => out.push(`${i === 0 ? 'alarms    ' : '          '}${a.message} (since ${a.since})`));
  return out;
}

export const command: Command = {
  name: 'status',
  summary: 'show what a running light node is doing',
  usage,
  async run(argv, io) {
    const { values, positionals } = parse(argv, { config: { type: 'string' }, url: { type: 'string' }, json: { type: 'boolean' } }, false);
    if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`);
    if (!values.config === !values.url) throw new UsageError('give --config FILE or --url URL');
    let base = values.url;
    if (values.config) {
      const { loadConfig } = await import('../../config/index.js');
      let c;
      try {
        c = loadConfig(values.config, io.env);
      } catch (e) {
        io.err(`iscm-edge status: ${errorMessage(e)}`);
        return EXIT.INVALID;
      }
      if (!c.metrics.enabled) throw new UsageError(`${values.config}: metrics.enabled is false, so the node serves no /status`);
      base = `http://${c.metrics.listen.replace(/^0\.0\.0\.0:/, '127.0.0.1:')}`;
    }
    if (!/^https?:\/\//.test(base!)) throw new UsageError(`--url ${base}: expected http://HOST:PORT`);
    const url = `${base!.replace(/\/+$/, '')}/status`;
    let res;
    try {
      res = await fetchJson(url);
    } catch (e) {
      io.err(`iscm-edge status: cannot reach the light node at ${url}: ${errorMessage(e)} (is it running? see journalctl -u iscm-edge)`);
      return EXIT.INVALID;
    }
    const s = res.body as Record<string, any>;
    if (values.json) io.out(JSON.stringify(s, null, 1));
    else for (const l of renderStatus(s)) io.out(l);
    const healthy = s.state === 'running' && (s.alarms ?? []).length === 0 && !s.sync?.halted;
    return healthy ? EXIT.OK : EXIT.INVALID;
  },
};
