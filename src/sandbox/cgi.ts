// CGI/1.1 (RFC 3875) for programs that know nothing of the SDK: the request becomes
// meta-variables in the environment and the body on stdin; stdout is parsed as a CGI response.
import { SandboxError } from '../vmm/errors.ts';
import type { SandboxRequest } from './types.ts';
import { BAD_FIELD_VALUE, TOKEN } from './abi.ts';

/** Meta-variables for `req` (RFC 3875 §4.1), plus HTTP_* for the request headers. */
export function cgiEnvironment(req: SandboxRequest, scriptName: string, extra: readonly string[] = []): string[] {
  const q = req.url.indexOf('?');
  const path = q < 0 ? req.url : req.url.slice(0, q);
  const header = (name: string): string | undefined => req.headers.find(([n]) => n.toLowerCase() === name)?.[1];
  const env: Record<string, string> = {
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_PROTOCOL: 'HTTP/1.1',
    SERVER_SOFTWARE: 'tinyedge',
    REQUEST_METHOD: req.method,
    REQUEST_URI: req.url,
    SCRIPT_NAME: scriptName,
    PATH_INFO: path,
    QUERY_STRING: q < 0 ? '' : req.url.slice(q + 1),
    SERVER_NAME: req.serverName ?? 'localhost',
    SERVER_PORT: String(req.serverPort ?? 80),
    REMOTE_ADDR: req.remoteAddress ?? '127.0.0.1',
  };
  if (req.body.length > 0 || header('content-length') !== undefined) env.CONTENT_LENGTH = String(req.body.length);
  const type = header('content-type');
  if (type !== undefined) env.CONTENT_TYPE = type;
  for (const [name, value] of req.headers) {
    const lower = name.toLowerCase();
    // Content-Length/-Type have their own variables; Authorization stays out, as servers do.
    if (lower === 'content-length' || lower === 'content-type' || lower === 'authorization' || lower === 'proxy-authorization') continue;
    const key = `HTTP_${name.toUpperCase().replace(/-/g, '_')}`;
    env[key] = env[key] === undefined ? value : `${env[key]}, ${value}`;
  }
  return [...extra, ...Object.entries(env).map(([k, v]) => `${k}=${v}`)];
}

export interface CgiResponse {
  status: number;
  headers: Array<[string, string]>;
  body: Buffer;
}

function badOutput(message: string): SandboxError {
  return new SandboxError('bad-response', `CGI program: ${message}`);
}

/** Parses a CGI response (RFC 3875 §6): header lines, a blank line, the body. */
export function parseCgiOutput(output: Buffer): CgiResponse {
  let end = -1;
  let sep = 0;
  for (let i = 0; i < output.length; i++) {
    if (output[i] === 0x0a && output[i + 1] === 0x0a) { end = i; sep = 2; break; }
    if (output[i] === 0x0d && output[i + 1] === 0x0a && output[i + 2] === 0x0d && output[i + 3] === 0x0a) { end = i; sep = 4; break; }
  }
  if (end < 0) throw badOutput(output.length === 0 ? 'wrote no output' : 'output has no blank line after the headers');
  const headers: Array<[string, string]> = [];
  let status = 200;
  let sawStatus = false;
  let sawType = false;
  let location: string | undefined;
  for (const line of output.subarray(0, end).toString('latin1').split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw badOutput(`malformed header line ${JSON.stringify(line.slice(0, 80))}`);
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (!TOKEN.test(name) || BAD_FIELD_VALUE.test(value)) throw badOutput(`invalid header ${JSON.stringify(name)}`);
    const lower = name.toLowerCase();
    if (lower === 'status') {
      const m = /^(\d{3})(?:\s.*)?$/.exec(value);
      if (!m || Number(m[1]) < 200 || Number(m[1]) > 599) throw badOutput(`invalid Status ${JSON.stringify(value)}`);
      status = Number(m[1]);
      sawStatus = true;
      continue;
    }
    if (lower === 'content-type') sawType = true;
    if (lower === 'location') location = value;
    headers.push([name, value]);
  }
  // A local redirect (RFC 3875 §6.2.2) is not supported; a client redirect defaults to 302.
  if (location !== undefined && !sawStatus) status = 302;
  if (!sawType && location === undefined) throw badOutput('response has neither Content-Type nor Location');
  return { status, headers, body: Buffer.from(output.subarray(end + sep)) };
}
