// pages/reports.js — periodic reports (issue 7; GET /api/v1/reports, GET /api/v1/reports/{kind}):
// the reports the server produced after each period closed and kept, each downloadable in every
// offered format (JSON, CSV, Excel, PDF); and a form that makes one now — kind, period (a day
// 2026-10-05, an ISO week 2026-W42, a month 2026-10, a quarter 2026-Q3 or a year 2026), format and
// language — as a download link to the same API (a period not over yet gives a provisional one).
import { useState } from 'preact/hooks';
import { html } from '../lib/html.js';
import { fmtDateTime, fmtInt, getLang, t } from '../lib/i18n.js';
import { get, qs } from '../lib/api.js';
import { Resource, useResource } from '../lib/ui.js';

const KINDS = ['transactions', 'connectivity', 'quality', 'ranking'];
const FORMATS = ['pdf', 'xlsx', 'csv', 'json'];
const PERIOD_RE = /^(\d{4}|\d{4}-(0[1-9]|1[0-2])|\d{4}-Q[1-4]|\d{4}-W\d{2}|\d{4}-(0[1-9]|1[0-2])-\d{2})$/;

/* The month before the current one in UTC+07:00, as "YYYY-MM" (the last closed month). */
function lastMonth() {
  const [y, m] = new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Ho_Chi_Minh', year: 'numeric', month: '2-digit' })
    .format(new Date()).split('-').map(Number);
  return m === 1 ? `${y - 1}-12` : `${y}-${String(m - 1).padStart(2, '0')}`;
}

/* "month,quarter,year" → "tháng, quý, năm" ("—" when none). */
function scheduleText(schedule) {
  const kinds = (schedule || '').split(',').map((k) => k.trim()).filter(Boolean);
  return kinds.length ? kinds.map((k) => t(`reports.every_${k}`)).join(', ') : '—';
}

function Make() {
  const [kind, setKind] = useState('transactions');
  const [period, setPeriod] = useState(lastMonth());
  const [format, setFormat] = useState('pdf');
  const [lang, setLangChoice] = useState(getLang());
  const valid = PERIOD_RE.test(period);
  const url = `/api/v1/reports/${kind}?${qs({ period, format, lang })}`;
  return html`<section class="card" aria-labelledby="report-make-heading">
    <h2 id="report-make-heading">${t('reports.make_heading')}</h2>
    <form id="report-form" onSubmit=${(e) => e.preventDefault()}>
      <div class="form-row">
        <label for="report-kind">${t('reports.kind')}</label>
        <select id="report-kind" value=${kind} onChange=${(e) => setKind(e.currentTarget.value)}>
          ${KINDS.map((k) => html`<option value=${k}>${t(`reports.kind_${k}`)}</option>`)}
        </select>
        <label for="report-period">${t('reports.period')}</label>
        <input id="report-period" value=${period} onInput=${(e) => setPeriod(e.currentTarget.value.trim())}
          aria-describedby="report-period-help" aria-invalid=${valid ? 'false' : 'true'} size="12" />
        <label for="report-format">${t('reports.format')}</label>
        <select id="report-format" value=${format} onChange=${(e) => setFormat(e.currentTarget.value)}>
          ${FORMATS.map((f) => html`<option value=${f}>${t(`reports.format_${f}`)}</option>`)}
        </select>
        <label for="report-lang">${t('reports.lang')}</label>
        <select id="report-lang" value=${lang} onChange=${(e) => setLangChoice(e.currentTarget.value)}>
          <option value="vi" lang="vi">Tiếng Việt</option><option value="en" lang="en">English</option>
        </select>
      </div>
      <p id="report-period-help" class="muted">${t('reports.period_help')}</p>
      ${valid ? html`<a class="button" id="report-make" href=${url} download=${`dtm-${kind}-${period}-${lang}.${format}`}>
          ${t('reports.make')}</a>`
        : html`<p class="error" role="alert" id="report-period-error">${t('reports.period_bad')}</p>`}
    </form>
  </section>`;
}

export function Reports() {
  const res = useResource(() => get('/api/v1/reports'), [], 30000);
  return html`<h1>${t('reports.heading')}</h1>
    <p class="muted">${t('reports.intro')}</p>
    <${Make} />
    <section class="card" aria-labelledby="report-kept-heading">
      <h2 id="report-kept-heading">${t('reports.kept_heading')}</h2>
      <${Resource} res=${res}>${(d) => html`
        <p class="muted" id="report-schedule">${t('reports.schedule', { schedule: scheduleText(d.schedule) })}</p>
        ${!(d.reports || []).length ? html`<p class="muted" id="reports-none">${t('reports.none')}</p>`
          : html`<div class="table-wrap"><table id="reports-table">
          <thead><tr><th scope="col">${t('reports.kind')}</th><th scope="col">${t('reports.period')}</th>
            <th scope="col">${t('reports.lang')}</th><th scope="col">${t('reports.generated_at')}</th>
            <th scope="col" class="num">${t('reports.size')}</th><th scope="col">${t('reports.downloads')}</th></tr></thead>
          <tbody>${d.reports.map((r) => html`<tr data-kind=${r.kind} data-period=${r.period} data-lang=${r.lang}>
            <td>${t(`reports.kind_${r.kind}`)}</td><td>${r.period}</td><td>${r.lang}</td>
            <td>${fmtDateTime(r.generated_at)}</td><td class="num">${fmtInt(r.size)}</td>
            <td class="actions">${(r.formats || []).map((f) => html`<a class="button" href=${r.urls[f]}
              download=${`dtm-${r.kind}-${r.period}-${r.lang}.${f}`}
              aria-label=${t('reports.download_as', { format: t(`reports.format_${f}`), kind: t(`reports.kind_${r.kind}`), period: r.period })}>
              ${t(`reports.format_${f}`)}</a> `)}</td>
          </tr>`)}</tbody></table></div>`}`}
      <//>
    </section>`;
}
