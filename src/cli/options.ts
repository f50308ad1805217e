// The command line's option parsers, in one place. Commander calls each one as it reads the
// option's value, so a bad value is a usage error like any other (an unknown option, a missing
// argument): one line, `error: option '--x <v>' argument 'y' is invalid. <why>`, exit status 2,
// reported before the subcommand's module is even loaded. This module must stay cheap to import.
import { type Command, InvalidArgumentError } from 'commander';
import { parseDuration, parseGuestMemory, parseSize } from '../server/config/values.ts';

/** Exit status of a command line that is wrong (`tinyedge run` keeps 124/125 for its program). */
export const EXIT_USAGE = 2;

export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer.');
  return n;
}

/** A TCP port; 0 asks the system for a free one. */
export function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('expected a port, 0–65535.');
  return n;
}

/** A repeatable option: each use adds one value. */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** A repeatable `KEY=VALUE` (`--env`). */
export function keyValue(value: string, previous: string[]): string[] {
  if (!value.includes('=')) throw new InvalidArgumentError('expected KEY=VALUE.');
  return [...previous, value];
}

/** A repeatable request header, `Name: value` (`--header`); the name must be an HTTP token. */
export function header(value: string, previous: Array<[string, string]>): Array<[string, string]> {
  const colon = value.indexOf(':');
  const name = colon < 0 ? '' : value.slice(0, colon).trim();
  const fieldValue = value.slice(colon + 1).trim();
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) throw new InvalidArgumentError('expected NAME:VALUE, e.g. "Accept: text/html".');
  // eslint-disable-next-line no-control-regex -- control characters are what this pattern is about
  if (/[\0-\x08\x0a-\x1f\x7f]/.test(fieldValue)) throw new InvalidArgumentError('a header value cannot hold control characters.');
  return [...previous, [name, fieldValue]];
}

/** A byte size, as the config file takes it (one parser): `512KiB`, `256MiB`, `1GiB`, or bytes. */
export function size(value: string): number {
  const r = parseSize(value, true);
  if (!r.ok) throw new InvalidArgumentError(`expected ${r.expected}${r.detail ? `; ${r.detail}` : ''}.`);
  return r.value;
}

/** A duration, as the config file takes it (one parser): `500ms`, `10s`, `2m`, or milliseconds; 0 allowed. */
export function duration(value: string): number {
  const r = parseDuration(/^\d+$/.test(value) ? Number(value) : value, false);
  if (!r.ok) throw new InvalidArgumentError(`expected ${r.expected}.`);
  return r.value;
}

/** A duration above zero (`--health-interval`). */
export function positiveDuration(value: string): number {
  const ms = duration(value);
  if (ms === 0) throw new InvalidArgumentError('expected a duration above 0, e.g. 500ms or 5s.');
  return ms;
}

/**
 * Guest memory (`--memory`), as the config's `memory`: a size, an even number of MiB from 10 MiB.
 * A bare number is bytes; `--memory 64` meant MiB before, so a number too small to be guest
 * memory says what it means now.
 */
export function guestMemory(value: string): number {
  const r = parseGuestMemory(value);
  if (r.ok) return r.value;
  const n = /^\s*(\d+)\s*$/.exec(value)?.[1];
  const bare = n !== undefined && parseGuestMemory(`${n}MiB`).ok ? ` A number without a unit is bytes: for ${n} MiB write ${n}MiB.` : '';
  throw new InvalidArgumentError(`expected ${r.expected}${r.detail ? `; ${r.detail}` : ''}.${bare}`);
}

export interface ListenAddress {
  host: string;
  port: number;
}

/** `HOST:PORT`, `:PORT` or `PORT` (host defaults to 127.0.0.1); IPv6 as `[::1]:8080`. */
export function listenAddress(value: string): ListenAddress {
  const m = /^(?:(?:\[([^\]]+)\]|([^:[\]]*)):)?(\d+)$/.exec(value.trim());
  const n = m === null ? NaN : Number(m[3]);
  if (m === null || n > 65535) throw new InvalidArgumentError('expected HOST:PORT, e.g. 127.0.0.1:8080.');
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port: n };
}

/** An http:// URL with a host and nothing but an optional port after it; returns its origin. */
export function originUrl(value: string): string {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new InvalidArgumentError('expected http://HOST:PORT.');
  }
  if (u.protocol !== 'http:') throw new InvalidArgumentError('only http:// origins are supported.');
  if ((u.pathname !== '/' && u.pathname !== '') || u.search !== '' || u.username !== '') {
    throw new InvalidArgumentError('expected http://HOST:PORT without a path.');
  }
  return u.origin;
}

/** A Host header value: a host name, optionally with `:PORT`. */
export function hostHeader(value: string): string {
  if (!/^[A-Za-z0-9.\-[\]:]+$/.test(value)) throw new InvalidArgumentError('expected a host name, optionally with :PORT.');
  return value;
}

/** A request's path and query (`--warmup-path`). */
export function requestPath(value: string): string {
  if (!/^\/[^\s#]*$/.test(value)) throw new InvalidArgumentError('expected a path starting with /, e.g. /hello?x=1.');
  return value;
}

/** A program lifecycle (`--lifecycle`): `ephemeral` or `persistent`. */
export function lifecycle(value: string): 'ephemeral' | 'persistent' {
  if (value !== 'ephemeral' && value !== 'persistent') throw new InvalidArgumentError('expected ephemeral or persistent.');
  return value;
}

/** The options of a subcommand that loads one tenant program (`dev`, `bench`), parsed. */
export interface ProgramCliOptions {
  cgi?: boolean;
  lifecycle?: 'ephemeral' | 'persistent';
  resetAfterRequests?: number;
  resetAboveDirty?: number;
  warmup?: number;
  warmupPath?: string;
  /** Guest memory in bytes. */
  memory: number;
  timeout: number;
  env: string[];
  allowRead: string[];
  executableMemory?: boolean;
}

export function addProgramOptions(cmd: Command): Command {
  return cmd
    .option('--cgi', 'CGI mode: the program knows nothing of the SDK (RFC 3875)')
    .option('--memory <size>', 'guest memory, e.g. 64MiB (a bare number is bytes)', guestMemory, guestMemory('64MiB'))
    .option('--timeout <ms>', 'time limit per request in milliseconds', positiveInt, 1000)
    .option('--env <KEY=VALUE>', 'environment variable for the program (repeatable)', keyValue, [])
    .option('--allow-read <dir>', 'directory whose files the program may read (repeatable)', collect, [])
    .option('--executable-memory', 'let the program map executable memory beyond its own code (JITs)')
    .option('--lifecycle <kind>', 'ephemeral (reset after every request) or persistent (state kept between requests)', lifecycle)
    .option('--reset-after-requests <n>', 'persistent: reset after this many requests', positiveInt)
    .option('--reset-above-dirty <size>', 'persistent: reset once this much memory was dirtied since the last reset', size)
    .option('--warmup <requests>', 'synthetic requests the program answers before its snapshot is taken', positiveInt)
    .option('--warmup-path <path>', 'path (and query) of the warm-up requests', requestPath, '/')
    .hook('preAction', (command) => {
      // The reset bounds mean something only for a persistent program.
      const opts = command.opts<ProgramCliOptions>();
      if (command.getOptionValueSource('warmupPath') === 'cli' && opts.warmup === undefined) command.error('error: --warmup-path needs --warmup N', { exitCode: EXIT_USAGE });
      for (const [flag, set] of [['--reset-after-requests', opts.resetAfterRequests], ['--reset-above-dirty', opts.resetAboveDirty]] as const) {
        if (set !== undefined && opts.lifecycle !== 'persistent') command.error(`error: ${flag} needs --lifecycle persistent (an ephemeral program is reset after every request)`, { exitCode: EXIT_USAGE });
      }
    });
}
