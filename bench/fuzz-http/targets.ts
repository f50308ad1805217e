// What the HTTP fuzzer attacks: `tinyedge serve` (a tenant with an origin route, cached, and a
// program route), `tinyedge proxy` and `tinyedge dev`, each a real child process on loopback, and
// the echo origin behind serve and proxy. Every answer names the target it was for (X-Echo-Url and
// the body) and the request's X-Follow field (X-Echo-Follow), whichever of origin or program made it. The origin also counts requests its own
// strict parser refused: a request tinyedge forwarded malformed.
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exceptionLines } from './judge.ts';

export type TargetName = 'serve' | 'proxy' | 'dev';
export const TARGET_NAMES: readonly TargetName[] = ['serve', 'proxy', 'dev'];

/** The Host the targets serve (serve's tenant is matched by it). */
export const FUZZ_HOST = 'fuzz.test';
/** The cache quota of serve's tenant and of proxy: what the cache may legitimately grow to. */
export const CACHE_MEMORY = '8MiB';

/** A request target as the echo origin and test/guests/http_echo.c write it back. */
export function escapeTarget(target: string): string {
  let out = '';
  for (let i = 0; i < target.length; i++) {
    const c = target.charCodeAt(i) & 0xff;
    out += c > 0x20 && c < 0x7f && c !== 0x5c ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/** The body every echo answer to a GET of `target` has. */
export const echoBody = (target: string): string => `echo ${escapeTarget(target)}\n`;

export interface EchoOrigin {
  readonly url: string;
  /** Requests the origin's parser refused (tinyedge forwarded them malformed), with their error. */
  readonly refused: string[];
  requests(): number;
  close(): Promise<void>;
}

/** Starts the echo origin: every answer is cacheable for five minutes. */
export async function startEchoOrigin(): Promise<EchoOrigin> {
  let requests = 0;
  const refused: string[] = [];
  // Room for what the front accepts (16 KiB of fields, an 8 KiB target) plus what tinyedge adds.
  const server = createServer({ maxHeaderSize: 64 * 1024 }, (req: IncomingMessage, res: ServerResponse) => {
    requests++;
    req.resume();
    req.on('end', () => {
      const echoed = escapeTarget(req.url ?? '');
      const follow = req.headers['x-follow'];
      res.writeHead(200, {
        'content-type': 'text/plain', 'cache-control': 'max-age=300', 'x-echo-url': echoed, 'content-length': Buffer.byteLength(`echo ${echoed}\n`),
        ...(typeof follow === 'string' ? { 'x-echo-follow': escapeTarget(follow) } : {}),
      });
      res.end(req.method === 'HEAD' ? undefined : `echo ${echoed}\n`);
    });
  });
  server.on('clientError', (err: Error & { code?: string }, socket) => {
    // A connection tinyedge dropped, or closed inside a request body it was streaming when its
    // client went away, is not a malformed request.
    if (err.code !== 'ECONNRESET' && err.code !== 'HPE_INVALID_EOF_STATE') refused.push(`${err.code ?? 'error'}: ${err.message}`);
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('echo origin: unexpected address');
  return {
    url: `http://127.0.0.1:${address.port}`,
    refused,
    requests: () => requests,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/** A running target: its process, its port, and what it printed that it should not have. */
export interface Target {
  readonly name: TargetName;
  readonly port: number;
  readonly pid: number;
  /** Whether requests under /p go to a program (serve) and whether anything is cached (not dev). */
  readonly routes: { readonly program: boolean; readonly cache: boolean };
  /** The exit code or signal, once the process has ended. */
  exited(): string | null;
  /** Lines of its output that report an unhandled exception, since it started. */
  readonly exceptions: string[];
  /** The last lines it printed (for a report). */
  tail(): string[];
  /** Resident set size in bytes, from /proc/PID/status (0 once it has exited). */
  rssBytes(): number;
  stop(): Promise<void>;
}

const BIN = new URL('../../bin/tinyedge.js', import.meta.url).pathname;
const TAIL_LINES = 40;
const START_TIMEOUT_MS = 60_000;

/** The command line of each target, and the line that says where it listens. */
function command(name: TargetName, origin: string, program: string, workDir: string, shards: number): { args: string[]; listening: RegExp } {
  switch (name) {
    case 'serve': {
      const config = join(workDir, 'fuzz-serve.yaml');
      writeFileSync(config, [
        `server: { listen: 127.0.0.1:0, admin: 127.0.0.1:0, shards: ${shards} }`,
        'tenants:',
        '  - name: fuzz',
        `    hosts: [${FUZZ_HOST}]`,
        '    token: fuzz-token-0123456789',
        `    origins: [{ name: default, url: "${origin}" }]`,
        `    cache: { memory: ${CACHE_MEMORY} }`,
        `    programs: [{ name: echo, file: "${program}", routes: [{ prefix: /p }], concurrency: 2 }]`,
        '',
      ].join('\n'));
      return { args: ['serve', '--config', config], listening: /serving \d+ tenant\(s\) on http:\/\/127\.0\.0\.1:(\d+)/ };
    }
    case 'proxy':
      return { args: ['proxy', '--listen', '127.0.0.1:0', '--origin', origin, '--memory', CACHE_MEMORY], listening: /listening on http:\/\/127\.0\.0\.1:(\d+)/ };
    case 'dev':
      return { args: ['dev', '--port', '0', program], listening: /listening on http:\/\/127\.0\.0\.1:(\d+)/ };
  }
}

/** Starts `tinyedge <name>` and resolves once it listens. */
export async function startTarget(name: TargetName, origin: string, program: string, workDir: string, shards: number): Promise<Target> {
  const { args, listening } = command(name, origin, program, workDir, shards);
  const child: ChildProcess = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exceptions: string[] = [];
  const lines: string[] = [];
  let exit: string | null = null;
  let resolveListening: (port: number) => void = () => {};
  const listeningPort = new Promise<number>((resolve) => (resolveListening = resolve));
  const partial = { stdout: '', stderr: '' };
  const onOutput = (stream: 'stdout' | 'stderr') => (data: Buffer): void => {
    const text = partial[stream] + data.toString('utf8');
    const complete = text.split('\n');
    partial[stream] = complete.pop() as string;
    for (const line of complete) {
      lines.push(line);
      if (lines.length > TAIL_LINES) lines.shift();
      exceptions.push(...exceptionLines(line));
      const m = listening.exec(line);
      if (m) resolveListening(Number(m[1]));
    }
  };
  child.stdout?.on('data', onOutput('stdout'));
  child.stderr?.on('data', onOutput('stderr'));
  const ended = new Promise<void>((resolve) => child.once('exit', (code, signal) => {
    exit = signal ?? `exit ${code}`;
    resolve();
  }));
  const port = await Promise.race([
    listeningPort,
    ended.then(() => Promise.reject(new Error(`tinyedge ${name} ended (${exit}) before it listened:\n${lines.join('\n')}`))),
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`tinyedge ${name} did not listen within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS).unref()),
  ]);
  const pid = child.pid as number;
  return {
    name,
    port,
    pid,
    routes: { program: name === 'serve', cache: name !== 'dev' },
    exited: () => exit,
    exceptions,
    tail: () => [...lines],
    rssBytes(): number {
      if (exit !== null) return 0;
      try {
        const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
        return m ? Number(m[1]) * 1024 : 0;
      } catch {
        return 0;
      }
    },
    async stop(): Promise<void> {
      if (exit !== null) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await ended;
      clearTimeout(killer);
    },
  };
}
