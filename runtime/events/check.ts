// The rules of EPCIS 2.0 / CBV 2.0 that the GS1 JSON Schema does not enforce
// (../shared/vectors/epcis/README.md, "Things the schema does NOT enforce"),
// plus the invariants of the gateway's own events. The builder produces
// events that pass by construction; this is the independent check the tests
// (and a cautious light node) run on every event.
import { eventHashId } from './hash.js';

type Obj = { [k: string]: unknown };
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const UOM = /^[A-Z0-9]{2,3}$/;
const SENSOR_ATTRS = ['deviceID', 'deviceMetadata', 'rawData', 'dataProcessingMethod', 'bizRules', 'time'];

/**
 * Problems with an event beyond the JSON Schema: [] when none. `checkEventId`
 * (default true) checks an ni: eventID against the event hash; `gateway` adds
 * the gateway's own promises (every sensor report has a value, every number a uom).
 */
export function eventRuleProblems(e: Obj, opts: { checkEventId?: boolean; gateway?: boolean } = {}): string[] {
  const p: string[] = [];
  const t = (v: unknown) => (typeof v === 'string' && DATE_TIME.test(v) ? Date.parse(v) : NaN);
  const eventTime = t(e.eventTime);
  if (Number.isNaN(eventTime)) p.push('eventTime: not a date-time with a time zone');
  if (opts.checkEventId !== false && typeof e.eventID === 'string' && e.eventID.startsWith('ni:///') && e.eventID !== eventHashId(e)) p.push('eventID: is not the GS1 event hash of this event');
  for (const list of ['epcList', 'childEPCs', 'inputEPCList', 'outputEPCList'])
    if (Array.isArray(e[list]) && new Set(e[list] as unknown[]).size !== (e[list] as unknown[]).length) p.push(`${list}: lists an EPC twice`);
  const elements = Array.isArray(e.sensorElementList) ? e.sensorElementList : [];
  elements.forEach((se, i) => {
    if (!isObj(se)) return;
    const at = `sensorElementList[${i}]`;
    const meta = isObj(se.sensorMetadata) ? se.sensorMetadata : {};
    const times: [string, number][] = [];
    for (const k of ['time', 'startTime', 'endTime']) if (meta[k] !== undefined) times.push([`${at}.sensorMetadata.${k}`, t(meta[k])]);
    const mStart = t(meta.startTime);
    const mEnd = t(meta.endTime);
    if (!Number.isNaN(mStart) && !Number.isNaN(mEnd) && mStart > mEnd) p.push(`${at}.sensorMetadata: startTime is after endTime`);
    const reports = Array.isArray(se.sensorReport) ? se.sensorReport : [];
    reports.forEach((r, j) => {
      if (!isObj(r)) return;
      const rat = `${at}.sensorReport[${j}]`;
      if (r.time !== undefined) times.push([`${rat}.time`, t(r.time)]);
      if (r.microorganism !== undefined && r.chemicalSubstance !== undefined) p.push(`${rat}: both microorganism and chemicalSubstance`);
      for (const k of SENSOR_ATTRS) if (r[k] !== undefined && meta[k] !== undefined) p.push(`${rat}.${k}: also in sensorMetadata (TCR-53: an attribute is in one place only)`);
      if (r.uom !== undefined && (typeof r.uom !== 'string' || !UOM.test(r.uom))) p.push(`${rat}.uom: not a UN/CEFACT code (2-3 upper-case letters or digits)`);
      const min = r.minValue as number | undefined;
      const max = r.maxValue as number | undefined;
      const mean = r.meanValue as number | undefined;
      if (typeof min === 'number' && typeof max === 'number' && min > max) p.push(`${rat}: minValue is above maxValue`);
      if (typeof mean === 'number' && ((typeof min === 'number' && mean < min - 1e-9 * Math.abs(min) - 1e-6) || (typeof max === 'number' && mean > max + 1e-9 * Math.abs(max) + 1e-6)))
        p.push(`${rat}: meanValue is outside minValue..maxValue`);
      if (!opts.gateway) return;
      // What the gateway promises beyond that: every report carries a value, every number a unit.
      if (r.exception === undefined && r.value === undefined && r.minValue === undefined && r.maxValue === undefined && r.meanValue === undefined && r.stringValue === undefined && r.booleanValue === undefined && r.hexBinaryValue === undefined && r.uriValue === undefined)
        p.push(`${rat}: reports no value`);
      if ((r.value !== undefined || r.minValue !== undefined || r.maxValue !== undefined || r.meanValue !== undefined) && r.uom === undefined && r.type !== 'Dimensionless' && r.type !== 'Count')
        p.push(`${rat}: a numeric value without uom`);
    });
    for (const [where, ms] of times) {
      if (Number.isNaN(ms)) p.push(`${where}: not a date-time with a time zone`);
      else if (!Number.isNaN(eventTime) && ms > eventTime) p.push(`${where}: is later than eventTime (a sensor cannot report the future)`);
    }
  });
  if (e.type === 'AggregationEvent' && e.action !== 'DELETE' && e.parentID === undefined) p.push('parentID: required for AggregationEvent ADD/OBSERVE');
  return p;
}
