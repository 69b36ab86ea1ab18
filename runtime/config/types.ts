// The typed gateway config that loadConfig() returns: the file's keys as they
// are (snake_case, one to one with docs/CONFIG.md and the ISCM__… environment
// overrides), defaults filled in, durations in ms, sizes in bytes, relative
// paths resolved against the config file's folder.
import type { ReadingKind } from '../../protocol/reading.js';
import type { SigningAlgName } from '../../protocol/cose/algorithms.js';

export interface PortConfig {
  path: string;
  baud: number;
  data_bits: 7 | 8;
  parity: 'none' | 'even' | 'odd';
  stop_bits: 1 | 2;
  rs485: boolean;
  protocol: 'iscm-link' | 'nmea';
  sensors: string[];
}

export interface StationConfig {
  action: 'pack' | 'unpack';
  parent?: string;
  parent_scheme?: 'sscc' | 'grai' | 'giai' | 'sgtin';
}

export interface SensorConfig {
  kind: ReadingKind;
  device_id?: string;
  window?: string;
  raw: boolean;
  read_point?: string;
  biz_location?: string;
  biz_step?: string;
  disposition?: string;
  station?: StationConfig;
  alarm_type: string;
  error_codes: string[];
}

export interface WindowConfig {
  /** ms */
  period: number;
  /** ms */
  grace: number;
  decimals: number;
}

export interface RuleConfig {
  sensor?: string;
  kind?: ReadingKind;
  above?: number;
  below?: number;
  open: boolean;
  in_transit: boolean;
  /** ms */
  for: number;
  biz_step?: string;
  disposition?: string;
}

export interface QuantityConfig {
  epc_class: string;
  quantity?: number;
  uom?: string;
}

export interface SignerConfig {
  driver: 'pkcs11' | 'software';
  alg?: SigningAlgName;
  key_file?: string;
  passphrase_file?: string;
  passphrase_env?: string;
  module?: string;
  token?: string;
  slot?: number;
  key_label?: string;
  uri?: string;
  pin_file?: string;
  pin_env?: string;
}

export interface GatewayConfig {
  /** The file it came from (absolute path), or "<text>". */
  source: string;
  device: { id: string; timezone_offset: string };
  clock: {
    /** ms since the epoch; undefined: the build date of this release. */
    not_before?: number;
    max_held: number;
    /** ms */
    max_future: number;
    ntp_check: 'auto' | 'file' | 'timedatectl' | 'off';
  };
  ports: Record<string, PortConfig>;
  sensors: Record<string, SensorConfig>;
  windows: Record<string, WindowConfig>;
  rules: Record<string, RuleConfig>;
  assets: { epcs: string[]; quantities: QuantityConfig[] };
  locations: { read_point?: string; biz_location?: string; use_gps: boolean; /** ms */ gps_max_age: number };
  business: { biz_step: string; disposition?: string; in_transit: 'auto' | 'always' | 'never'; moving_speed: number };
  signer: SignerConfig;
  journal: { dir: string; /** bytes */ quota: number; high_water: number; /** ms */ group_commit: number };
  batching: { max_records: number; /** bytes */ max_bytes: number; /** ms */ max_delay: number };
  mqtt: {
    url: string;
    prefix: string;
    protocol: 5 | '3.1.1';
    /** Default: the device id. */
    client_id: string;
    username?: string;
    password_file?: string;
    password_env?: string;
    tls?: { ca_file?: string; cert_file?: string; key_file?: string };
    window: number;
    /** ms */
    resend_timeout: number;
    /** ms */
    keepalive: number;
    /** ms */
    reconnect_max: number;
  };
  trust: { ledger_keys: string[] };
  metrics: { enabled: boolean; listen: string; allow_remote: boolean };
  logging: { level: 'error' | 'warn' | 'info' | 'debug'; format: 'text' | 'json' };
  /** Absent: no local input. */
  local_input?: { socket: string; mode: string; max_clients: number };
  state: { dir: string };
}

/** The part of the config the event builder reads. */
export type EventsConfig = Pick<GatewayConfig, 'device' | 'clock' | 'sensors' | 'windows' | 'rules' | 'assets' | 'locations' | 'business'>;
