// pages/explorer.js — the statistics explorer (issue 6 §6): dataset, metrics, group-by,
// interval, period and filters → GET /api/v1/stats/{dataset}, shown as a chart (by interval) and
// a table, and downloadable as CSV, Excel or JSON (the same query with format=…). The address
// holds the query (/explorer?dataset=…&metrics=…), so a query can be shared or bookmarked.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { html } from '../lib/html.js';
import { fmtDateTime, fmtDec, fmtInt, fmtPct, getLang, t } from '../lib/i18n.js';
import { get, qs } from '../lib/api.js';
import { TimeChart } from '../lib/chart.js';
import { ErrorBox, Loading, Resource, useResource } from '../lib/ui.js';
import { navigate } from '../lib/router.js';

const INTERVALS = ['', 'hour', 'day', 'week', 'month', 'quarter', 'year'];
const AGGREGATES = ['sum', 'avg', 'min', 'max', 'p50', 'p95', 'p99'];
const MAX_CHART_SERIES = 8;

/* The query held by the address (defaults for a first visit). */
function fromLocation() {
  const u = new URLSearchParams(location.search);
  return {
    dataset: u.get('dataset') || 'transactions',
    metrics: (u.get('metrics') || 'count').split(',').filter(Boolean),
    group_by: (u.get('group_by') || '').split(',').filter(Boolean),
    interval: u.get('interval') || 'day',
    from: u.get('from') || '',
    to: u.get('to') || '',
    where: u.getAll('where'),
    run: u.has('dataset'),
  };
}

/* The API's parameters of a query (empty ones left out). */
function params(q) {
  return {
    metrics: q.metrics.join(','),
    group_by: q.group_by.length ? q.group_by.join(',') : null,
    interval: q.interval || null,
    from: q.from || null,
    to: q.to || null,
    where: q.where.filter(Boolean),
  };
}

const statsUrl = (q, format) => `/api/v1/stats/${encodeURIComponent(q.dataset)}?${qs({ ...params(q), format })}`;

/* A cell of the answer: numbers in the language's format, periods as dates. */
function cell(col, v) {
  if (v == null) return t('common.none');
  if (col === 'period') return fmtDateTime(v);
  if (col.startsWith('rate:') && typeof v === 'number') return fmtPct(v);
  if (typeof v === 'number') return Number.isInteger(v) ? fmtInt(v) : fmtDec(v);
  return String(v);
}

/* A chart of the answer when it is a time series: one line per metric, or one per group when a
 * single metric is grouped by one dimension (at most MAX_CHART_SERIES). */
function chartOf(data, q) {
  const cols = data.columns || [];
  const pi = cols.indexOf('period');
  if (pi < 0 || !data.rows.length) return null;
  const times = [...new Set(data.rows.map((r) => Date.parse(r[pi]) / 1000))].sort((a, b) => a - b);
  const at = new Map(times.map((x, i) => [x, i]));
  const series = [];
  const dims = q.group_by.map((g) => cols.indexOf(g));
  if (dims.length === 0) {
    q.metrics.forEach((m) => {
      const mi = cols.indexOf(m);
      const values = times.map(() => null);
      data.rows.forEach((r) => (values[at.get(Date.parse(r[pi]) / 1000)] = r[mi]));
      series.push({ label: m, values, kind: m.startsWith('rate:') ? 'pct' : m === 'count' ? 'count' : 'ms' });
    });
  } else if (dims.length === 1 && q.metrics.length === 1) {
    const mi = cols.indexOf(q.metrics[0]);
    const groups = new Map();
    data.rows.forEach((r) => {
      const g = String(r[dims[0]] ?? t('common.none'));
      if (!groups.has(g)) {
        if (groups.size >= MAX_CHART_SERIES) return;
        groups.set(g, times.map(() => null));
      }
      groups.get(g)[at.get(Date.parse(r[pi]) / 1000)] = r[mi];
    });
    const kind = q.metrics[0].startsWith('rate:') ? 'pct' : q.metrics[0] === 'count' ? 'count' : 'ms';
    groups.forEach((values, g) => series.push({ label: g, values, kind }));
  } else return null;
  return { x: times, series, daily: q.interval !== 'hour' };
}

function Result({ q }) {
  const res = useResource(() => get(statsUrl(q)), [statsUrl(q)], 0);
  const chart = useMemo(() => (res.data ? chartOf(res.data, q) : null), [res.data, getLang()]);
  return html`<${Resource} res=${res}>${(d) => html`
    <section class="card" aria-labelledby="result-heading">
      <div class="section-head">
        <h2 id="result-heading">${t('explorer.result', { n: fmtInt(d.rows.length) })}</h2>
        <div class="row" role="group" aria-label=${t('explorer.download')}>
          ${['csv', 'xlsx', 'json'].map((f) => html`<a class="button" id=${`export-${f}`} href=${statsUrl(q, f)}
            download=${`${q.dataset}.${f}`}>${t(`explorer.as_${f}`)}</a>`)}
        </div>
      </div>
      ${chart && chart.series.length > 0 && html`<${TimeChart} x=${chart.x} series=${chart.series} daily=${chart.daily}
        summary=${t('explorer.result', { n: fmtInt(d.rows.length) })} />`}
      <div class="table-wrap"><table id="explorer-table">
        <thead><tr>${d.columns.map((c, i) => html`<th scope="col" class=${d.rows.length && typeof d.rows[0][i] === 'number' ? 'num' : ''}>${c}</th>`)}</tr></thead>
        <tbody>${d.rows.slice(0, 1000).map((r) => html`<tr>${r.map((v, i) => html`<td class=${typeof v === 'number' ? 'num' : ''}>${cell(d.columns[i], v)}</td>`)}</tr>`)}</tbody>
      </table></div>
      ${d.rows.length > 1000 && html`<p class="muted">${t('explorer.first_rows', { n: fmtInt(1000) })}</p>`}
    </section>`}<//>`;
}

export function Explorer() {
  const datasets = useResource(() => get('/api/v1/datasets'), [], 0);
  const [q, setQ] = useState(fromLocation);
  const [ran, setRan] = useState(q.run ? q : null);
  const [def, setDef] = useState(null);
  const [defError, setDefError] = useState(null);
  // the address changes (back/forward, a shared link): the form and the result follow it
  useEffect(() => {
    const sync = () => {
      const n = fromLocation();
      setQ(n);
      setRan(n.run ? n : null);
    };
    window.addEventListener('popstate', sync);
    return () => window.removeEventListener('popstate', sync);
  }, []);
  useEffect(() => {
    get(`/api/v1/datasets/${encodeURIComponent(q.dataset)}`).then((d) => {
      setDef(d);
      setDefError(null);
    }, setDefError);
  }, [q.dataset]);

  const metricOptions = useMemo(() => {
    if (!def) return ['count'];
    const opts = ['count'];
    for (const m of def.measures || []) for (const a of AGGREGATES) opts.push(`${a}:${m}`);
    const status = (def.fields || []).find((f) => f.name === 'status' && f.values);
    if (status) for (const v of status.values) opts.push(`rate:status=${v}`);
    return opts;
  }, [def]);
  const set = (k, v) => setQ((x) => ({ ...x, [k]: v }));
  const selected = (e) => [...e.currentTarget.selectedOptions].map((o) => o.value);

  function submit(e) {
    e.preventDefault();
    const n = { ...q, where: q.where.filter(Boolean), run: true };
    navigate(`/explorer?${qs({ dataset: n.dataset, ...params(n) })}`);
    setRan(n);
  }

  return html`<h1>${t('explorer.heading')}</h1>
    <form class="card explorer-form" onSubmit=${submit} aria-label=${t('explorer.heading')}>
      <div class="field">
        <label for="ex-dataset">${t('explorer.dataset')}</label>
        <select id="ex-dataset" value=${q.dataset} onChange=${(e) => setQ((x) => ({ ...x, dataset: e.currentTarget.value, metrics: ['count'], group_by: [], where: [] }))}>
          ${((datasets.data && datasets.data.datasets) || [{ code: q.dataset, title: {} }]).map((d) => html`<option value=${d.code}>${(d.title && d.title[getLang()]) || d.code}</option>`)}
        </select>
      </div>
      <div class="field">
        <label for="ex-metrics">${t('explorer.metrics')}</label>
        <select id="ex-metrics" multiple size="6" onChange=${(e) => set('metrics', selected(e))}>
          ${metricOptions.map((m) => html`<option value=${m} selected=${q.metrics.includes(m)}>${m}</option>`)}
        </select>
      </div>
      <div class="field">
        <label for="ex-group">${t('explorer.group_by')}</label>
        <select id="ex-group" multiple size="6" onChange=${(e) => set('group_by', selected(e))}>
          ${((def && def.dimensions) || []).map((d) => html`<option value=${d} selected=${q.group_by.includes(d)}>${d}</option>`)}
        </select>
      </div>
      <div class="field">
        <label for="ex-interval">${t('explorer.interval')}</label>
        <select id="ex-interval" value=${q.interval} onChange=${(e) => set('interval', e.currentTarget.value)}>
          ${INTERVALS.map((i) => html`<option value=${i}>${t(`interval.${i || 'none'}`)}</option>`)}
        </select>
        <label for="ex-from">${t('explorer.from')}</label>
        <input id="ex-from" type="date" value=${q.from} onInput=${(e) => set('from', e.currentTarget.value)} />
        <label for="ex-to">${t('explorer.to')}</label>
        <input id="ex-to" type="date" value=${q.to} onInput=${(e) => set('to', e.currentTarget.value)} />
      </div>
      <div class="field grow">
        <label for="ex-where">${t('explorer.where')}</label>
        <textarea id="ex-where" rows="4" aria-describedby="ex-where-hint" value=${q.where.join('\n')}
          onInput=${(e) => set('where', e.currentTarget.value.split('\n').map((s) => s.trim()))}></textarea>
        <p class="hint" id="ex-where-hint">${t('explorer.where_hint')}</p>
      </div>
      <div class="field actions-end">
        <button type="submit" class="primary" id="ex-run" disabled=${!q.metrics.length}>${t('explorer.run')}</button>
      </div>
    </form>
    ${defError && html`<${ErrorBox} error=${defError} />`}
    ${ran ? html`<${Result} q=${ran} />` : datasets.loading ? html`<${Loading} />` : html`<p class="muted">${t('explorer.intro')}</p>`}`;
}
