// `tinyedge replay BUNDLE --program FILE` (or `--from URL`, the bundle's admin API address):
// reruns a failed program call from its failure bundle (server/failure-bundles.ts), in this process, on a fresh instance of the same program file
// loaded with the bundle's settings; the host's answers (clocks, random bytes, host calls) come
// from the bundle, nothing reaches an origin or a store. Exit status: 1 when the replay shows the
// recorded failure (same class and detail), 3 when it does something else (answers, fails
// otherwise, or diverges from the recorded answers), 2 when it cannot run (a bad bundle, another
// program file).
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { Journal, Kvm, KvmError, Program, ProgramError, ReplayDiverged, replayHostCalls, SandboxError } from '../sandbox/index.ts';
import { BundleError, MAX_BUNDLE_FILE_BYTES, parseBundle } from '../server/bundle-read.ts';
import type { FailureBundle } from '../server/failure-bundles.ts';
import { AdminCallError, adminGet } from './admin-client.ts';
import { EXIT_USAGE } from './options.ts';
import { readProgramFile } from './program-options.ts';

export interface ReplayOptions {
  program: string;
  trace?: boolean;
  /** The bundle's URL on the admin API (GET /v1/tenants/{tenant}/failures/{id}), instead of a file. */
  from?: string;
  token?: string;
}

const EXIT_REPRODUCED = 1;
const EXIT_DIFFERENT = 3;

/** Reads and checks the bundle file, its size bounded before it is read. */
function readBundle(path: string): FailureBundle {
  let size: number;
  try {
    size = statSync(path).size;
  } catch (err) {
    throw new BundleError(`cannot read ${path}: ${(err as Error).message}`);
  }
  if (size > MAX_BUNDLE_FILE_BYTES) throw new BundleError(`${path} is ${size} bytes, larger than ${MAX_BUNDLE_FILE_BYTES}: not a failure bundle`);
  return parseBundle(readFileSync(path, 'utf8'), path);
}

/** Fetches the bundle at `url` from the admin API with the token, reading at most MAX_BUNDLE_FILE_BYTES. */
async function fetchBundle(url: string, token: string | undefined): Promise<FailureBundle> {
  if (token === undefined || token === '') throw new BundleError('no token for --from: set TINYEDGE_TOKEN or pass --token (the tenant\'s token, or the operator\'s)');
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    throw new BundleError(`--from ${JSON.stringify(url.slice(0, 200))} is not a URL`);
  }
  if (target.protocol !== 'http:' && target.protocol !== 'https:') throw new BundleError(`--from needs an http or https URL, got ${target.protocol}`);
  let res: Response;
  try {
    res = await adminGet(target.origin, token, `${target.pathname}${target.search}`);
  } catch (err) {
    if (err instanceof AdminCallError) throw new BundleError(err.message);
    throw err;
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.length;
    if (size > MAX_BUNDLE_FILE_BYTES) {
      await res.body?.cancel();
      throw new BundleError(`${url} answered more than ${MAX_BUNDLE_FILE_BYTES} bytes: not a failure bundle`);
    }
    chunks.push(chunk);
  }
  return parseBundle(Buffer.concat(chunks).toString('utf8'), url);
}

/** What the bundle says about itself, in a few lines. */
function describe(b: FailureBundle): string[] {
  const steps = b.answers === null ? 'no recorded answers' : `${b.answers.steps.length} recorded answers${b.answers.truncated ? ` (truncated: the call took ${b.answers.stepsSeen})` : ''}`;
  const lines = [
    `bundle ${b.id}: tenant ${b.tenant}, program ${b.program} (${b.programVersion}), shard ${b.shard}, ${b.time}`,
    `request: ${b.request.method} ${b.request.url} (${b.request.phase}), ${steps}`,
  ];
  if (b.persistent) lines.push('note: a persistent program: state from earlier requests is not in the bundle; the replay runs on a fresh instance');
  if (b.request.bodyTruncated) lines.push(`note: the request body was cut to ${Buffer.from(b.request.body, 'base64').length} of its ${b.request.bodyBytes} bytes`);
  lines.push(`recorded: ${b.error.kind}: ${b.error.message}`);
  return lines;
}

/** Replays the bundle at `bundlePath` (or `opts.from`) against `opts.program`; returns the exit status. */
export async function replay(bundlePath: string | undefined, opts: ReplayOptions): Promise<number> {
  const out = (line: string): void => void process.stdout.write(`${line}\n`);
  let bundle: FailureBundle;
  let elf: Buffer;
  try {
    if ((bundlePath === undefined) === (opts.from === undefined)) throw new BundleError('give a bundle file or --from URL (one of them)');
    bundle = opts.from !== undefined ? await fetchBundle(opts.from, opts.token ?? process.env.TINYEDGE_TOKEN) : readBundle(bundlePath!);
    elf = readProgramFile(opts.program);
  } catch (err) {
    if (!(err instanceof BundleError) && !(err instanceof ProgramError)) throw err;
    process.stderr.write(`tinyedge replay: ${err.message}\n`);
    return EXIT_USAGE;
  }
  const sha256 = createHash('sha256').update(elf).digest('hex');
  if (sha256 !== bundle.programSha256) {
    process.stderr.write(`tinyedge replay: ${opts.program} is not the program that failed: its SHA-256 is ${sha256}, the bundle's program (${bundle.programVersion}) has ${bundle.programSha256}\n`);
    return EXIT_USAGE;
  }
  for (const line of describe(bundle)) out(line);

  const kvm = new Kvm();
  const trace = opts.trace === true ? (line: string): void => void process.stderr.write(`${line}\n`) : undefined;
  let program: Program;
  try {
    program = new Program(kvm, elf, { ...bundle.settings, trace });
  } catch (err) {
    if (!(err instanceof SandboxError) && !(err instanceof ProgramError) && !(err instanceof KvmError)) throw err;
    out(`replayed: the program failed to load: ${err.message}`);
    kvm.close();
    return EXIT_DIFFERENT;
  }
  const instance = program.instance();
  const answers = bundle.answers ?? { steps: [], truncated: true, stepsSeen: 0 };
  const journal = new Journal({ steps: answers.steps, truncated: answers.truncated });
  instance.replayFrom(journal);
  const { request } = bundle;
  try {
    const result = await instance.call(
      { method: request.method, url: request.url, headers: request.headers, body: Buffer.from(request.body, 'base64') },
      {
        phase: request.phase,
        response: request.response,
        host: replayHostCalls(journal),
        random: answers.random === undefined ? undefined : Buffer.from(answers.random, 'base64'),
      },
    );
    out(`replayed: the program answered ${result.status} (${result.body.length} bytes): the recorded failure did not happen`);
    return EXIT_DIFFERENT;
  } catch (err) {
    if (err instanceof ReplayDiverged) {
      out(`replayed: ${err.message}`);
      return EXIT_DIFFERENT;
    }
    if (!(err instanceof SandboxError)) throw err;
    out(`replayed: ${err.kind}: ${err.message}`);
    const same = err.kind === bundle.error.kind && err.message === bundle.error.message;
    out(same ? 'the replay shows the recorded failure' : 'the replay failed otherwise than the recorded call');
    return same ? EXIT_REPRODUCED : EXIT_DIFFERENT;
  } finally {
    instance.close();
    program.close();
    kvm.close();
  }
}
