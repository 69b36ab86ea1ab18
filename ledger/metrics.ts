// Prometheus text exposition (format 0.0.4) for /metrics, without a
// dependency: counters, gauges and histograms with fixed label sets.
type Labels = Record<string, string>;

const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const labelText = (l: Labels) => {
  const e = Object.entries(l);
  return e.length ? `{${e.map(([k, v]) => `${k}="${esc(v)}"`).join(',')}}` : '';
};

interface Metric {
  render(): string;
}

export class Counter implements Metric {
  #v = new Map<string, [Labels, number]>();
  constructor(readonly name: string, readonly help: string) {}
  inc(labels: Labels = {}, n = 1): void {
    const k = labelText(labels);
    const cur = this.#v.get(k);
    this.#v.set(k, [labels, (cur?.[1] ?? 0) + n]);
  }
  get(labels: Labels = {}): number {
    return this.#v.get(labelText(labels))?.[1] ?? 0;
  }
  total(): number {
    let s = 0;
    for (const [, v] of this.#v.values()) s += v;
    return s;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    if (this.#v.size === 0) lines.push(`${this.name} 0`);
    for (const [l, v] of this.#v.values()) lines.push(`${this.name}${labelText(l)} ${v}`);
    return lines.join('\n');
  }
}

export class Gauge implements Metric {
  #v = new Map<string, [Labels, number]>();
  constructor(readonly name: string, readonly help: string) {}
  set(v: number, labels: Labels = {}): void {
    this.#v.set(labelText(labels), [labels, v]);
  }
  get(labels: Labels = {}): number {
    return this.#v.get(labelText(labels))?.[1] ?? 0;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`];
    if (this.#v.size === 0) lines.push(`${this.name} 0`);
    for (const [l, v] of this.#v.values()) lines.push(`${this.name}${labelText(l)} ${v}`);
    return lines.join('\n');
  }
}

export class Histogram implements Metric {
  #counts: number[];
  #sum = 0;
  #n = 0;
  constructor(readonly name: string, readonly help: string, readonly buckets: number[]) {
    this.#counts = buckets.map(() => 0);
  }
  observe(v: number): void {
    this.#sum += v;
    this.#n++;
    for (let i = 0; i < this.buckets.length; i++) if (v <= this.buckets[i]) this.#counts[i]++;
  }
  get count(): number {
    return this.#n;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    this.buckets.forEach((b, i) => lines.push(`${this.name}_bucket{le="${b}"} ${this.#counts[i]}`));
    lines.push(`${this.name}_bucket{le="+Inf"} ${this.#n}`, `${this.name}_sum ${this.#sum}`, `${this.name}_count ${this.#n}`);
    return lines.join('\n');
  }
}

const SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Every metric of the full node. */
export class LedgerMetrics {
  readonly batchesReceived = new Counter('iscm_ledger_batches_received_total', 'Batch messages received from MQTT');
  readonly batchesPending = new Counter('iscm_ledger_batches_pending_total', 'Verified batches written as pending');
  readonly batchesCommitted = new Counter('iscm_ledger_batches_committed_total', 'Batches committed to the log by this node as sequencer');
  readonly eventsCommitted = new Counter('iscm_ledger_events_committed_total', 'Records (events) committed by this node as sequencer');
  readonly batchesRejected = new Counter('iscm_ledger_batches_rejected_total', 'Batches rejected, by reason class');
  readonly duplicates = new Counter('iscm_ledger_duplicates_total', 'Batches received again: committed (receipt re-sent) or still pending');
  readonly receiptRequests = new Counter('iscm_ledger_receipt_requests_total', 'Receipt requests (batch messages without records) answered');
  readonly gaps = new Counter('iscm_ledger_gaps_total', 'Gap answers sent (device must resend from next_seq)');
  readonly forks = new Counter('iscm_ledger_fork_evidence_total', 'Conflicting batches kept as fork evidence (ALARM)');
  readonly receipts = new Counter('iscm_ledger_receipts_published_total', 'Receipt messages published, by status');
  readonly blocks = new Counter('iscm_ledger_blocks_committed_total', 'Blocks committed by this node');
  readonly casConflicts = new Counter('iscm_ledger_block_cas_conflicts_total', 'Block commits refused because the head moved (another sequencer)');
  readonly storeErrors = new Counter('iscm_ledger_store_errors_total', 'Store operations that failed, by operation');
  readonly mqttDropped = new Counter('iscm_ledger_mqtt_invalid_topic_total', 'Messages on topics that name no valid device');
  readonly archived = new Counter('iscm_ledger_archive_segments_total', 'Archive segments sealed by this node');
  readonly blockSeconds = new Histogram('iscm_ledger_block_commit_seconds', 'Time to build, sign and commit one block', SECONDS);
  readonly lagSeconds = new Histogram('iscm_ledger_commit_lag_seconds', 'From a batch written as pending to its block commit', SECONDS);
  readonly role = new Gauge('iscm_ledger_sequencer_active', '1 while this node is the active sequencer, else 0');
  readonly pending = new Gauge('iscm_ledger_pending_batches', 'Pending batches seen by the sequencer at its last round');
  readonly treeSize = new Gauge('iscm_ledger_tree_size', 'Log size (leaves = batches) at the last head this node saw');
  readonly height = new Gauge('iscm_ledger_block_height', 'Height of the last block this node saw');
  readonly dbSize = new Gauge('iscm_ledger_etcd_db_size_bytes', 'etcd database size (largest member), physically allocated');
  readonly dbInUse = new Gauge('iscm_ledger_etcd_db_in_use_bytes', 'etcd database size (largest member), logically in use');
  readonly etcdMembersUp = new Gauge('iscm_ledger_etcd_members_up', 'etcd members that answered the last status call');
  readonly mqttConnected = new Gauge('iscm_ledger_mqtt_connected', '1 while connected to the broker');
  readonly mqttReconnects = new Counter('iscm_ledger_mqtt_reconnects_total', 'Reconnect attempts scheduled after the broker connection closed or could not be made');
  readonly hotBlocks = new Gauge('iscm_ledger_hot_blocks', 'Blocks whose data is still in etcd (not archived)');
  readonly forkAlarm = new Gauge('iscm_ledger_fork_alarm', '1 once fork evidence was kept (stays until restart; see /v1/evidence)');

  render(): string {
    return (
      Object.values(this)
        .filter((m): m is Metric => typeof (m as Metric)?.render === 'function')
        .map((m) => m.render())
        .join('\n') + '\n'
    );
  }
}
