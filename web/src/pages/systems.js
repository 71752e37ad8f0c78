// pages/systems.js — the connected systems: a searchable, sortable table of GET /api/v1/systems
// (status, last seen, today's transactions, error rate, response times, 30-day uptime), and a
// system's own page (GET /api/v1/systems/{code}): its figures, its last 48 hours by hour, its
// failure reasons and response times today (for the roles that read statistics), its status
// history, its recent batches (operators) and its API keys (administrators).
import { useMemo, useState } from 'preact/hooks';
import { html } from '../lib/html.js';
import { fmtDateTime, fmtDec, fmtInt, fmtMs, fmtPct, t, todayVN } from '../lib/i18n.js';
import { api, get, post, qs } from '../lib/api.js';
import { can } from '../lib/access.js';
import { TimeChart } from '../lib/chart.js';
import { ErrorBox, Kpi, Resource, StatusBadge, useResource } from '../lib/ui.js';
import { onLink } from '../lib/router.js';
import { BatchTable } from './batches.js';

const STATUS_ORDER = { offline: 0, degraded: 1, never: 2, online: 3 };
const COLUMNS = [
  { key: 'code', label: 'systems.code' },
  { key: 'name', label: 'systems.name' },
  { key: 'org', label: 'systems.org' },
  { key: 'status', label: 'systems.status', sort: (s) => STATUS_ORDER[s.status] ?? 9 },
  { key: 'last_seen', label: 'systems.last_seen', sort: (s) => (s.last_seen ? Date.parse(s.last_seen) : 0) },
  { key: 'transactions_today', label: 'systems.today', num: true },
  { key: 'error_rate_today', label: 'systems.error_rate', num: true },
  { key: 'avg_response_ms_today', label: 'systems.avg', num: true },
  { key: 'p95_response_ms_today', label: 'systems.p95', num: true },
  { key: 'uptime_30d', label: 'systems.uptime', num: true },
];

function cell(s, key) {
  switch (key) {
    case 'code':
      return html`<a href=${`/systems/${encodeURIComponent(s.code)}`} onClick=${onLink}>${s.code}</a>`;
    case 'status':
      return html`<${StatusBadge} status=${s.status} />`;
    case 'last_seen':
      return fmtDateTime(s.last_seen);
    case 'transactions_today':
      return fmtInt(s.transactions_today);
    case 'error_rate_today':
    case 'uptime_30d':
      return fmtPct(s[key]);
    case 'avg_response_ms_today':
    case 'p95_response_ms_today':
      return fmtDec(s[key]);
    default:
      return s[key] || t('common.none');
  }
}

export function Systems() {
  const res = useResource(() => get('/api/v1/systems'), [], 10000);
  const [query, setQuery] = useState('');
  const [sort, setSort] = useState({ key: 'code', dir: 1 });
  const rows = useMemo(() => {
    const all = (res.data && res.data.systems) || [];
    const q = query.trim().toLowerCase();
    const col = COLUMNS.find((c) => c.key === sort.key);
    const val = col.sort || ((s) => s[col.key]);
    return all
      .filter((s) => !q || [s.code, s.name, s.org].some((v) => (v || '').toLowerCase().includes(q)))
      .sort((a, b) => {
        const x = val(a), y = val(b);
        if (x == null && y == null) return 0;
        if (x == null) return 1; // unknowns last whatever the direction
        if (y == null) return -1;
        return (typeof x === 'number' ? x - y : String(x).localeCompare(String(y))) * sort.dir;
      });
  }, [res.data, query, sort]);
  const by = (key) => setSort((s) => ({ key, dir: s.key === key ? -s.dir : 1 }));

  return html`<h1>${t('systems.heading')}</h1>
    <div class="toolbar">
      <label for="system-search">${t('systems.search')}</label>
      <input id="system-search" type="search" value=${query} onInput=${(e) => setQuery(e.currentTarget.value)} />
      <span class="muted" role="status">${t('systems.count', { n: fmtInt(rows.length) })}</span>
    </div>
    <${Resource} res=${res}>${() => html`<div class="table-wrap"><table id="systems-table">
      <thead><tr>${COLUMNS.map((c) => html`<th scope="col" class=${c.num ? 'num' : ''}
          aria-sort=${sort.key === c.key ? (sort.dir > 0 ? 'ascending' : 'descending') : 'none'}>
        <button type="button" class="sort" onClick=${() => by(c.key)} title=${t('systems.sort', { col: t(c.label) })}>
          ${t(c.label)}${sort.key === c.key ? (sort.dir > 0 ? ' ▲' : ' ▼') : ''}</button></th>`)}</tr></thead>
      <tbody>${rows.length ? rows.map((s) => html`<tr>${COLUMNS.map((c) => html`<td class=${c.num ? 'num' : ''}>${cell(s, c.key)}</td>`)}</tr>`)
        : html`<tr><td colspan=${COLUMNS.length} class="muted">${t('systems.none')}</td></tr>`}</tbody>
    </table></div>`}<//>`;
}

function Hourly({ hourly }) {
  const data = useMemo(() => ({
    x: hourly.map((h) => Math.floor(Date.parse(h.hour) / 1000)),
    count: hourly.map((h) => h.transactions),
    rate: hourly.map((h) => h.error_rate),
    total: hourly.reduce((n, h) => n + (h.transactions || 0), 0),
  }), [hourly]);
  return html`<${TimeChart} x=${data.x} summary=${t('chart.summary', { count: fmtInt(data.total) })}
    series=${[{ label: t('chart.count'), values: data.count, kind: 'count' },
              { label: t('chart.failed'), values: data.rate, kind: 'pct' }]} />`;
}

function SystemReasons({ code }) {
  const res = useResource(() => get(`/api/v1/stats/transactions?${qs({
    metrics: 'count', group_by: 'error_code', where: [`system_code:eq:${code}`, 'status:eq:failed'], from: todayVN(),
  })}`), [code], 30000);
  return html`<section class="card" aria-labelledby="sys-reasons-heading">
    <h2 id="sys-reasons-heading">${t('reasons.heading')}</h2>
    <${Resource} res=${res}>${(d) => {
      const rows = (d.rows || []).slice().sort((a, b) => b[1] - a[1]);
      if (!rows.length) return html`<p class="muted">${t('reasons.none')}</p>`;
      return html`<table><thead><tr><th scope="col">${t('reasons.code')}</th><th scope="col" class="num">${t('reasons.count')}</th></tr></thead>
        <tbody>${rows.map((r) => html`<tr><td>${r[0] ?? t('common.none')}</td><td class="num">${fmtInt(r[1])}</td></tr>`)}</tbody></table>`;
    }}<//>
  </section>`;
}

/* Today's response-time distribution of the system (statistics roles). */
function Latency({ code }) {
  const metrics = ['min', 'avg', 'p50', 'p95', 'p99', 'max'];
  const res = useResource(() => get(`/api/v1/stats/transactions?${qs({
    metrics: metrics.map((m) => `${m}:response_ms`).join(','), where: `system_code:eq:${code}`, from: todayVN(),
  })}`), [code], 30000);
  return html`<section class="card" aria-labelledby="latency-heading">
    <h2 id="latency-heading">${t('system.latency')}</h2>
    <${Resource} res=${res}>${(d) => {
      const row = (d.rows || [])[0] || [];
      return html`<div class="table-wrap"><table id="latency-table"><thead><tr>${metrics.map((m) => html`<th scope="col" class="num">${t(`latency.${m}`)}</th>`)}</tr></thead>
        <tbody><tr>${metrics.map((m, i) => html`<td class="num">${fmtInt(row[i])}</td>`)}</tr></tbody></table></div>`;
    }}<//>
  </section>`;
}

/* Administrators: the system's API keys and OAuth client (GET /api/v1/systems/{code}/keys); a
 * new key (POST …/keys: the old ones stay valid for an hour, the new secret is shown once) and
 * revoking a key now (DELETE …/keys/{id}, after a confirmation). */
function SystemKeys({ code }) {
  const base = `/api/v1/systems/${encodeURIComponent(code)}`;
  const res = useResource(() => get(`${base}/keys`), [code], 0);
  const [secret, setSecret] = useState(null);
  const [confirming, setConfirming] = useState(null);
  const [error, setError] = useState(null);
  const rotate = () => post(`${base}/keys`, { grace_seconds: 3600 }).then((k) => {
    setSecret(k);
    setError(null);
    res.reload();
  }, setError);
  const revoke = (id) => api('DELETE', `${base}/keys/${encodeURIComponent(id)}`).then(() => {
    setConfirming(null);
    setError(null);
    res.reload();
  }, setError);
  return html`<section class="card" aria-labelledby="keys-heading">
    <div class="section-head">
      <h2 id="keys-heading">${t('keys.heading')}</h2>
      <button type="button" id="key-rotate" onClick=${rotate}>${t('keys.rotate')}</button>
    </div>
    ${error && html`<${ErrorBox} error=${error} />`}
    ${secret && html`<p class="notice" role="status">${t('keys.once')} <code id="new-api-key" class="wrap">${secret.api_key}</code></p>`}
    <${Resource} res=${res}>${(d) => html`<div class="table-wrap"><table id="keys-table">
      <thead><tr><th scope="col">${t('keys.id')}</th><th scope="col">${t('keys.status')}</th><th scope="col">${t('keys.created')}</th>
        <th scope="col">${t('keys.expires')}</th><th scope="col"></th></tr></thead>
      <tbody>${(d.keys || []).map((k) => html`<tr>
        <td><code>${k.id}</code></td><td>${t(`keystatus.${k.status}`)}</td><td>${fmtDateTime(k.created_at)}</td>
        <td>${fmtDateTime(k.revoked_at || k.expires_at)}</td>
        <td class="actions">${(k.status === 'active' || k.status === 'expiring') && (confirming === k.id
          ? html`<button type="button" class="danger" onClick=${() => revoke(k.id)}>${t('keys.revoke_confirm')}</button>
              <button type="button" onClick=${() => setConfirming(null)}>${t('action.cancel')}</button>`
          : html`<button type="button" data-key=${k.id} onClick=${() => setConfirming(k.id)}>${t('keys.revoke')}</button>`)}</td>
      </tr>`)}</tbody></table></div>`}<//>
  </section>`;
}

/* The system's latest batch imports (operators and admins may list batches). */
function SystemBatches({ code }) {
  const res = useResource(() => get('/api/v1/batches?limit=200'), [], 10000);
  return html`<section class="card" aria-labelledby="sys-batches-heading">
    <h2 id="sys-batches-heading">${t('system.batches')}</h2>
    <${Resource} res=${res}>${(d) => {
      const mine = (d.batches || []).filter((b) => b.system_code === code).slice(0, 10);
      return mine.length ? html`<${BatchTable} batches=${mine} />` : html`<p class="muted">${t('batches.none')}</p>`;
    }}<//>
  </section>`;
}

export function SystemPage({ me, code }) {
  const res = useResource(() => get(`/api/v1/systems/${encodeURIComponent(code)}`), [code], 15000);
  return html`<p><a href="/systems" onClick=${onLink}>${t('system.back')}</a></p>
    <${Resource} res=${res}>${(s) => html`
      <h1>${s.code} — ${s.name} <${StatusBadge} status=${s.status} /></h1>
      <p class="muted">${s.org || ''}${s.org ? ' · ' : ''}${t('system.role')}: ${t(`sysrole.${s.role}`)}</p>
      <div class="kpis">
        <${Kpi} id="sys-today" label=${t('systems.today')} value=${fmtInt(s.transactions_today)} />
        <${Kpi} id="sys-error" label=${t('systems.error_rate')} value=${fmtPct(s.error_rate_today)} />
        <${Kpi} id="sys-avg" label=${t('kpi.avg')} value=${fmtMs(s.avg_response_ms_today)} />
        <${Kpi} id="sys-p95" label=${t('kpi.p95')} value=${fmtMs(s.p95_response_ms_today)} />
        <${Kpi} id="sys-uptime" label=${t('systems.uptime')} value=${fmtPct(s.uptime_30d)} />
        <${Kpi} id="sys-last" label=${t('systems.last_seen')} value=${fmtDateTime(s.last_seen)} />
      </div>
      <section class="card" aria-labelledby="hourly-heading">
        <h2 id="hourly-heading">${t('system.hourly')}</h2>
        <${Hourly} hourly=${s.hourly || []} />
      </section>
      <div class="grid2">
        ${can.stats(me.role) && html`<${SystemReasons} code=${s.code} />`}
        ${can.stats(me.role) && html`<${Latency} code=${s.code} />`}

        <section class="card" aria-labelledby="intervals-heading">
          <h2 id="intervals-heading">${t('system.intervals')}</h2>
          <table><thead><tr><th scope="col">${t('systems.status')}</th><th scope="col">${t('system.since')}</th><th scope="col">${t('system.until')}</th></tr></thead>
            <tbody>${(s.intervals || []).slice().reverse().slice(0, 20).map((iv) => html`<tr>
              <td><${StatusBadge} status=${iv.status} /></td><td>${fmtDateTime(iv.since)}</td>
              <td>${iv.until ? fmtDateTime(iv.until) : t('system.now')}</td></tr>`)}</tbody></table>
        </section>
      </div>
      ${can.alerts(me.role) && html`<${SystemBatches} code=${s.code} />`}
      ${can.admin(me.role) && html`<${SystemKeys} code=${s.code} />`}`}<//>`;
}
