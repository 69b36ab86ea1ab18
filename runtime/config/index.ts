// The gateway config (docs/CONFIG.md): loadConfig(path, env) → GatewayConfig.
export { loadConfig, parseConfig, checkConfigFile, checkConfigText, ConfigError, type CheckOptions, type CheckResult } from './load.js';
export type { GatewayConfig, EventsConfig, SensorConfig, WindowConfig, RuleConfig, PortConfig, SignerConfig, StationConfig, QuantityConfig } from './types.js';
export { formatIssue, envNameOf, ENV_PREFIX, type ConfigIssue } from './validate.js';
export { gatewayJsonSchema, gatewayJsonSchemaText } from './json-schema.js';
export { GATEWAY_SPEC } from './gateway-spec.js';
export { keyPaths, parseDuration, parseSize } from './spec.js';
