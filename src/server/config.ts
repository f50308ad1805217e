// The server's configuration file: YAML, validated at start (and at each reload) into a fully
// typed Config, or refused with every problem at once as `<file>:<line>: <path>: <message>`.
// Steps: YAML with positions and ${ENV} interpolation (config/document.ts) → shape, types and
// defaults (config/schema.ts, zod) → rules across values (config/checks.ts). docs/config.md is
// the reference for the file format.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { ZodError } from 'zod';
import { checkConfig, formatPath } from './config/checks.ts';
import { DEFAULT_CONFIG_NAME, DEFAULT_CONFIG_YAML } from './config/default.ts';
import { readYaml, type Env, type RawProblem, type Segment } from './config/document.ts';
import { configSchema } from './config/schema.ts';
import type { Config, ConfigProblem, ServerConfig } from './config/types.ts';

export type * from './config/types.ts';
export { DEFAULT_CONFIG_YAML };

function formatProblem(file: string, p: ConfigProblem): string {
  return `${file}${p.line === undefined ? '' : `:${p.line}`}: ${p.path === '' ? '' : `${p.path}: `}${p.message}`;
}

/** A config that cannot be used; `message` lists every problem, one per line, in file order. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly file: string,
    readonly problems: ConfigProblem[],
  ) {
    super(problems.map((p) => formatProblem(file, p)).join('\n'));
  }
}

/** zod's issues as problems; unknown keys get one problem each, at the key's own line. */
function zodProblems(error: ZodError): RawProblem[] {
  const out: RawProblem[] = [];
  for (const issue of error.issues) {
    const path: Segment[] = issue.path.map((s) => (typeof s === 'symbol' ? String(s) : s));
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ path: [...path, key], message: `${issue.message}, got ${JSON.stringify(key)}` });
    } else {
      out.push({ path, message: issue.message });
    }
  }
  return out;
}

export interface ParseOptions {
  /** The file the text came from: named in messages, and relative paths resolve from its directory. */
  file: string;
  /** For `${NAME}` interpolation; defaults to `process.env`. */
  env?: Env;
}

/** Validates a config file's text; throws ConfigError listing every problem found. */
export function parseConfig(text: string, options: ParseOptions): Config {
  const file = resolve(options.file);
  const yaml = readYaml(text, options.env ?? process.env);
  const place = (p: RawProblem): ConfigProblem => {
    const line = p.line ?? yaml.lineOf(p.path);
    return { path: formatPath(p.path), message: p.message, ...(line === undefined ? {} : { line }) };
  };
  const refuse = (problems: RawProblem[]): never => {
    const placed = problems.map(place);
    // Stable sort: file order, problems without a line last.
    placed.sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity));
    throw new ConfigError(options.file, placed);
  };
  if (yaml.errors.length > 0) refuse(yaml.errors);
  // A value whose ${NAME} failed stays as written; what the schema or the checks then say about
  // that same value would only repeat the interpolation error.
  const failed = new Set(yaml.interpolationErrors.map((p) => formatPath(p.path)));
  const withInterpolation = (problems: RawProblem[]): RawProblem[] => [...yaml.interpolationErrors, ...problems.filter((p) => !failed.has(formatPath(p.path)))];
  const parsed = configSchema(dirname(file)).safeParse(yaml.data);
  if (!parsed.success) return refuse(withInterpolation(zodProblems(parsed.error)));
  const checks = checkConfig(parsed.data);
  if (checks.errors.length > 0 || failed.size > 0) refuse(withInterpolation(checks.errors));
  const warnings = [...yaml.warnings, ...checks.warnings].map((w) => formatProblem(options.file, place(w)));
  return { file, server: parsed.data.server, tenants: parsed.data.tenants, warnings };
}

/** Reads and validates a config file; an unreadable file is a ConfigError too. */
export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const why = (err as { code?: unknown }).code === 'ENOENT' ? 'no such file' : err instanceof Error ? err.message : String(err);
    throw new ConfigError(file, [{ path: '', message: `expected a readable config file, got ${why}` }]);
  }
  return parseConfig(text, { file, env });
}

/** The embedded default (DEFAULT_CONFIG_YAML), its paths resolved from `repoRoot`. */
export function defaultConfig(repoRoot: string, env: NodeJS.ProcessEnv = process.env): Config {
  return parseConfig(DEFAULT_CONFIG_YAML, { file: join(repoRoot, DEFAULT_CONFIG_NAME), env });
}

export interface ConfigDiff {
  tenantsAdded: string[];
  tenantsRemoved: string[];
  /** Tenants present in both whose settings differ in any way. */
  tenantsChanged: string[];
  /** Keys of `server` that differ (a changed `listen` or `admin` needs a restart to take effect). */
  serverChanged: Array<keyof ServerConfig>;
}

/** What a reload changes, by tenant name, for logging and for deciding what to rebuild. */
export function diffConfigs(old: Config, next: Config): ConfigDiff {
  const before = new Map(old.tenants.map((t) => [t.name, t]));
  const after = new Map(next.tenants.map((t) => [t.name, t]));
  const serverKeys = Object.keys(next.server) as Array<keyof ServerConfig>;
  return {
    tenantsAdded: [...after.keys()].filter((n) => !before.has(n)),
    tenantsRemoved: [...before.keys()].filter((n) => !after.has(n)),
    tenantsChanged: [...after].filter(([n, t]) => before.has(n) && !isDeepStrictEqual(before.get(n), t)).map(([n]) => n),
    serverChanged: serverKeys.filter((k) => !isDeepStrictEqual(old.server[k], next.server[k])),
  };
}
