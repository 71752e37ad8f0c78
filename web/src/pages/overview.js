// pages/overview.js — the overview (T5.1, Annex I §5.1): live KPIs from the event stream
// GET /api/v1/live (one event a second: transactions today and in the last minute, error rate,
// average and p95 response time, systems by status); a chart of transactions and error rate over
// 24 h / 7 d / 30 d (GET /api/v1/stats/transactions); the systems and failure reasons that need
// attention now; open alerts (for the roles that may read them).
import { useEffect, useMemo, useState } from 'preact/hooks';
import { html } from '../lib/html.js';
import { fmtDateTime, fmtInt, fmtMs, fmtPct, fmtTime, t, todayVN } from '../lib/i18n.js';
import { get, qs } from '../lib/api.js';
import { can } from '../lib/access.js';
import { TimeChart } from '../lib/chart.js';
import { Kpi, Resource, StatusBadge, useResource } from '../lib/ui.js';
import { onLink } from '../lib/router.js';

/* The live feed: the latest KPI event and the state of the stream. EventSource reconnects by
 * itself after a network error; after an HTTP error (401: session ended, 503: too many streams)
 * it stops, so the session is checked (a 401 there signs the app out) and the feed restarts. */
function useLive() {
  const [live, setLive] = useState({ kpi: null, state: 'connecting' });
  useEffect(() => {
    let es = null;
    let timer = null;
    let lost = null;
    let stopped = false;
    const open = () => {
      es = new EventSource('/api/v1/live');
      es.onmessage = (e) => {
        clearTimeout(lost);
        try {
          setLive({ kpi: JSON.parse(e.data), state: 'open' });
        } catch {
          /* a broken event: keep the last one */
        }
      };
      es.onerror = () => {
        if (es.readyState !== EventSource.CLOSED) {
          // reconnecting by itself (the server ends a person's stream every few minutes to check
          // the session again): "lost" only if no event comes back soon
          clearTimeout(lost);
          lost = setTimeout(() => setLive((l) => ({ ...l, state: 'lost' })), 5000);
          return;
        }
        setLive((l) => ({ ...l, state: 'lost' }));
        es.close();
        get('/api/v1/session').then(
          () => !stopped && (timer = setTimeout(open, 3000)),
          () => {}, // signed out by the API module on 401
        );
      };
    };
    open();
    return () => {
      stopped = true;
      clearTimeout(timer);
      clearTimeout(lost);
      if (es) es.close();
    };
  }, []);
  return live;
}

function LiveKpis() {
  const { kpi, state } = useLive();
  const k = kpi || {};
  const sys = k.systems || {};
  return html`<section aria-labelledby="live-heading">
    <div class="section-head">
      <h2 id="live-heading">${t('overview.live')}</h2>
      <span class="muted" id="live-state">
        ${state === 'open' && k.time ? t('overview.updated', { time: fmtTime(new Date(k.time)) })
          : state === 'lost' ? t('overview.disconnected') : t('overview.connecting')}
      </span>
    </div>
    <div class="kpis">
      <${Kpi} id="kpi-today" label=${t('kpi.today')} value=${fmtInt(k.transactions_today)} />
      <${Kpi} id="kpi-minute" label=${t('kpi.minute')} value=${fmtInt(k.transactions_last_minute)} />
      <${Kpi} id="kpi-error-rate" label=${t('kpi.error_rate')} value=${fmtPct(k.error_rate_today)} />
      <${Kpi} id="kpi-avg" label=${t('kpi.avg')} value=${fmtMs(k.avg_response_ms_today)} />
      <${Kpi} id="kpi-p95" label=${t('kpi.p95')} value=${fmtMs(k.p95_response_ms_today)} />
      <${Kpi} id="kpi-systems" label=${t('kpi.systems')} value=${fmtInt(sys.online)}
        detail=${t('kpi.systems_detail', { online: fmtInt(sys.online), degraded: fmtInt(sys.degraded), offline: fmtInt(sys.offline) })} />
    </div>
  </section>`;
}

/* The chart's ranges. Hourly buckets exist as rollups for today and the two days before only
 * (stats.h, DTM_CUBE_HOUR_DAYS): longer ranges are drawn by day, so that every query is
 * answered from a rollup in a few milliseconds rather than by a scan of the records. */
const RANGES = {
  '24h': { span: 24 * 3600, interval: 'hour', step: 3600 },
  '7d': { span: 6 * 86400, interval: 'day', step: 86400 },
  '30d': { span: 29 * 86400, interval: 'day', step: 86400 },
};
const VN_OFFSET = 7 * 3600; // buckets are aligned in UTC+07:00 (CONTRACT §6)
const align = (s, step) => Math.floor((s + VN_OFFSET) / step) * step - VN_OFFSET;

/* The first bucket of a range ending now (epoch seconds): a bucket boundary, as the rollups
 * answer only queries whose bounds fall on their buckets. */
const rangeStart = (rg) => align(Math.floor(Date.now() / 1000) - rg.span, rg.step);

/* Stats rows ([period, count, rate]) → chart columns with a point for every bucket of the range.
 * Empty buckets are absent from the answer: zero transactions, no error rate. */
function series(rows, rg) {
  const byT = new Map(rows.map((r) => [align(Math.floor(Date.parse(r[0]) / 1000), rg.step), r]));
  const end = Math.floor(Date.now() / 1000);
  const x = [], count = [], rate = [];
  let total = 0;
  for (let s = rangeStart(rg); s <= end; s += rg.step) {
    const r = byT.get(s);
    x.push(s);
    count.push(r ? r[1] : 0);
    rate.push(r && r[2] != null ? r[2] : null);
    total += r ? r[1] : 0;
  }
  return { x, count, rate, total };
}

function TrafficChart() {
  const [range, setRange] = useState('24h');
  const rg = RANGES[range];
  const res = useResource(() => {
    const from = new Date(rangeStart(rg) * 1000).toISOString();
    return get(`/api/v1/stats/transactions?${qs({ metrics: 'count,rate:status=failed', interval: rg.interval, from })}`);
  }, [range], 60000);
  const data = useMemo(() => (res.data ? series(res.data.rows || [], rg) : null), [res.data]);
  return html`<section class="card" aria-labelledby="chart-heading">
    <div class="section-head">
      <h2 id="chart-heading">${t('chart.heading')}</h2>
      <div class="segmented" role="group" aria-label=${t('chart.range')}>
        ${Object.keys(RANGES).map((k) => html`<button type="button" aria-pressed=${k === range ? 'true' : 'false'}
          onClick=${() => setRange(k)}>${t(`chart.${k}`)}</button>`)}
      </div>
    </div>
    <${Resource} res=${res}>${() =>
      !data || !data.total
        ? html`<p class="muted">${t('chart.empty')}</p>`
        : html`<${TimeChart} x=${data.x} daily=${rg.interval === 'day'}
            summary=${t('chart.summary', { count: fmtInt(data.total) })}
            series=${[{ label: t('chart.count'), values: data.count, kind: 'count' },
                      { label: t('chart.failed'), values: data.rate, kind: 'pct' }]} />`}
    <//>
  </section>`;
}

function Attention() {
  const res = useResource(() => get('/api/v1/systems'), [], 10000);
  return html`<section class="card" aria-labelledby="attention-heading">
    <h2 id="attention-heading">${t('attention.heading')}</h2>
    <${Resource} res=${res}>${(d) => {
      const bad = (d.systems || []).filter((s) => s.status === 'offline' || s.status === 'degraded' ||
        (s.error_rate_today != null && s.error_rate_today >= 0.05));
      if (!bad.length) return html`<p class="muted">${t('attention.none')}</p>`;
      return html`<ul class="list">${bad.map((s) => html`<li>
        <a href=${`/systems/${encodeURIComponent(s.code)}`} onClick=${onLink}>${s.code}</a>
        ${' '}<span>${s.name}</span> <${StatusBadge} status=${s.status} />
        <span class="muted">${t('systems.error_rate')}: ${fmtPct(s.error_rate_today)} · ${t('systems.last_seen')}: ${fmtDateTime(s.last_seen)}</span>
      </li>`)}</ul>`;
    }}<//>
  </section>`;
}

function Reasons() {
  const res = useResource(() => get(`/api/v1/stats/transactions?${qs({
    metrics: 'count', group_by: 'error_code', where: 'status:eq:failed', from: todayVN(),
  })}`), [], 30000);
  return html`<section class="card" aria-labelledby="reasons-heading">
    <h2 id="reasons-heading">${t('reasons.heading')}</h2>
    <${Resource} res=${res}>${(d) => {
      const rows = (d.rows || []).slice().sort((a, b) => b[1] - a[1]).slice(0, 10);
      if (!rows.length) return html`<p class="muted">${t('reasons.none')}</p>`;
      return html`<table><thead><tr><th scope="col">${t('reasons.code')}</th><th scope="col" class="num">${t('reasons.count')}</th></tr></thead>
        <tbody>${rows.map((r) => html`<tr><td>${r[0] ?? t('common.none')}</td><td class="num">${fmtInt(r[1])}</td></tr>`)}</tbody></table>`;
    }}<//>
  </section>`;
}

function OpenAlerts() {
  const res = useResource(() => get(`/api/v1/alerts?${qs({ state: 'firing', limit: 10 })}`), [], 15000);
  return html`<section class="card" aria-labelledby="open-alerts-heading">
    <h2 id="open-alerts-heading"><a href="/alerts" onClick=${onLink}>${t('alerts.open')}</a></h2>
    <${Resource} res=${res}>${(d) => (!(d.alerts || []).length
      ? html`<p class="muted">${t('alerts.none')}</p>`
      : html`<ul class="list">${d.alerts.map((a) => html`<li>
          <span class=${`badge sev-${a.severity}`}>${t(`severity.${a.severity}`)}</span> ${a.title}
          <span class="muted"> · ${fmtDateTime(a.last_seen)}</span></li>`)}</ul>`)}<//>
  </section>`;
}

export function Overview({ me }) {
  return html`<h1>${t('overview.heading')}</h1>
    <${LiveKpis} />
    ${can.stats(me.role) && html`<${TrafficChart} />`}
    <div class="grid2">
      <${Attention} />
      ${can.stats(me.role) && html`<${Reasons} />`}
      ${can.alerts(me.role) && html`<${OpenAlerts} />`}
    </div>`;
}
