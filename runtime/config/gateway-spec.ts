// The gateway config, key by key: what each key means, its type, default and
// limits. docs/CONFIG.md explains the same keys for operators; the JSON Schema
// (configs/gateway.schema.json) is generated from this description.
import { DEVICE_ID_RE } from '../../protocol/record.js';
import { READING_KINDS } from '../../protocol/reading.js';
import { MAX_BATCH_RECORDS } from '../../protocol/limits.js';
import { SIGNING_ALG } from '../../protocol/cose/algorithms.js';
import { canonicalDigitalLink, digitalLinkCheckDigitOk, parseEpcUri } from '../events/epc.js';
import { BIZ_STEPS, DISPOSITIONS, MEASUREMENT_TYPES } from '../events/vocab.js';
import type { Field, ObjectSpec, Spec, StringSpec } from './spec.js';

// ---- leaf types used in several places ----

const NAME_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
/** Sensor ids as the MCU link names them (protocol/reading.ts). */
export { SENSOR_RE as SENSOR_ID_RE } from '../../protocol/reading.js';
import { SENSOR_RE as SENSOR_ID_RE } from '../../protocol/reading.js';
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

const path = (doc: string): Field => ({ spec: { t: 'string', doc, pattern: /^[^\u0000]+$/, expect: 'a file path' }, path: true });
const str = (doc: string, extra: Partial<StringSpec> = {}): StringSpec => ({ t: 'string', doc, ...extra });
const envName = (doc: string): Field => ({ spec: str(doc, { pattern: ENV_NAME_RE, expect: 'an environment variable name like ISCM_PIN' }), secret: true });
const secretFile = (doc: string): Field => ({ ...path(doc), secret: true });
const forbidden = (hint: string): Field => ({ spec: { t: 'forbidden', hint }, secret: true });

function epcCheck(level: 'id' | 'class', schemes?: string[]) {
  return (s: string): string | undefined => {
    if (s.startsWith('urn:epc:')) {
      const e = parseEpcUri(s);
      if (!e) return 'is not a valid EPC URI (GS1 Tag Data Standard §6: the company prefix and reference must add up to the key length)';
      if (level === 'id' && e.level !== 'id') return 'names a class or pattern of objects; give one object (urn:epc:id:…)';
      if (level === 'class' && e.level === 'id') return 'names one object; a quantity needs a class (urn:epc:class:lgtin:… or urn:epc:idpat:sgtin:…)';
      if (schemes && !schemes.includes(e.scheme)) return `is an EPC of scheme ${e.scheme}; expected ${schemes.join(' or ')}`;
      return undefined;
    }
    const dl = canonicalDigitalLink(s);
    if (!dl) return 'is not an EPC URI (urn:epc:…) or a GS1 Digital Link URI with a GS1 key';
    if (!digitalLinkCheckDigitOk(dl)) return 'has a wrong GS1 check digit';
    const ai = /^https:\/\/id\.gs1\.org\/(\d+)\//.exec(dl)?.[1];
    if (level === 'class' && !(ai === '01' && !dl.includes('/21/'))) return 'is not a class-level Digital Link (…/01/<GTIN> or …/01/<GTIN>/10/<lot>)';
    if (level === 'id' && ai === '01' && !/\/(21|235)\//.test(dl)) return 'names a product class (GTIN without serial); give one object';
    if (schemes?.includes('sgln') && ai !== '414') return 'is not a location (urn:epc:id:sgln:… or …/414/<GLN>)';
    return undefined;
  };
}

const EPC_ID: StringSpec = str('An EPC pure identity URI (urn:epc:id:sscc:…, urn:epc:id:grai:…, urn:epc:id:sgtin:…, urn:epc:id:giai:…) or a GS1 Digital Link URI of one object.', {
  pattern: /^(urn:epc:id:[a-z]+:\S+|https?:\/\/\S+)$/,
  expect: 'an EPC URI like urn:epc:id:sscc:4012345.0000000001 or a GS1 Digital Link',
  check: epcCheck('id'),
});
const EPC_CLASS: StringSpec = str('An EPC class URI (urn:epc:class:lgtin:…), pattern (urn:epc:idpat:sgtin:CP.ITEM.*) or class-level Digital Link.', {
  pattern: /^(urn:epc:(class|idpat):[a-z]+:\S+|https?:\/\/\S+)$/,
  expect: 'an EPC class URI like urn:epc:class:lgtin:4012345.012345.LOT42',
  check: epcCheck('class'),
});
const SGLN: StringSpec = str('A location: SGLN EPC URI (urn:epc:id:sgln:CP.LOC.EXT, EXT 0 for none) or a GS1 Digital Link …/414/<GLN>.', {
  pattern: /^(urn:epc:id:sgln:\S+|https?:\/\/\S+)$/,
  expect: 'an SGLN like urn:epc:id:sgln:4012345.00001.0',
  check: epcCheck('id', ['sgln']),
});
const BIZ_STEP: StringSpec = str('A CBV business step (bare word such as sensor_reporting, transporting, receiving) or a URI.', {
  enum: BIZ_STEPS,
  orPattern: /^(https?|urn):\S+$/,
  expect: 'a CBV business step',
});
const DISPOSITION: StringSpec = str('A CBV disposition (bare word such as in_transit, in_progress) or a URI.', {
  enum: DISPOSITIONS,
  orPattern: /^(https?|urn):\S+$/,
  expect: 'a CBV disposition',
});
const NUMERIC_KINDS = ['temperature', 'humidity', 'shock'];

// ---- sections ----

const device: ObjectSpec = {
  t: 'object',
  doc: 'The gateway itself.',
  fields: {
    id: { required: true, spec: str('The device id: in every record, MQTT topic and ledger key.', { pattern: DEVICE_ID_RE, expect: '1..64 of a-z 0-9 _ - (starting with a letter or digit), e.g. reefer-0042' }) },
    timezone_offset: {
      default: '+00:00',
      spec: str('eventTimeZoneOffset of every event: the local time zone where the events happen.', { pattern: /^[+-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00)$/, expect: 'an offset like +01:00 or -05:00' }),
    },
  },
};

const clock: ObjectSpec = {
  t: 'object',
  doc: 'Clock sanity: when the gateway trusts its own clock, and how long it holds readings that have no trusted time.',
  fields: {
    not_before: {
      spec: str('Times before this are impossible (a board without RTC boots in 1970). Default: the build date of this release.', {
        pattern: /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$/,
        expect: 'a date like 2025-01-01 or 2025-01-01T00:00:00Z',
        check: (s) => (Number.isNaN(Date.parse(s)) ? 'is not a real date' : undefined),
        toValue: (s) => Date.parse(s),
      }),
    },
    max_held: { default: 10_000, spec: { t: 'int', min: 1, max: 1_000_000, doc: 'Most readings held in memory while no trusted time is known; beyond it the gateway stops acknowledging the firmware (back-pressure).' } },
    max_future: { default: 600_000, defaultText: '10m', spec: { t: 'duration', min: 1000, max: 86_400_000, doc: 'A reading time further ahead of the trusted clock than this is not believed (a wrong MCU RTC).' } },
    ntp_check: { default: 'auto', spec: str('How to learn whether the OS clock is NTP-synchronised: auto (systemd-timesyncd flag file, then timedatectl), file, timedatectl, off.', { enum: ['auto', 'file', 'timedatectl', 'off'] }) },
  },
};

const port: ObjectSpec = {
  t: 'object',
  doc: 'One serial port (UART or RS-485) with an MCU on it.',
  fields: {
    path: { required: true, ...path('Device path, e.g. /dev/ttyUSB0 or /dev/serial/by-id/….') },
    baud: { default: 115_200, spec: { t: 'int', enum: [1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 1000000], doc: 'Baud rate.' } },
    data_bits: { default: 8, spec: { t: 'int', enum: [7, 8], doc: 'Data bits.' } },
    parity: { default: 'none', spec: str('Parity.', { enum: ['none', 'even', 'odd'] }) },
    stop_bits: { default: 1, spec: { t: 'int', enum: [1, 2], doc: 'Stop bits.' } },
    rs485: { default: false, spec: { t: 'bool', doc: 'RS-485 half duplex (the driver toggles RTS around each send).' } },
    protocol: { default: 'iscm-link', spec: str('What speaks on the port: iscm-link (sensor firmware, docs/LINK.md) or nmea (a GPS receiver sending NMEA 0183; list its one gps sensor).', { enum: ['iscm-link', 'nmea'] }) },
    sensors: { required: true, spec: { t: 'array', min: 1, unique: true, items: str('A sensor id from `sensors`.', { pattern: SENSOR_ID_RE, expect: 'a sensor id' }), doc: 'The MCU sensors that report on this port (for nmea: the one gps sensor its fixes are reported as).' } },
  },
};

const station: ObjectSpec = {
  t: 'object',
  doc: 'Makes an RFID/barcode reader a packing or unpacking station: its reads become AggregationEvents.',
  fields: {
    action: { required: true, spec: str('pack (AggregationEvent ADD, bizStep packing) or unpack (DELETE, unpacking).', { enum: ['pack', 'unpack'] }) },
    parent: { spec: EPC_ID },
    parent_scheme: { spec: str('The parent is the read identifier of this EPC scheme (e.g. the pallet SSCC among the case SGTINs).', { enum: ['sscc', 'grai', 'giai', 'sgtin'] }) },
  },
  requireOneOf: [['parent', 'parent_scheme']],
  exclusive: [['parent', 'parent_scheme']],
};

const sensor: ObjectSpec = {
  t: 'object',
  doc: 'One sensor on an MCU, by the id the firmware gives it.',
  fields: {
    kind: { required: true, spec: str('What it measures; must match the readings it sends.', { enum: READING_KINDS }) },
    device_id: { spec: str('sensorMetadata.deviceID: the sensor as a URI (a GIAI like urn:epc:id:giai:4012345.T1 is best). Default: urn:iscm:<device id>:sensor:<sensor id>.', { pattern: /^[A-Za-z][A-Za-z0-9+.-]*:\S+$/, expect: 'a URI' }) },
    window: { spec: str('Aggregate this sensor over the named window (temperature, humidity, shock, gps). Without it every reading is its own event.', { pattern: NAME_RE, expect: 'a window name' }) },
    raw: { default: false, spec: { t: 'bool', doc: 'With a window: also emit every reading as its own event.' } },
    read_point: { spec: SGLN },
    biz_location: { spec: SGLN },
    biz_step: { spec: BIZ_STEP },
    disposition: { spec: DISPOSITION },
    station: { spec: station },
    alarm_type: { default: 'Dimensionless', spec: str('Firmware alarms (kind alarm): the measurement type they are about.', { enum: MEASUREMENT_TYPES }) },
    error_codes: { default: [], spec: { t: 'array', unique: true, items: str('An alarm code.', { maxLength: 64 }), doc: 'Firmware alarm codes that mean a sensor fault (ERROR_CONDITION) rather than an alarm (ALARM_CONDITION).' } },
  },
};

const window: ObjectSpec = {
  t: 'object',
  doc: 'An aggregation window: min/max/mean/count per sensor over aligned periods.',
  fields: {
    period: { required: true, spec: { t: 'duration', min: 1000, max: 86_400_000, doc: 'Window length; windows are aligned to multiples of it since the Unix epoch (5m → :00, :05, …).' } },
    grace: { default: 2000, defaultText: '2s', spec: { t: 'duration', min: 0, max: 600_000, doc: 'How long after its end a window waits for late readings before it closes.' } },
    decimals: { default: 2, spec: { t: 'int', min: 0, max: 6, doc: 'Decimal places of the mean.' } },
  },
};

const rule: ObjectSpec = {
  t: 'object',
  doc: 'A threshold rule: when its condition holds for `for`, an immediate event with exception ALARM_CONDITION.',
  fields: {
    sensor: { spec: str('The sensor it watches.', { pattern: SENSOR_ID_RE, expect: 'a sensor id' }) },
    kind: { spec: str('Or: every sensor of this kind.', { enum: READING_KINDS }) },
    above: { spec: { t: 'number', doc: 'Fires when the value is above this (°C, %RH, g).' } },
    below: { spec: { t: 'number', doc: 'Fires when the value is below this.' } },
    open: { default: true, spec: { t: 'bool', doc: 'Door rules: fires when the door is open (true) or closed (false).' } },
    in_transit: { default: false, spec: { t: 'bool', doc: 'Only while in transit (see business.in_transit).' } },
    for: { default: 0, defaultText: '0s', spec: { t: 'duration', min: 0, max: 7 * 86_400_000, doc: 'How long the condition must hold without a break (measured on reading times).' } },
    biz_step: { spec: BIZ_STEP },
    disposition: { spec: DISPOSITION },
  },
  requireOneOf: [['sensor', 'kind']],
  exclusive: [['sensor', 'kind']],
};

const quantity: ObjectSpec = {
  t: 'object',
  doc: 'A quantity of a product class (quantityList).',
  fields: {
    epc_class: { required: true, spec: EPC_CLASS },
    quantity: { spec: { t: 'number', min: 0, exclusiveMin: true, doc: 'How many (or how much, with uom).' } },
    uom: { spec: str('UN/CEFACT unit of the quantity (KGM, LTR …); none for a count.', { pattern: /^[A-Z0-9]{2,3}$/, expect: 'a UN/CEFACT code like KGM' }) },
  },
};

const assets: ObjectSpec = {
  t: 'object',
  doc: 'What the gateway tracks: the objects its sensor events are about.',
  fields: {
    epcs: { default: [], spec: { t: 'array', unique: true, items: EPC_ID, doc: 'epcList: SSCCs of pallets, the GRAI of the container, SGTINs …' } },
    quantities: { default: [], spec: { t: 'array', items: quantity, doc: 'quantityList entries.' } },
  },
};

const locations: ObjectSpec = {
  t: 'object',
  doc: 'Where events happen.',
  fields: {
    read_point: { spec: SGLN },
    biz_location: { spec: SGLN },
    use_gps: { default: false, spec: { t: 'bool', doc: 'Use the last GPS fix as readPoint (geo: URI) when it is fresh; read_point otherwise.' } },
    gps_max_age: { default: 600_000, defaultText: '10m', spec: { t: 'duration', min: 1000, max: 86_400_000, doc: 'A fix older than this is not used as a position.' } },
  },
};

const business: ObjectSpec = {
  t: 'object',
  doc: 'The business context of sensor events (CBV).',
  fields: {
    biz_step: { default: 'sensor_reporting', spec: BIZ_STEP },
    disposition: { spec: DISPOSITION },
    in_transit: { default: 'auto', spec: str('Whether the assets are in transit (for rules with in_transit): always, never, or auto (disposition in_transit, or moving per GPS).', { enum: ['auto', 'always', 'never'] }) },
    moving_speed: { default: 1, spec: { t: 'number', min: 0, doc: 'auto: a GPS speed at or above this (m/s) counts as moving.' } },
  },
};

const signer: ObjectSpec = {
  t: 'object',
  doc: 'The signing key. Secrets only by reference: *_file (a file holding it) or *_env (an environment variable holding it).',
  fields: {
    driver: { required: true, spec: str('pkcs11 (hardware token, HSM, TPM) or software (passphrase-encrypted key file).', { enum: ['pkcs11', 'software'] }) },
    alg: { spec: str('Signature algorithm; default: the key type decides.', { enum: Object.keys(SIGNING_ALG) }) },
    key_file: path('software: the key file (iscm-edge keys create).'),
    passphrase_file: secretFile('software: file holding the key file passphrase.'),
    passphrase_env: envName('software: environment variable holding the passphrase.'),
    module: path('pkcs11: the PKCS#11 module (.so), e.g. /usr/lib/softhsm/libsofthsm2.so.'),
    token: { spec: str('pkcs11: token label.', { maxLength: 32 }) },
    slot: { spec: { t: 'int', min: 0, doc: 'pkcs11: slot id (instead of token).' } },
    key_label: { spec: str('pkcs11: label (CKA_LABEL) of the private key.', { maxLength: 256 }) },
    uri: {
      spec: str('pkcs11: an RFC 7512 PKCS#11 URI naming token and key (instead of token + key_label).', {
        pattern: /^pkcs11:\S*$/,
        expect: 'a PKCS#11 URI like pkcs11:token=iscm;object=device-key',
        check: (s) => (/[;?]pin-value=/.test(s) ? 'carries pin-value, a literal PIN: remove it and use signer.pin_file or signer.pin_env' : undefined),
      }),
      secret: true,
    },
    pin_file: secretFile('pkcs11: file holding the user PIN.'),
    pin_env: envName('pkcs11: environment variable holding the user PIN.'),
    pin: forbidden('a PIN must not be written in the config file: put it in a file only the iscm-edge user can read and set signer.pin_file: /etc/iscm-edge/pin, or set signer.pin_env: ISCM_PIN and provide that variable to the service'),
    passphrase: forbidden('a passphrase must not be written in the config file: put it in a file only the iscm-edge user can read and set signer.passphrase_file, or name an environment variable with signer.passphrase_env'),
  },
  exclusive: [['pin_file', 'pin_env'], ['passphrase_file', 'passphrase_env'], ['uri', 'token'], ['uri', 'slot'], ['uri', 'key_label'], ['token', 'slot']],
  when: [
    { key: 'driver', equals: 'software', require: ['key_file'], requireOneOf: [['passphrase_file', 'passphrase_env']], forbid: ['module', 'token', 'slot', 'key_label', 'uri', 'pin_file', 'pin_env'] },
    { key: 'driver', equals: 'pkcs11', require: ['module'], requireOneOf: [['uri', 'key_label'], ['pin_file', 'pin_env']], forbid: ['key_file', 'passphrase_file', 'passphrase_env'] },
  ],
};

const journal: ObjectSpec = {
  t: 'object',
  doc: 'The durable outbox on disk.',
  fields: {
    dir: { default: '/var/lib/iscm-edge/journal', ...path('Journal directory.') },
    quota: { default: 1024 ** 3, defaultText: '1GiB', spec: { t: 'size', min: 16 * 1024 ** 2, doc: 'Most disk space the journal may use; at the quota the gateway applies back-pressure.' } },
    high_water: { default: 0.8, spec: { t: 'number', min: 0.5, max: 0.99, doc: 'Fraction of the quota where back-pressure starts (the firmware is no longer acknowledged, an alarm is raised).' } },
    group_commit: { default: 2, defaultText: '2ms', spec: { t: 'duration', min: 0, max: 1000, doc: 'Longest an append waits to share its fsync with others.' } },
  },
};

const batching: ObjectSpec = {
  t: 'object',
  doc: 'When a signed batch closes (whichever comes first).',
  fields: {
    max_records: { default: 4096, spec: { t: 'int', min: 1, max: MAX_BATCH_RECORDS, doc: 'Records per batch.' } },
    max_bytes: { default: 1024 ** 2, defaultText: '1MiB', spec: { t: 'size', min: 64 * 1024, max: 15 * 1024 ** 2, doc: 'Bytes of records per batch.' } },
    max_delay: { default: 1000, defaultText: '1s', spec: { t: 'duration', min: 10, max: 600_000, doc: 'Longest a record waits for its batch.' } },
  },
};

const tls: ObjectSpec = {
  t: 'object',
  doc: 'TLS files for mqtts:// and wss://.',
  fields: {
    ca_file: path('CA certificates (PEM) the broker certificate must chain to; default: the system store.'),
    cert_file: path('Client certificate (PEM) for mutual TLS.'),
    key_file: secretFile('Client private key (PEM) for mutual TLS.'),
  },
};

const mqtt: ObjectSpec = {
  t: 'object',
  doc: 'The MQTT link to the ledger (usually the local mosquitto, bridged to the consortium broker).',
  fields: {
    url: {
      required: true,
      spec: str('Broker URL: mqtt://, mqtts://, ws:// or wss://, host and port.', {
        pattern: /^(mqtts?|wss?):\/\/[^\s/?#]+(\/\S*)?$/,
        expect: 'a URL like mqtt://127.0.0.1:1883 or mqtts://broker.example:8883',
        check: (s) => (/^[a-z]+:\/\/[^/]*@/.test(s) ? 'carries credentials: remove user:password@ and use mqtt.username with mqtt.password_file or mqtt.password_env' : undefined),
      }),
      secret: true,
    },
    prefix: { default: 'iscm/v1', spec: str('Topic prefix (ARCHITECTURE §4.3).', { pattern: /^[^#+/\s](?:[^#+\s]*[^#+/\s])?$/, expect: 'topic levels without wildcards, not starting or ending with /' }) },
    protocol: { default: 5, spec: { t: 'choice', values: [5, '3.1.1'], doc: 'MQTT protocol version: 5 or "3.1.1".' } },
    client_id: { spec: str('MQTT client id; default: the device id.', { pattern: /^[A-Za-z0-9_.:-]{1,128}$/, expect: '1..128 of A-Z a-z 0-9 _ . : -' }) },
    username: { spec: str('MQTT user name.', { maxLength: 256 }) },
    password_file: secretFile('File holding the MQTT password.'),
    password_env: envName('Environment variable holding the MQTT password.'),
    password: forbidden('a password must not be written in the config file: put it in a file only the iscm-edge user can read and set mqtt.password_file, or set mqtt.password_env'),
    tls: { spec: tls },
    window: { default: 8, spec: { t: 'int', min: 1, max: 1024, doc: 'Most unreceipted batches in flight.' } },
    resend_timeout: { default: 30_000, defaultText: '30s', spec: { t: 'duration', min: 1000, max: 3_600_000, doc: 'Resend a batch not receipted within this.' } },
    keepalive: { default: 60_000, defaultText: '60s', spec: { t: 'duration', min: 5000, max: 3_600_000, doc: 'MQTT keepalive.' } },
    reconnect_max: { default: 15_000, defaultText: '15s', spec: { t: 'duration', min: 1000, max: 600_000, doc: 'Longest wait between reconnect attempts (capped exponential backoff from 0.5 s, with jitter): a lost broker is retried at most this far apart.' } },
  },
  exclusive: [['password_file', 'password_env']],
};

const trust: ObjectSpec = {
  t: 'object',
  doc: 'Trust anchors.',
  fields: {
    ledger_keys: { required: true, spec: { t: 'array', min: 1, unique: true, items: { t: 'string', pattern: /^[^\u0000]+$/, expect: 'a file path' }, doc: 'Ledger public key files (PEM SPKI or COSE_KeySet) whose receipts the gateway accepts.' }, path: true },
  },
};

const metrics: ObjectSpec = {
  t: 'object',
  doc: 'Prometheus metrics and the ops endpoint.',
  fields: {
    enabled: { default: true, spec: { t: 'bool', doc: 'Serve metrics.' } },
    listen: { default: '127.0.0.1:9464', spec: str('host:port to listen on; loopback unless allow_remote.', { pattern: /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, expect: 'host:port like 127.0.0.1:9464 or [::1]:9464' }) },
    allow_remote: { default: false, spec: { t: 'bool', doc: 'Allow a non-loopback listen address (metrics reveal operational details).' } },
  },
};

const localInput: ObjectSpec = {
  t: 'object',
  doc: 'A local Unix socket where integrations send readings as JSON lines; each line is answered once the reading is durable.',
  fields: {
    socket: { required: true, ...path('Socket path, e.g. /run/iscm-edge/readings.sock (created at start, removed at stop).') },
    mode: { default: '0660', spec: str('Permissions of the socket file (octal).', { pattern: /^0?[0-7]{3}$/, expect: 'an octal mode like 0660' }) },
    max_clients: { default: 16, spec: { t: 'int', min: 1, max: 1024, doc: 'Connections served at once; more are refused with a message.' } },
  },
};

const state: ObjectSpec = {
  t: 'object',
  doc: 'Small state files of the node: link duplicate tables, the trusted ledger head, the device public key.',
  fields: {
    dir: { default: '/var/lib/iscm-edge/state', ...path('State directory (keep it on the same persistent disk as the journal).') },
  },
};

const logging: ObjectSpec = {
  t: 'object',
  doc: 'Logs (stderr; journald when run by systemd).',
  fields: {
    level: { default: 'info', spec: str('Least severity logged.', { enum: ['error', 'warn', 'info', 'debug'] }) },
    format: { default: 'text', spec: str('text (one line per entry) or json (one object per line).', { enum: ['text', 'json'] }) },
  },
};

export const GATEWAY_SPEC: ObjectSpec = {
  t: 'object',
  doc: 'ISCM Edge gateway configuration.',
  fields: {
    device: { required: true, spec: device },
    clock: { spec: clock },
    ports: { default: {}, spec: { t: 'map', keyPattern: NAME_RE, keyDesc: 'name (1..64 of a-z 0-9 _ -)', value: port, doc: 'Serial ports by name.' } },
    sensors: { default: {}, spec: { t: 'map', keyPattern: SENSOR_ID_RE, keyDesc: 'id (the sensor id the firmware sends)', value: sensor, doc: 'Sensors by id.' } },
    windows: { default: {}, spec: { t: 'map', keyPattern: NAME_RE, keyDesc: 'name (1..64 of a-z 0-9 _ -)', value: window, doc: 'Aggregation windows by name.' } },
    rules: { default: {}, spec: { t: 'map', keyPattern: NAME_RE, keyDesc: 'name (1..64 of a-z 0-9 _ -)', value: rule, doc: 'Threshold rules by name.' } },
    assets: { spec: assets },
    locations: { spec: locations },
    business: { spec: business },
    signer: { required: true, spec: signer },
    journal: { spec: journal },
    batching: { spec: batching },
    mqtt: { required: true, spec: mqtt },
    trust: { required: true, spec: trust },
    metrics: { spec: metrics },
    logging: { spec: logging },
    local_input: { spec: localInput },
    state: { spec: state },
  },
};

export { NUMERIC_KINDS };
export type { Spec };
