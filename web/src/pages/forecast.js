// pages/forecast.js — forecasts (F7, issue 7): dataset, metric, interval, horizon and system →
// GET /api/v1/forecast/{dataset}, drawn as the history and the forecast with its 80 % and 95 %
// bands (uPlot), with the method that answered, both methods' backtest errors (MAPE, MASE) and
// the server's sentence saying how the numbers were made. The address holds the question
// (/forecast?dataset=…&metric=…), so a forecast can be shared or bookmarked.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { html } from '../lib/html.js';
import { fmtAxisDay, fmtAxisHour, fmtDateTime, fmtDec, fmtInt, fmtPct, getLang, t, TIME_ZONE } from '../lib/i18n.js';
import { get, qs } from '../lib/api.js';
import { Loading, Resource, useResource } from '../lib/ui.js';
import { navigate } from '../lib/router.js';

const AGGREGATES = ['sum', 'avg', 'p95'];

function fromLocation() {
  const u = new URLSearchParams(location.search);
  return {
    dataset: u.get('dataset') || 'transactions',
    metric: u.get('metric') || 'count',
    interval: u.get('interval') === 'hour' ? 'hour' : 'day',
    horizon: u.get('horizon') || '',
    system: u.get('system') || '',
    run: u.has('dataset'),
  };
}

function apiParams(q) {
  return {
    metric: q.metric,
    interval: q.interval,
    horizon: q.horizon || null,
    where: q.system ? [`system_code:eq:${q.system}`] : [],
  };
}

const forecastUrl = (q) => `/api/v1/forecast/${encodeURIComponent(q.dataset)}?${qs(apiParams(q))}`;

/* A value of the metric in the language's format. */
function fmtValue(metric, v) {
  if (v == null) return t('common.none');
  if (metric.startsWith('rate:')) return fmtPct(v);
  return metric === 'count' ? fmtInt(v) : fmtDec(v);
}

/* The chart: the history, the forecast, and the two bands between their bounds. */
function ForecastChart({ d, summary }) {
  const box = useRef(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    const hist = d.history, pts = d.points;
    const x = [...hist.map((p) => Date.parse(p.t) / 1000), ...pts.map((p) => Date.parse(p.t) / 1000)];
    const pad = (n) => Array(n).fill(null);
    // the forecast line starts at the last observed point, so the two lines join
    const last = hist.length ? [hist[hist.length - 1].value] : [];
    const bound = (k) => [...pad(Math.max(hist.length - 1, 0)), ...last, ...pts.map((p) => p[k])];
    const data = [
      x,
      [...hist.map((p) => p.value), ...pad(pts.length)],
      bound('value'),
      bound('hi95'),
      bound('lo95'),
      bound('hi80'),
      bound('lo80'),
    ];
    const fv = (u, v) => fmtValue(d.metric, v);
    const daily = d.interval === 'day';
    const opts = {
      width: Math.max(el.clientWidth, 300),
      height: 300,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), TIME_ZONE),
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      series: [
        { label: t('chart.time'), value: (u, v) => (v == null ? '' : fmtDateTime(new Date(v * 1e3))) },
        { label: t('forecast.observed'), stroke: '#1d5fa6', width: 2, value: fv },
        { label: t('forecast.predicted'), stroke: '#b3261e', width: 2, dash: [6, 4], value: fv },
        { label: t('forecast.hi95'), stroke: 'rgba(179,38,30,0.25)', width: 1, value: fv },
        { label: t('forecast.lo95'), stroke: 'rgba(179,38,30,0.25)', width: 1, value: fv },
        { label: t('forecast.hi80'), stroke: 'rgba(179,38,30,0.4)', width: 1, value: fv },
        { label: t('forecast.lo80'), stroke: 'rgba(179,38,30,0.4)', width: 1, value: fv },
      ],
      bands: [
        { series: [3, 4], fill: 'rgba(179,38,30,0.10)' },
        { series: [5, 6], fill: 'rgba(179,38,30,0.18)' },
      ],
      axes: [
        { values: (u, splits, ax, space, incr) => splits.map((v) => (daily || incr >= 86400 ? fmtAxisDay(new Date(v * 1e3)) : fmtAxisHour(new Date(v * 1e3)))) },
        { size: 64, values: (u, splits) => splits.map((v) => fmtValue(d.metric, v)) },
      ],
    };
    const plot = new uPlot(opts, data, el);
    const ro = new ResizeObserver(() => plot.setSize({ width: Math.max(el.clientWidth, 300), height: 300 }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.destroy();
    };
  }, [d, getLang()]);
  return html`<figure class="chart">
    <div ref=${box} class="chart-canvas" id="forecast-chart" role="img" aria-label=${summary}></div>
    <figcaption class="sr-only">${summary}</figcaption>
  </figure>`;
}

/* Parameters and errors with three decimals, in the language's format. */
const fmt3 = (v) => new Intl.NumberFormat(getLang() === 'vi' ? 'vi-VN' : 'en-GB', { maximumFractionDigits: 3 }).format(v);
const errNum = (v) => (v == null ? t('forecast.undefined') : fmt3(v));

function Result({ q }) {
  const url = forecastUrl(q);
  // the explanation comes in the dashboard's language: asked again when it changes
  const res = useResource(() => get(url), [url, getLang()], 0);
  return html`<${Resource} res=${res}>${(d) => {
    const hw = d.methods.holt_winters, sn = d.methods.seasonal_naive;
    const summary = t('forecast.summary', { method: t(`forecast.method.${d.method}`), n: fmtInt(d.points.length) });
    return html`<section class="card" aria-labelledby="fc-result">
      <h2 id="fc-result">${t('forecast.result', { metric: d.metric })}</h2>
      <p id="fc-method"><strong>${t('forecast.chosen')}</strong> <span id="fc-method-name" data-method=${d.method}>${t(`forecast.method.${d.method}`)}</span></p>
      <${ForecastChart} d=${d} summary=${summary} />
      <p class="muted" id="fc-explain">${d.explain}</p>
      <div class="table-wrap"><table id="fc-backtest">
        <caption>${t('forecast.backtest', { folds: fmtInt(d.backtest.folds), points: fmtInt(d.backtest.points_per_fold) })}</caption>
        <thead><tr><th scope="col">${t('forecast.method')}</th><th scope="col" class="num">MAPE (%)</th><th scope="col" class="num">MASE</th><th scope="col" class="num">${t('forecast.params')}</th></tr></thead>
        <tbody>
          <tr class=${d.method === 'holt_winters' ? 'chosen' : ''}><th scope="row">${t('forecast.method.holt_winters')}</th>
            <td class="num">${errNum(hw.mape)}</td><td class="num">${errNum(hw.mase)}</td>
            <td class="num">α ${fmt3(hw.alpha)} · β ${fmt3(hw.beta)} · γ ${fmt3(hw.gamma)}</td></tr>
          <tr class=${d.method === 'seasonal_naive' ? 'chosen' : ''}><th scope="row">${t('forecast.method.seasonal_naive')}</th>
            <td class="num">${errNum(sn.mape)}</td><td class="num">${errNum(sn.mase)}</td><td class="num">${t('common.none')}</td></tr>
        </tbody>
      </table></div>
      <div class="table-wrap"><table id="fc-points">
        <caption>${t('forecast.points')}</caption>
        <thead><tr><th scope="col">${t('forecast.time')}</th><th scope="col" class="num">${t('forecast.predicted')}</th>
          <th scope="col" class="num">${t('forecast.band80')}</th><th scope="col" class="num">${t('forecast.band95')}</th></tr></thead>
        <tbody>${d.points.map((p) => html`<tr><td>${fmtDateTime(p.t)}</td><td class="num">${fmtValue(d.metric, p.value)}</td>
          <td class="num">${fmtValue(d.metric, p.lo80)} – ${fmtValue(d.metric, p.hi80)}</td>
          <td class="num">${fmtValue(d.metric, p.lo95)} – ${fmtValue(d.metric, p.hi95)}</td></tr>`)}</tbody>
      </table></div>
    </section>`;
  }}<//>`;
}

export function Forecast() {
  const datasets = useResource(() => get('/api/v1/datasets'), [], 0);
  const systems = useResource(() => get('/api/v1/systems'), [], 0);
  const [q, setQ] = useState(fromLocation);
  const [ran, setRan] = useState(q.run ? q : null);
  const [def, setDef] = useState(null);
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
    get(`/api/v1/datasets/${encodeURIComponent(q.dataset)}`).then(setDef, () => setDef(null));
  }, [q.dataset]);
  const metrics = useMemo(() => {
    const opts = ['count'];
    if (!def) return opts;
    for (const m of def.measures || []) for (const a of AGGREGATES) opts.push(`${a}:${m}`);
    const status = (def.fields || []).find((f) => f.name === 'status' && f.values);
    if (status) for (const v of status.values) opts.push(`rate:status=${v}`);
    return opts;
  }, [def]);
  const set = (k, v) => setQ((x) => ({ ...x, [k]: v }));
  function submit(e) {
    e.preventDefault();
    const n = { ...q, run: true };
    navigate(`/forecast?${qs({ dataset: n.dataset, metric: n.metric, interval: n.interval, horizon: n.horizon || null, system: n.system || null })}`);
    setRan(n);
  }
  return html`<h1>${t('forecast.heading')}</h1>
    <form class="card explorer-form" onSubmit=${submit} aria-label=${t('forecast.heading')}>
      <div class="field">
        <label for="fc-dataset">${t('forecast.dataset')}</label>
        <select id="fc-dataset" value=${q.dataset} onChange=${(e) => setQ((x) => ({ ...x, dataset: e.currentTarget.value, metric: 'count' }))}>
          ${((datasets.data && datasets.data.datasets) || [{ code: q.dataset, title: {} }]).map((d) => html`<option value=${d.code}>${(d.title && d.title[getLang()]) || d.code}</option>`)}
        </select>
      </div>
      <div class="field">
        <label for="fc-metric">${t('forecast.metric')}</label>
        <select id="fc-metric" value=${q.metric} onChange=${(e) => set('metric', e.currentTarget.value)}>
          ${metrics.map((m) => html`<option value=${m}>${m}</option>`)}
        </select>
      </div>
      <div class="field">
        <label for="fc-interval">${t('forecast.interval')}</label>
        <select id="fc-interval" value=${q.interval} onChange=${(e) => set('interval', e.currentTarget.value)}>
          <option value="day">${t('interval.day')}</option>
          <option value="hour">${t('interval.hour')}</option>
        </select>
        <label for="fc-horizon">${t('forecast.horizon')}</label>
        <input id="fc-horizon" type="number" min="1" max="366" placeholder=${q.interval === 'hour' ? '48' : '14'}
          value=${q.horizon} onInput=${(e) => set('horizon', e.currentTarget.value)} />
      </div>
      <div class="field">
        <label for="fc-system">${t('forecast.system')}</label>
        <select id="fc-system" value=${q.system} onChange=${(e) => set('system', e.currentTarget.value)}>
          <option value="">${t('forecast.all_systems')}</option>
          ${((systems.data && systems.data.systems) || []).map((s) => html`<option value=${s.code}>${s.code} — ${s.name}</option>`)}
        </select>
      </div>
      <div class="field actions-end">
        <button type="submit" class="primary" id="fc-run">${t('forecast.run')}</button>
      </div>
    </form>
    ${ran ? html`<${Result} q=${ran} />` : datasets.loading ? html`<${Loading} />` : html`<p class="muted">${t('forecast.intro')}</p>`}`;
}
