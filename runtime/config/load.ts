// loadConfig(path, env): the gateway config, validated, defaults filled in,
// environment overrides applied; or a ConfigError listing every problem with
// file:line:col, key path and the fix.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { IscmError } from '../../protocol/errors.js';
import { GATEWAY_SPEC } from './gateway-spec.js';
import { fileChecks, semanticChecks } from './semantic.js';
import type { GatewayConfig } from './types.js';
import { applyEnv, formatIssue, parseYaml, toPlain, validateNode, type ConfigIssue, type ValidateContext, type VNode } from './validate.js';

/** A config that does not load: every problem found, in file order. */
export class ConfigError extends IscmError {
  readonly issues: ConfigIssue[];
  constructor(issues: ConfigIssue[]) {
    const errors = issues.filter((i) => i.severity === 'error');
    super('CONFIG_INVALID', `invalid config (${errors.length} error${errors.length === 1 ? '' : 's'}):\n${errors.map((i) => `  ${formatIssue(i)}`).join('\n')}`);
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

export interface CheckOptions {
  /** Environment for ISCM__… overrides (default: none). */
  env?: Record<string, string | undefined>;
  /** Also check referenced files and environment variables (`config check --files`). */
  files?: boolean;
}

export interface CheckResult {
  /** The typed config when there are no errors. */
  config?: GatewayConfig;
  issues: ConfigIssue[];
  /** ISCM__… variables that were applied. */
  envApplied: string[];
  /** The merged raw config (file + environment) as plain values, for `config show`. */
  raw: unknown;
}

const LINE_COL = /^(.*):(\d+):(\d+)$/;
function order(a: ConfigIssue, b: ConfigIssue): number {
  const ma = LINE_COL.exec(a.where);
  const mb = LINE_COL.exec(b.where);
  if (ma && mb) return Number(ma[2]) - Number(mb[2]) || Number(ma[3]) - Number(mb[3]);
  if (ma) return -1;
  if (mb) return 1;
  return a.where < b.where ? -1 : a.where > b.where ? 1 : 0;
}

/**
 * Validates config text from `file` (relative paths in it resolve against its
 * folder; positions name `display`, default the file). Never throws for bad input.
 */
export function checkConfigText(text: string, file: string, opts: CheckOptions = {}, display = file): CheckResult {
  const issues: ConfigIssue[] = [];
  const parsed = parseYaml(text, display);
  issues.push(...parsed.issues);
  if (parsed.issues.some((i) => i.severity === 'error')) return { issues, envApplied: [], raw: undefined };
  let root: VNode | undefined = parsed.root;
  if (root && root.k === 'scalar' && root.value === null) root = undefined; // an empty file
  const env = applyEnv(root, opts.env ?? {}, GATEWAY_SPEC, issues);
  root = env.root;
  const ctx: ValidateContext = { file, issues, whereOf: new Map() };
  const typed = validateNode(root, GATEWAY_SPEC, '', ctx) as Omit<GatewayConfig, 'source'> | undefined;
  const raw = toPlain(root);
  if (!typed || issues.some((i) => i.severity === 'error')) return { issues: issues.sort(order), envApplied: env.applied, raw };
  const config: GatewayConfig = { source: file, ...typed } as GatewayConfig;
  config.mqtt.client_id ??= config.device.id;
  const whereFor = (path: string): string => {
    for (let p = path; ; ) {
      const w = ctx.whereOf.get(`${p}#key`) ?? ctx.whereOf.get(p);
      if (w) return w;
      const cut = Math.max(p.lastIndexOf('.'), p.lastIndexOf('['));
      if (cut <= 0) return ctx.whereOf.get('') ?? display;
      p = p.slice(0, cut);
    }
  };
  const report = (path: string, message: string, severity: 'error' | 'warning' = 'error') => issues.push({ where: whereFor(path), path, message, kind: 'semantic', severity });
  semanticChecks(config, report);
  if (opts.files) fileChecks(config, opts.env ?? {}, report);
  issues.sort(order);
  return issues.some((i) => i.severity === 'error') ? { issues, envApplied: env.applied, raw } : { config, issues, envApplied: env.applied, raw };
}

/** Reads and validates a config file. Never throws for bad input (an unreadable file is an issue too). */
export function checkConfigFile(path: string, opts: CheckOptions = {}): CheckResult {
  const file = resolve(path);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a folder' : code;
    return { issues: [{ where: path, path: '', message: `cannot read the config file (${why})`, kind: 'syntax', severity: 'error' }], envApplied: [], raw: undefined };
  }
  return checkConfigText(text, file, opts, path);
}

/**
 * Loads the gateway config the light node runs with: the YAML file at `path`,
 * then ISCM__… overrides from `env` (default process.env). Throws ConfigError
 * listing every problem; warnings go to `onWarning`.
 */
export function loadConfig(path: string, env: Record<string, string | undefined> = process.env, onWarning?: (issue: ConfigIssue) => void): GatewayConfig {
  const r = checkConfigFile(path, { env });
  if (!r.config) throw new ConfigError(r.issues);
  if (onWarning) for (const i of r.issues) if (i.severity === 'warning') onWarning(i);
  return r.config;
}

/** The same from text (tests, tools). */
export function parseConfig(text: string, file = '<text>', env: Record<string, string | undefined> = {}): GatewayConfig {
  const r = checkConfigText(text, file, { env });
  if (!r.config) throw new ConfigError(r.issues);
  return r.config;
}
