// The dashboard in a real headless Chromium (Debian's `chromium`, driven by playwright-core): log
// in to the demo with its operator token, watch the request counter move while the test sends
// traffic, find the test's request in the live log, purge a URL from the form and see the next
// request miss; a tenant's token sees and changes nothing of another tenant. The screenshot in
// docs/observability.md is this test's (UPDATE_SCREENSHOT=1 writes docs/dashboard.png).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { type Browser, chromium, type Page } from 'playwright-core';
import { request } from 'undici';
import { buildExample } from '../../guest/build.ts';
import { defaultConfig, parseConfig } from '../../src/server/config.ts';
import { CSP } from '../../src/server/dashboard.ts';
import { type DemoOrigin, startDemoOrigin } from '../../src/server/demo-origin.ts';
import { EdgeServer } from '../../src/server/server.ts';
import { ROOT } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** The page's document, as the functions the test runs in the browser use it (tsc has no DOM types here). */
declare const document: {
  getElementById(id: string): { textContent: string | null } | null;
  querySelector(selector: string): { getAttribute(name: string): string | null } | null;
  documentElement: { scrollWidth: number; clientWidth: number };
};
const DEMO_OPERATOR = 'demo-operator-token-change-me';

function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    // As root in a container there is no user namespace for Chromium's sandbox.
    args: ['--no-sandbox', '--disable-background-networking', '--disable-dev-shm-usage', '--disable-component-update', '--no-first-run'],
  });
}

async function logIn(page: Page, adminUrl: string, token: string): Promise<void> {
  const res = await page.goto(`${adminUrl}/`);
  assert.equal(res?.headers()['content-security-policy'], CSP);
  await page.fill('#token', token);
  await Promise.all([page.waitForURL(`${adminUrl}/`), page.click('button[type=submit]')]);
  await page.waitForSelector('#tenant option', { state: 'attached' });
}

/** What the page's own fetch gets: its session cookie goes along; `csrf` adds its CSRF token. */
function pageFetch(page: Page, path: string, method = 'GET', body?: string, csrf = true): Promise<number> {
  return page.evaluate(async ({ path, method, body, csrf }) => {
    const token = document.querySelector('meta[name="csrf-token"]')?.getAttribute('content') ?? '';
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (csrf) headers['x-csrf-token'] = token;
    const r = await fetch(path, { method, body, headers });
    return r.status;
  }, { path, method, body, csrf });
}

describe('the dashboard in a browser', () => {
  let browser: Browser;
  before(async () => {
    browser = await launch();
  });
  after(() => browser?.close());

  // The demo tenant has a program: these need KVM; the two tenants below have none.
  describe('the demo', needsKvm(), () => {
    let edge: EdgeServer;
    let origin: DemoOrigin;
    const front = async (path: string): Promise<string> => {
      const r = await request(`${edge.front.url}${path}`, { headers: { host: 'localhost' } });
      await r.body.text();
      return String(r.headers['x-cache']);
    };

    before(async () => {
      buildExample('hello', join(ROOT, 'dist/demo'));
      origin = await startDemoOrigin('127.0.0.1', 0);
      const config = defaultConfig(ROOT, { TINYEDGE_PORT: '0', TINYEDGE_ADMIN_PORT: '0', TINYEDGE_DEMO_ORIGIN_PORT: new URL(origin.url).port });
      edge = await EdgeServer.start(config, { logger: pino({ level: 'silent' }) });
    });
    after(async () => {
      await edge?.close();
      await origin?.close();
    });

    test('log in with the operator token, see requests counted and logged, purge from the form', async () => {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      try {
        await logIn(page, edge.admin.url, DEMO_OPERATOR);
        assert.equal(await page.inputValue('#tenant'), 'demo');
        await page.waitForFunction(() => /^\d+$/.test(document.getElementById('requests')?.textContent ?? ''));
        const before = Number(await page.textContent('#requests'));
        for (let i = 0; i < 5; i++) await front(`/counted-${i}`);
        await page.waitForFunction((n) => Number(document.getElementById('requests')?.textContent) >= n + 5, before);

        const probe = `/hello?probe=${Math.random().toString(36).slice(2)}`;
        await front(probe);
        const row = page.locator('#log tbody tr', { hasText: probe });
        await row.waitFor();
        assert.match(await row.innerText(), /200\s+GET\s+localhost\/hello\?probe=\w+\s+miss\s+hello \(demo\/hello@\d+\)/);

        await front('/purge-me');
        assert.equal(await front('/purge-me'), 'HIT');
        await page.fill('#purge input[name=value]', '/purge-me');
        await page.click('#purge button');
        await page.waitForFunction(() => document.getElementById('action-result')?.textContent === 'purged 1 object(s): /purge-me');
        assert.equal(await front('/purge-me'), 'MISS');

        // The charts have points once two samples are in; a little more traffic, counted each
        // time, gives the screenshot a few.
        await page.waitForFunction(() => /^\d+(\.\d)?$/.test(document.getElementById('rate')?.textContent ?? ''));
        for (let round = 0; round < 3; round++) {
          const seen = Number(await page.textContent('#requests'));
          for (let i = 0; i < 10; i++) await front(i % 3 === 0 ? `/hello?round=${round}` : `/page-${i % 4}`);
          await page.waitForFunction((n) => Number(document.getElementById('requests')?.textContent) >= n + 10, seen);
        }
        await page.locator('#programs tbody tr', { hasText: 'demo/hello@' }).waitFor();
        await page.locator('#top-urls li', { hasText: '/purge-me' }).waitFor();
        mkdirSync(join(ROOT, 'build'), { recursive: true });
        const shot = join(ROOT, 'build/dashboard.png');
        await page.screenshot({ path: shot, fullPage: true });
        if (process.env.UPDATE_SCREENSHOT === '1') copyFileSync(shot, join(ROOT, 'docs/dashboard.png'));
      } finally {
        await page.close();
      }
    });

    test('every change needs the session\'s CSRF token; a wrong token or an expired form logs nobody in', async () => {
      const page = await browser.newPage();
      try {
        await logIn(page, edge.admin.url, DEMO_OPERATOR);
        assert.equal(await pageFetch(page, '/v1/tenants/demo/purge', 'POST', '{"url":"/x"}', false), 403);
        assert.equal(await pageFetch(page, '/v1/tenants/demo/purge', 'POST', '{"url":"/x"}'), 200);
        // Logged out, the cookie opens nothing.
        await Promise.all([page.waitForURL(`${edge.admin.url}/`), page.click('#logout button')]);
        assert.equal(await pageFetch(page, '/v1/tenants/demo/stats'), 401);

        const wrong = await page.goto(`${edge.admin.url}/`);
        assert.equal(wrong?.status(), 200);
        await page.fill('#token', 'not-a-token-0123456789');
        await page.click('button[type=submit]');
        await page.locator('.problem', { hasText: 'Unknown token.' }).waitFor();
        // A login form posted without the login cookie (from another site, say) is refused.
        await page.context().clearCookies();
        await page.fill('#token', DEMO_OPERATOR);
        await page.click('button[type=submit]');
        await page.locator('.problem', { hasText: 'The form expired' }).waitFor();
      } finally {
        await page.close();
      }
    });

    test('on a phone-width screen nothing scrolls sideways', async () => {
      const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
      try {
        await logIn(page, edge.admin.url, DEMO_OPERATOR);
        await page.waitForFunction(() => /^\d+$/.test(document.getElementById('requests')?.textContent ?? ''));
        const widths = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
        assert.ok(widths[0]! <= widths[1]!, `page ${widths[0]} px wide on a ${widths[1]} px screen`);
      } finally {
        await page.close();
      }
    });
  });

  describe('two tenants', () => {
    let edge: EdgeServer;
    let origin: DemoOrigin;
    before(async () => {
      origin = await startDemoOrigin('127.0.0.1', 0);
      const tenant = (name: string): string => `
  - name: ${name}
    hosts: [${name}.test]
    token: tenant-${name}-token-0123456789
    origins: [{ name: default, url: "${origin.url}" }]`;
      // A page opens two live log streams (top URLs and the log): a tenant may have one page's.
      const yaml = `server: { listen: 127.0.0.1:0, admin: 127.0.0.1:0, operatorToken: operator-token-0123456789, liveLogReadersPerTenant: 2 }\ntenants:${tenant('a')}${tenant('b')}\n`;
      edge = await EdgeServer.start(parseConfig(yaml, { file: '/tmp/tinyedge-dashboard-test.yaml' }), { logger: pino({ level: 'silent' }) });
    });
    after(async () => {
      await edge?.close();
      await origin?.close();
    });
    /** Until the server has `n` live log streams open (a page opens two). */
    const readers = async (n: number): Promise<void> => {
      while (edge.liveLog.readerCount !== n) await new Promise((r) => setTimeout(r, 10));
    };

    test("tenant a's token shows nothing of b, and b's routes answer 403", async () => {
      const r = await request(`${edge.front.url}/b-only`, { headers: { host: 'b.test' } });
      await r.body.text();
      const page = await browser.newPage();
      try {
        await logIn(page, edge.admin.url, 'tenant-a-token-0123456789');
        assert.deepEqual(await page.locator('#tenant option').allTextContents(), ['a']);
        await page.waitForFunction(() => /^\d+$/.test(document.getElementById('requests')?.textContent ?? ''));
        assert.doesNotMatch(await page.content(), /b\.test|b-only|tenant-b/);
        assert.equal(await pageFetch(page, '/v1/tenants/b/stats'), 403);
        assert.equal(await pageFetch(page, '/v1/tenants/b/log'), 403);
        assert.equal(await pageFetch(page, '/v1/tenants/b'), 403);
        assert.equal(await pageFetch(page, '/v1/tenants/b/purge', 'POST', '{"url":"/b-only"}'), 403);
        assert.equal(await pageFetch(page, '/v1/tenants/b/ban', 'POST', '{"expression":"obj.status == 200"}'), 403);
        assert.equal(await pageFetch(page, '/v1/log'), 403);
        const stats = await page.evaluate(async () => ((await (await fetch('/v1/stats')).json()) as { tenants: Array<{ tenant: string }> }).tenants.map((t) => t.tenant));
        assert.deepEqual(stats, ['a']);
        const metrics = await page.evaluate(async () => (await fetch('/v1/metrics')).text());
        assert.doesNotMatch(metrics, /tenant="b"/);
      } finally {
        await page.close();
      }
    });

    test("a busy tenant's page shows a random few of its requests a second and says how many it left out", async () => {
      await readers(0);
      const page = await browser.newPage();
      try {
        await logIn(page, edge.admin.url, 'tenant-a-token-0123456789');
        await readers(2);
        // Far more than 20 a second, for as long as it takes the page to say so (each round of 50
        // requests is more than the stream's second's worth, whatever the machine's speed).
        const note = (): Promise<string> => page.locator('#log-sampled').textContent().then((t) => t ?? '');
        const deadline = Date.now() + 60_000;
        for (let round = 0; (await note()) === ''; round++) {
          assert.ok(Date.now() < deadline, 'the page never said it shows a sample');
          await Promise.all(Array.from({ length: 50 }, async (_, i) => {
            const r = await request(`${edge.front.url}/busy-${round}-${i}`, { headers: { host: 'a.test' } });
            await r.body.text();
          }));
        }
        // The note and the rows as one turn of the page's event loop sees them (rows keep coming).
        const seen = await page.evaluate(() => ({
          note: document.getElementById('log-sampled')?.textContent ?? '',
          rows: (document.querySelector('#log tbody') as unknown as { rows: { length: number } }).rows.length,
        }));
        const m = /^Busy: at most 20 requests a second are shown, at random: ([\d,]+) of ([\d,]+) so far\.$/.exec(seen.note);
        assert.ok(m, seen.note);
        const [shown, total] = [Number(m[1]!.replaceAll(',', '')), Number(m[2]!.replaceAll(',', ''))];
        assert.ok(shown < total, `${shown} of ${total}`);
        assert.ok(seen.rows <= shown, `${seen.rows} rows, ${shown} shown`);
      } finally {
        await page.close();
      }
    });

    test('a page past the live log\'s bound on streams says so; the page already open keeps its log', async () => {
      await readers(0);
      const first = await browser.newPage();
      const second = await browser.newPage();
      try {
        await logIn(first, edge.admin.url, 'tenant-a-token-0123456789');
        await readers(2);
        await logIn(second, edge.admin.url, 'tenant-a-token-0123456789');
        await second.waitForFunction(() => /refused this page's stream: too many may be open/.test(document.getElementById('log-dropped')?.textContent ?? ''));
        assert.equal(edge.liveLog.readerCount, 2);
        assert.equal(await first.locator('#log-dropped').textContent(), '');
        const r = await request(`${edge.front.url}/seen-by-the-first`, { headers: { host: 'a.test' } });
        await r.body.text();
        await first.waitForFunction(() => (document.querySelector('#log tbody') as unknown as { textContent: string }).textContent.includes('/seen-by-the-first'));
      } finally {
        await first.close();
        await second.close();
      }
    });
  });
});
