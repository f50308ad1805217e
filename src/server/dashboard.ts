// The dashboard the admin port serves at `/`: a login form for a token (a tenant's or the
// operator's), sessions as HttpOnly SameSite=Strict cookies (a browser's EventSource cannot send
// an Authorization header, and tokens never go in URLs), a CSRF token for every form and every
// change the page makes, and the page's own files under a strict Content-Security-Policy. The
// page (src/server/dashboard/app.js) calls the admin API with its session like any client.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { PACKAGE_ROOT } from './config/default.ts';

const SESSION_COOKIE = 'tinyedge_session';
const LOGIN_COOKIE = 'tinyedge_login';
const SESSION_MS = 12 * 60 * 60 * 1000;
/** Sessions kept at most; the oldest goes first. */
const MAX_SESSIONS = 1000;
const MAX_FORM_BYTES = 4096;

/** Every page and file: nothing inline, nothing from elsewhere, never in a frame. */
export const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
const SECURITY_HEADERS = {
  'content-security-policy': CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

/** A logged-in browser: the token it logged in with (checked again at each use), its CSRF token. */
export interface Session {
  token: string;
  csrf: string;
  expires: number;
}

const same = (a: string, b: string): boolean => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

function cookies(req: IncomingMessage): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) out.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return out;
}

const cookie = (name: string, value: string, maxAgeSec: number): string => `${name}=${value}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${maxAgeSec}`;

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The page's files, read once: ours from the package, uPlot from its npm package. */
function assets(): Map<string, { type: string; body: Buffer }> {
  const dir = join(PACKAGE_ROOT, 'src/server/dashboard');
  const uplot = createRequire(import.meta.url).resolve('uplot/dist/uPlot.iife.min.js');
  return new Map([
    ['/dashboard/app.js', { type: 'text/javascript; charset=utf-8', body: readFileSync(join(dir, 'app.js')) }],
    ['/dashboard/app.css', { type: 'text/css; charset=utf-8', body: readFileSync(join(dir, 'app.css')) }],
    ['/dashboard/uPlot.min.js', { type: 'text/javascript; charset=utf-8', body: readFileSync(uplot) }],
    ['/dashboard/uPlot.min.css', { type: 'text/css; charset=utf-8', body: readFileSync(join(uplot, '../uPlot.min.css')) }],
  ]);
}

function page(title: string, head: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title><link rel="stylesheet" href="/dashboard/uPlot.min.css"><link rel="stylesheet" href="/dashboard/app.css">${head}</head>
<body>${body}</body></html>
`;
}

/** Sessions and the dashboard's routes; `valid(token)` says whether a token still opens the admin API. */
export class Dashboard {
  private readonly sessions = new Map<string, Session>();
  private readonly files = assets();

  constructor(private readonly valid: (token: string) => boolean) {}

  /** The session a request's cookie names, if it is live and its token still valid. */
  session(req: IncomingMessage): Session | undefined {
    const id = cookies(req).get(SESSION_COOKIE);
    if (id === undefined) return undefined;
    const s = this.sessions.get(id);
    if (s === undefined) return undefined;
    if (s.expires < Date.now() || !this.valid(s.token)) {
      this.sessions.delete(id);
      return undefined;
    }
    return s;
  }

  /** Whether a request made with a session carries its CSRF token (X-CSRF-Token). */
  static csrfOk(req: IncomingMessage, s: Session): boolean {
    const sent = req.headers['x-csrf-token'];
    return typeof sent === 'string' && same(sent, s.csrf);
  }

  /** Answers the dashboard's routes (everything not under /v1); false for a route it does not have. */
  async handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> {
    const method = req.method ?? 'GET';
    const file = this.files.get(path);
    if (file !== undefined && (method === 'GET' || method === 'HEAD')) {
      res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': file.type, 'content-length': file.body.length, 'cache-control': 'no-cache' });
      res.end(method === 'HEAD' ? undefined : file.body);
      return true;
    }
    if (path === '/' && method === 'GET') {
      const s = this.session(req);
      if (s === undefined) this.loginPage(res, '');
      else this.appPage(res, s);
      return true;
    }
    if (path === '/login' && method === 'POST') {
      await this.login(req, res);
      return true;
    }
    if (path === '/logout' && method === 'POST') {
      const form = await readForm(req);
      const id = cookies(req).get(SESSION_COOKIE);
      const s = this.session(req);
      if (s !== undefined && id !== undefined && same(form.get('csrf') ?? '', s.csrf)) this.sessions.delete(id);
      res.writeHead(303, { ...SECURITY_HEADERS, location: '/', 'set-cookie': cookie(SESSION_COOKIE, '', 0) });
      res.end();
      return true;
    }
    return false;
  }

  /** The login form, with its own CSRF token: a cookie and the same value in the form. */
  private loginPage(res: ServerResponse, problem: string): void {
    const csrf = randomBytes(24).toString('hex');
    const html = page('tinyedge: log in', '', `<main class="login"><h1>tinyedge</h1>
<form method="post" action="/login"><input type="hidden" name="csrf" value="${csrf}">
<label for="token">Token (a tenant's, or the operator's)</label>
<input id="token" name="token" type="password" autocomplete="current-password" required>
<button type="submit">Log in</button>${problem ? `<p class="problem" role="alert">${escapeHtml(problem)}</p>` : ''}</form></main>`);
    res.writeHead(problem ? 401 : 200, { ...SECURITY_HEADERS, 'content-type': 'text/html; charset=utf-8', 'set-cookie': cookie(LOGIN_COOKIE, csrf, 600) });
    res.end(html);
  }

  private appPage(res: ServerResponse, s: Session): void {
    const html = page('tinyedge dashboard', `<meta name="csrf-token" content="${s.csrf}"><script src="/dashboard/uPlot.min.js" defer></script><script src="/dashboard/app.js" defer></script>`, `
<header><h1>tinyedge</h1><label>tenant <select id="tenant"></select></label>
<form id="logout" method="post" action="/logout"><input type="hidden" name="csrf" value="${s.csrf}"><button type="submit">Log out</button></form></header>
<main>
<section class="figures" aria-label="totals"><div><span>requests</span><b id="requests">-</b></div><div><span>req/s</span><b id="rate">-</b></div>
<div><span>hit ratio</span><b id="hit">-</b></div><div><span>5xx</span><b id="errors">-</b></div><div><span>cpu guest / host</span><b id="cpu">-</b></div></section>
<section class="charts"><figure id="chart-rate"><figcaption>requests/s</figcaption></figure><figure id="chart-hit"><figcaption>hit ratio %</figcaption></figure>
<figure id="chart-vm"><figcaption>VM latency (p50, p99)</figcaption></figure><figure id="chart-errors"><figcaption>5xx/s</figcaption></figure></section>
<section class="lists"><div><h2>Top URLs</h2><ol id="top-urls"></ol></div><div><h2>Top misses</h2><ol id="top-misses"></ol></div>
<div><h2>Programs</h2><table id="programs"><thead><tr><th>program</th><th>version</th><th>loaded</th><th>load</th></tr></thead><tbody></tbody></table></div></section>
<section class="actions"><h2>Invalidate</h2>
<form id="purge" data-action="purge" data-field="url"><input type="hidden" name="csrf" value="${s.csrf}"><label>URL <input name="value" placeholder="/path?query" required></label><button>Purge</button></form>
<form id="purge-tag" data-action="purge-tag" data-field="tag"><input type="hidden" name="csrf" value="${s.csrf}"><label>tag <input name="value" placeholder="product-1" required></label><button>Purge tag</button></form>
<form id="ban" data-action="ban" data-field="expression"><input type="hidden" name="csrf" value="${s.csrf}"><label>ban <input name="value" placeholder="obj.http.content-type ~ ^image/" required></label><button>Ban</button></form>
<p id="action-result" role="status"></p></section>
<section class="log"><h2>Live log</h2>
<form id="log-filter"><label>status <select name="status"><option value="">any</option><option>2xx</option><option>3xx</option><option>4xx</option><option>5xx</option></select></label>
<label>prefix <input name="prefix" placeholder="/api/"></label>
<label>cache <select name="cache"><option value="">any</option><option>hit</option><option>fast-hit</option><option>miss</option><option>pass</option><option>stale</option><option>revalidated</option><option>synthetic</option></select></label>
<label>backend <input name="backend"></label><button>Apply</button></form>
<p id="log-dropped" role="status"></p><p id="log-sampled" role="status"></p>
<div class="table"><table id="log"><thead><tr><th>time</th><th>status</th><th>method</th><th>URL</th><th>cache</th><th>backend</th><th>total</th><th>VM</th></tr></thead><tbody></tbody></table></div></section>
</main>`);
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/html; charset=utf-8' });
    res.end(html);
  }

  /** A login: the form's CSRF token must match its cookie, the token must open the API. */
  private async login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const form = await readForm(req);
    const expected = cookies(req).get(LOGIN_COOKIE) ?? '';
    if (expected === '' || !same(form.get('csrf') ?? '', expected)) return this.loginPage(res, 'The form expired: log in again.');
    const token = form.get('token') ?? '';
    if (token === '' || !this.valid(token)) return this.loginPage(res, 'Unknown token.');
    const id = randomBytes(32).toString('hex');
    if (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!);
    this.sessions.set(id, { token, csrf: randomBytes(24).toString('hex'), expires: Date.now() + SESSION_MS });
    res.writeHead(303, { ...SECURITY_HEADERS, location: '/', 'set-cookie': [cookie(SESSION_COOKIE, id, SESSION_MS / 1000), cookie(LOGIN_COOKIE, '', 0)] });
    res.end();
  }
}

/** A small urlencoded form; a larger body is cut (the form has two short fields). */
async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  let body = '';
  for await (const chunk of req as AsyncIterable<Buffer>) {
    body += chunk.toString('utf8');
    if (body.length > MAX_FORM_BYTES) {
      req.resume();
      break;
    }
  }
  return new URLSearchParams(body.slice(0, MAX_FORM_BYTES));
}
