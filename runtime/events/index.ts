// Readings → GS1 EPCIS 2.0 events (docs/EVENTS.md).
export { EventBuilder, HoldFullError, geoUri, type BuiltEvent, type BuilderOptions, type BuilderSnapshot, type PendingInfo } from './builder.js';
export { ManualClock, systemClock, TimeKeeper, RELEASE_FLOOR_MS, type Clock, type ClockTrust, type NtpCheck } from './clock.js';
export { eventHashId, eventPrehash, hashIdOfPrehash, canonTime, pythonNumber, type HashOptions } from './hash.js';
export { eventRuleProblems } from './check.js';
export { canonicalGs1Uri, canonicalDigitalLink, parseEpcUri, normaliseReadId, decodeEpc96, barcodeToDigitalLink, checkDigit, type Epc } from './epc.js';
export { eventRecord, encodeEventRecord } from './record.js';
export { EPCIS_CONTEXT, EVENT_CONTEXT, ISCM_NS, ISCM_PREFIX, DOOR_STATE_TYPE } from './vocab.js';
