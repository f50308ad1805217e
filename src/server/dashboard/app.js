// The dashboard page (served by src/server/dashboard.ts): per-tenant live charts from
// GET /v1/stats every second, top URLs and misses and the live log from the tenant's log stream
// (Server-Sent Events, each capped at so many records a second), programs with version and load
// time, and the invalidation forms. It calls the admin API with its session cookie; every change
// carries the session's CSRF token.
/* global document, window, fetch, EventSource, URLSearchParams, uPlot */
'use strict';

const csrf = document.querySelector('meta[name="csrf-token"]').getAttribute('content');
const $ = (id) => document.getElementById(id);
const POINTS = 120;
const LOG_ROWS = 200;
/**
 * The most records a second each stream asks for (the log API's max): a busy tenant's every
 * request would be tens of thousands a second, more than a page can parse and draw. Past them the
 * server sends a random few of each batch and says how many it did not.
 */
const TOP_PER_SECOND = 500;
const LOG_PER_SECOND = 20;

let tenant = '';
let previous = null;
let series = null;
let charts = [];
let topStream = null;
let logStream = null;
let topUrls = new Map();
let topMisses = new Map();

async function api(path, init) {
  const res = await fetch(path, { credentials: 'same-origin', ...init, headers: { 'x-csrf-token': csrf, ...(init && init.headers) } });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || `${res.status}`);
  return body;
}

/** The q-quantile of [upper bound, count] buckets, or null when empty. */
function quantile(buckets, q) {
  const total = buckets.reduce((n, b) => n + b[1], 0);
  if (total === 0) return null;
  const target = Math.ceil(q * total);
  let seen = 0;
  for (const [upper, c] of buckets) {
    seen += c;
    if (seen >= target) return upper;
  }
  return buckets[buckets.length - 1][0];
}

function bucketDelta(now, before) {
  const prior = new Map(before || []);
  return now.map(([u, c]) => [u, c - (prior.get(u) || 0)]).filter((b) => b[1] > 0);
}

function text(el, value) {
  el.textContent = value;
}

/** Axis labels: plain numbers, thousands as k (µs in the VM chart as ms). */
const compact = (unit) => (u, values) => values.map((v) => {
  if (v === null || v === undefined) return '';
  if (unit === 'us') return v >= 1000 ? `${+(v / 1000).toFixed(1)} ms` : `${v} µs`;
  return v >= 1000 ? `${+(v / 1000).toFixed(1)}k` : String(+v.toFixed(2));
});

function makeChart(id, labels, unit) {
  const el = $(id);
  const width = Math.max(240, el.clientWidth || 300);
  const colours = ['#2f6fdf', '#d9480f'];
  const opts = {
    width, height: 160, legend: { show: true },
    scales: { x: { time: true } },
    series: [{}, ...labels.map((label, i) => ({ label, stroke: colours[i], width: 2, spanGaps: true }))],
    axes: [{ size: 30 }, { size: 60, values: compact(unit) }],
  };
  return new uPlot(opts, [[], ...labels.map(() => [])], el);
}

function resetCharts() {
  for (const c of charts) c.destroy();
  series = { t: [], rate: [], hit: [], p50: [], p99: [], errors: [] };
  charts = [
    [makeChart('chart-rate', ['req/s']), () => [series.t, series.rate]],
    [makeChart('chart-hit', ['hit %']), () => [series.t, series.hit]],
    [makeChart('chart-vm', ['p50', 'p99'], 'us'), () => [series.t, series.p50, series.p99]],
    [makeChart('chart-errors', ['5xx/s']), () => [series.t, series.errors]],
  ];
}

function push(name, value) {
  series[name].push(value);
  if (series[name].length > POINTS) series[name].shift();
}

async function poll() {
  if (tenant === '') return;
  let all;
  try {
    all = await api('/v1/stats');
  } catch {
    return;
  }
  const s = all.tenants.find((t) => t.tenant === tenant);
  if (!s) return;
  const now = Date.now() / 1000;
  const c = s.counters;
  const lookups = (x) => x.cache.hits + x.cache.staleHits + x.cache.misses + x.cache.passes;
  text($('requests'), String(c.requests));
  text($('errors'), String(c.status5xx));
  text($('cpu'), `${(c.cpuGuestUs / 1e6).toFixed(2)} s / ${(c.cpuHostUs / 1e6).toFixed(2)} s`);
  text($('hit'), lookups(s) === 0 ? '-' : `${(((s.cache.hits + s.cache.staleHits) / lookups(s)) * 100).toFixed(1)} %`);
  if (previous !== null && previous.tenant === tenant) {
    const dt = now - previous.at;
    const d = (f) => f(s) - f(previous.s);
    const rate = d((x) => x.counters.requests) / dt;
    const looked = d(lookups);
    const vm = bucketDelta(s.buckets.vm, previous.s.buckets.vm);
    text($('rate'), rate.toFixed(1));
    push('t', now);
    push('rate', rate);
    push('hit', looked === 0 ? null : (d((x) => x.cache.hits + x.cache.staleHits) / looked) * 100);
    push('p50', quantile(vm, 0.5));
    push('p99', quantile(vm, 0.99));
    push('errors', d((x) => x.counters.status5xx) / dt);
    for (const [chart, data] of charts) chart.setData(data());
  }
  previous = { tenant, at: now, s };
}

async function loadPrograms() {
  const body = $('programs').querySelector('tbody');
  body.replaceChildren();
  const summary = await api(`/v1/tenants/${encodeURIComponent(tenant)}`);
  for (const p of summary.programs) {
    const row = document.createElement('tr');
    const loaded = p.loadedAt ? new Date(p.loadedAt).toLocaleTimeString() : '-';
    for (const v of [p.name, p.version || '-', loaded, p.loadMs === null ? '-' : `${p.loadMs} ms`]) {
      const td = document.createElement('td');
      td.textContent = v;
      row.append(td);
    }
    body.append(row);
  }
}

/** `estimated`: counts scaled up from a sample, shown as about so many. */
function renderTop(list, counts, estimated) {
  const top = [...counts].sort((a, b) => b[1] - a[1]).slice(0, 10);
  list.replaceChildren(...top.map(([url, n]) => {
    const li = document.createElement('li');
    li.textContent = `${url} (${estimated ? '≈' : ''}${Math.round(n)})`;
    return li;
  }));
}

/** Said when the server answers a stream with an error (EventSource then gives up; it retries only a lost connection). */
const STREAM_REFUSED = 'The live log refused this page\'s stream: too many may be open (other dashboards, tinyedge log). Close one and reload.';

/**
 * Follows a log stream. `onRecord(record, weight)`: weight is how many requests the record
 * stands for (more than 1 when the stream's max left some of its batch out); `onSkipped(skipped,
 * kept)` when it did.
 */
function follow(path, onRecord, onDropped, onSkipped) {
  const stream = new EventSource(path);
  let weight = 1;
  let weighted = 0;
  stream.onmessage = (e) => {
    const w = weighted > 0 ? weight : 1;
    if (weighted > 0) weighted--;
    onRecord(JSON.parse(e.data), w);
  };
  stream.addEventListener('dropped', (e) => onDropped(JSON.parse(e.data).dropped));
  stream.addEventListener('skipped', (e) => {
    const { skipped, kept } = JSON.parse(e.data);
    weight = kept > 0 ? (skipped + kept) / kept : 1;
    weighted = kept;
    onSkipped(skipped, kept);
  });
  stream.onerror = () => {
    if (stream.readyState === EventSource.CLOSED) text($('log-dropped'), STREAM_REFUSED);
  };
  return stream;
}

function startTop() {
  if (topStream) topStream.close();
  topUrls = new Map();
  topMisses = new Map();
  let pending = false;
  let estimated = false;
  topStream = follow(`/v1/tenants/${encodeURIComponent(tenant)}/log?format=sse&max=${TOP_PER_SECOND}`, (r, weight) => {
    topUrls.set(r.url, (topUrls.get(r.url) || 0) + weight);
    if (r.cache === 'miss') topMisses.set(r.url, (topMisses.get(r.url) || 0) + weight);
    if (pending) return;
    pending = true;
    window.setTimeout(() => {
      pending = false;
      renderTop($('top-urls'), topUrls, estimated);
      renderTop($('top-misses'), topMisses, estimated);
    }, 500);
  }, () => undefined, () => {
    estimated = true;
  });
}

const us = (n) => (n >= 1000 ? `${(n / 1000).toFixed(1)} ms` : `${n} µs`);

function startLog() {
  if (logStream) logStream.close();
  const query = new URLSearchParams({ format: 'sse', max: String(LOG_PER_SECOND) });
  for (const [k, v] of new window.FormData($('log-filter'))) if (v !== '') query.set(k, v);
  const body = $('log').querySelector('tbody');
  body.replaceChildren();
  text($('log-dropped'), '');
  text($('log-sampled'), '');
  let dropped = 0;
  // Rows, and requests the stream's max left out: the rows stand for the sum.
  let shown = 0;
  let skipped = 0;
  const sampled = () => text($('log-sampled'), `Busy: at most ${LOG_PER_SECOND} requests a second are shown, at random: ${shown.toLocaleString()} of ${(shown + skipped).toLocaleString()} so far.`);
  logStream = follow(`/v1/tenants/${encodeURIComponent(tenant)}/log?${query}`, (r) => {
    shown++;
    const row = document.createElement('tr');
    if (r.status >= 500) row.className = 'failed';
    const backend = r.backendKind === 'program' ? `${r.backend} (${r.version})` : r.backend || '';
    for (const v of [new Date(r.time).toLocaleTimeString(), String(r.status), r.method, `${r.host}${r.url}`, r.cache || '-', backend, us(r.totalUs), r.vmUs !== undefined ? us(r.vmUs) : '']) {
      const td = document.createElement('td');
      td.textContent = v;
      row.append(td);
    }
    // A record leaves out the keys it has no value for (no error, nothing logged).
    const logs = r.logs || [];
    if (r.error || logs.length > 0) row.title = [r.error, ...logs].filter(Boolean).join('\n');
    body.prepend(row);
    while (body.rows.length > LOG_ROWS) body.deleteRow(body.rows.length - 1);
    if (skipped > 0) sampled();
  }, (n) => {
    dropped += n;
    text($('log-dropped'), `${dropped} records dropped: the page could not keep up`);
  }, (n) => {
    skipped += n;
    sampled();
  });
}

function selectTenant(name) {
  tenant = name;
  previous = null;
  resetCharts();
  startTop();
  startLog();
  loadPrograms().catch((e) => text($('action-result'), e.message));
  void poll();
}

async function start() {
  const all = await api('/v1/stats');
  const select = $('tenant');
  select.replaceChildren(...all.tenants.map((t) => {
    const o = document.createElement('option');
    o.value = t.tenant;
    o.textContent = t.tenant;
    return o;
  }));
  select.addEventListener('change', () => selectTenant(select.value));
  $('log-filter').addEventListener('submit', (e) => {
    e.preventDefault();
    startLog();
  });
  for (const form of document.querySelectorAll('form[data-action]')) {
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const value = form.elements.value.value;
      try {
        const r = await api(`/v1/tenants/${encodeURIComponent(tenant)}/${form.dataset.action}`, {
          method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ [form.dataset.field]: value }),
        });
        text($('action-result'), r.banned ? `banned: ${value}` : `purged ${r.purged} object(s): ${value}`);
      } catch (err) {
        text($('action-result'), `refused: ${err.message}`);
      }
    });
  }
  if (all.tenants.length > 0) selectTenant(all.tenants[0].tenant);
  window.setInterval(() => void poll(), 1000);
}

document.addEventListener('DOMContentLoaded', () => {
  start().catch((e) => text($('action-result'), e.message));
});
