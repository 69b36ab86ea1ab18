// MQTT topics (ARCHITECTURE §4.3). The prefix is configurable; device ids are
// restricted (record.ts DEVICE_ID_RE) so they are always one safe topic level.
import { astr, ValidationError } from './errors.js';
import { assertDeviceId } from './record.js';

export const DEFAULT_PREFIX = 'iscm/v1';

function prefix(p: string): string {
  astr(p, 'mqtt.prefix', /^[^#+\u0000]+$/, 'a topic prefix without wildcards');
  if (p.startsWith('/') || p.endsWith('/')) throw new ValidationError('mqtt.prefix', 'must not start or end with "/"');
  return p;
}

export const topics = {
  batch: (p: string, deviceId: string) => `${prefix(p)}/dev/${assertDeviceId(deviceId)}/batch`,
  receipt: (p: string, deviceId: string) => `${prefix(p)}/dev/${assertDeviceId(deviceId)}/receipt`,
  status: (p: string, deviceId: string) => `${prefix(p)}/dev/${assertDeviceId(deviceId)}/status`,
  head: (p: string) => `${prefix(p)}/ledger/head`,
  /** MQTT 5 shared subscription spreading batches over the ledger processes (§5). */
  sharedBatches: (p: string, group = 'ledger') => `$share/${group}/${prefix(p)}/dev/+/batch`,
  /** Every device's batches, without sharing (MQTT 3.1.1 brokers: one ledger process). */
  allBatches: (p: string) => `${prefix(p)}/dev/+/batch`,
  /** The device id of a `{p}/dev/{id}/{kind}` topic, or undefined. */
  deviceOf(p: string, topic: string, kind: 'batch' | 'receipt' | 'status'): string | undefined {
    const head = `${prefix(p)}/dev/`;
    if (!topic.startsWith(head) || !topic.endsWith(`/${kind}`)) return undefined;
    const id = topic.slice(head.length, topic.length - kind.length - 1);
    return /^[a-z0-9][a-z0-9_-]{0,63}$/.test(id) ? id : undefined;
  },
};
