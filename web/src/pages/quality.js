// pages/quality.js — data quality, reconciliation and rankings (issue 7 items 2-4; G4, G5,
// Circular Art. 5.5): /quality (per system and dataset: completeness, timeliness, validity with
// the top errors, duplicates, reconciliation mismatches, freshness), /reconciliation (reported
// totals against counted transactions, mismatches highlighted) and /rankings (scores per
// criterion, total, A/B/C badge, the evidence of each score on demand). Each has a period picker
// (a day 2026-10-05, an ISO week 2026-W42, a month 2026-10, a quarter 2026-Q3 or a year 2026,
// kept in the URL) and shows how every number was computed (the answer's method).
import { useState } from 'preact/hooks';
import { html } from '../lib/html.js';
import { fmtDec, fmtInt, fmtMs, fmtPct, getLang, t } from '../lib/i18n.js';
import { get, qs } from '../lib/api.js';
import { onLink } from '../lib/router.js';
import { Resource, useResource } from '../lib/ui.js';

const PERIOD_RE = /^(\d{4}|\d{4}-(0[1-9]|1[0-2])|\d{4}-Q[1-4]|\d{4}-W\d{2}|\d{4}-(0[1-9]|1[0-2])-\d{2})$/;

function vnNow() {
  return new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Ho_Chi_Minh', year: 'numeric', month: '2-digit' })
    .format(new Date()).split('-');
}

function initialPeriod(fallback) {
  const p = new URLSearchParams(window.location.search).get('period');
  return p && PERIOD_RE.test(p) ? p : fallback;
}

/* The period picker: a text field checked as typed; a valid period is applied (and put in the
 * URL, so a link keeps it) on submit. */
function PeriodPicker({ id, period, onApply }) {
  const [text, setText] = useState(period);
  const valid = PERIOD_RE.test(text);
  const submit = (e) => {
    e.preventDefault();
    if (!valid) return;
    const u = new URL(window.location.href);
    u.searchParams.set('period', text);
    window.history.replaceState(null, '', u.pathname + u.search);
    onApply(text);
  };
  return html`<form class="form-row" id=${`${id}-form`} onSubmit=${submit}>
    <label for=${`${id}-period`}>${t('quality.period')}</label>
    <input id=${`${id}-period`} value=${text} size="12" aria-describedby=${`${id}-period-help`}
      aria-invalid=${valid ? 'false' : 'true'} onInput=${(e) => setText(e.currentTarget.value.trim())} />
    <button type="submit" id=${`${id}-apply`} disabled=${!valid}>${t('quality.apply')}</button>
    <span id=${`${id}-period-help`} class="muted">${valid ? t('quality.period_help') : t('quality.period_bad')}</span>
  </form>`;
}

function Method({ id, text }) {
  return html`<details class="method" id=${id}><summary>${t('quality.method')}</summary><p>${text}</p></details>`;
}

function Csv({ path, period }) {
  return html`<a class="button" href=${`${path}?${qs({ period, format: 'csv' })}`} download=${`dtm-${path.split('/').pop()}-${period}.csv`}>
    ${t('quality.csv')}</a>`;
}

/* The three pages' own links (reconciliation has no entry in the main navigation). */
function SubNav({ here }) {
  const pages = [['/quality', 'quality.nav'], ['/reconciliation', 'quality.recon_nav'], ['/rankings', 'quality.rank_nav']];
  return html`<nav class="subnav" aria-label=${t('quality.subnav')}><ul>${pages.map(([href, key]) => html`<li>
    <a href=${href} onClick=${onLink} aria-current=${href === here ? 'page' : undefined}>${t(key)}</a></li>`)}</ul></nav>`;
}

const pct = (v) => (v === null || v === undefined ? '—' : fmtPct(v));

export function Quality() {
  const [y, m] = vnNow();
  const [period, setPeriod] = useState(initialPeriod(`${y}-${m}`));
  const res = useResource(() => get(`/api/v1/quality?${qs({ period })}`), [period, getLang()]);
  return html`<${SubNav} here="/quality" /><h1>${t('quality.heading')}</h1>
    <p class="muted">${t('quality.intro')}</p>
    <section class="card">
      <${PeriodPicker} id="quality" period=${period} onApply=${setPeriod} />
      <${Resource} res=${res}>${(d) => d && html`
        <${Method} id="quality-method" text=${d.method} />
        <p><${Csv} path="/api/v1/quality" period=${period} /></p>
        ${!d.rows.length ? html`<p class="muted" id="quality-none">${t('quality.none')}</p>`
          : html`<div class="table-wrap"><table id="quality-table">
          <caption class="muted">${t('quality.caption', { period: d.period, schedule: t(`quality.kind_${d.config.default_schedule}`), hours: d.config.deadline_hours })}</caption>
          <thead><tr>
            <th scope="col">${t('quality.system')}</th><th scope="col">${t('quality.dataset')}</th>
            <th scope="col" class="num">${t('quality.completeness')}</th><th scope="col" class="num">${t('quality.timeliness')}</th>
            <th scope="col" class="num">${t('quality.submitted')}</th><th scope="col" class="num">${t('quality.validity')}</th>
            <th scope="col">${t('quality.top_errors')}</th><th scope="col" class="num">${t('quality.duplicate_rate')}</th>
            <th scope="col" class="num">${t('quality.mismatches')}</th>
            <th scope="col" class="num">${t('quality.fresh_avg')}</th><th scope="col" class="num">${t('quality.fresh_p95')}</th>
          </tr></thead>
          <tbody>${d.rows.map((r) => html`<tr data-system=${r.system} data-dataset=${r.dataset}>
            <td>${r.system}</td><td>${r.dataset}</td>
            <td class="num" data-k="completeness" title=${r.expected === null ? '' : t('quality.completeness_title', { received: r.received, expected: r.expected, missing: (r.missing_periods || []).join(' ') || '—' })}>${pct(r.completeness)}</td>
            <td class="num" data-k="timeliness" title=${r.received ? t('quality.timeliness_title', { on_time: r.on_time, received: r.received, late: (r.late_periods || []).join(' ') || '—' }) : ''}>${pct(r.timeliness)}</td>
            <td class="num">${fmtInt(r.submitted)}</td>
            <td class="num" data-k="validity">${pct(r.validity)}</td>
            <td data-k="top_errors">${r.top_errors.map((e) => `${e.code} (${fmtInt(e.count)})`).join(', ') || '—'}</td>
            <td class="num" data-k="duplicate_rate">${pct(r.duplicate_rate)}</td>
            <td class=${`num${r.reconciliation_mismatches ? ' mismatch' : ''}`} data-k="mismatches">${r.reconciliation_mismatches === null ? '—' : fmtInt(r.reconciliation_mismatches)}</td>
            <td class="num">${r.freshness_avg_ms === null ? '—' : fmtMs(r.freshness_avg_ms)}</td>
            <td class="num">${r.freshness_p95_ms === null ? '—' : fmtMs(r.freshness_p95_ms)}</td>
          </tr>`)}</tbody></table></div>`}`}
      <//>
    </section>`;
}

export function Reconciliation() {
  const [y, m] = vnNow();
  const [period, setPeriod] = useState(initialPeriod(`${y}-${m}`));
  const [onlyBad, setOnlyBad] = useState(false);
  const res = useResource(() => get(`/api/v1/reconciliation?${qs({ period })}`), [period, getLang()]);
  return html`<${SubNav} here="/reconciliation" /><h1>${t('quality.recon_heading')}</h1>
    <p class="muted">${t('quality.recon_intro')}</p>
    <section class="card">
      <${PeriodPicker} id="recon" period=${period} onApply=${setPeriod} />
      <${Resource} res=${res}>${(d) => d && html`
        <${Method} id="recon-method" text=${d.method} />
        <p id="recon-summary">${['matched', 'mismatched', 'missing_transactions', 'missing_report'].map((s) => html`
          <span class=${`badge recon-${s}`} data-status=${s}>${t(`quality.status_${s}`)}: ${fmtInt(d.summary[s])}</span> `)}
          <span class="muted">${t('quality.tolerance', { tol: fmtPct(d.tolerance), floor: fmtInt(d.floor) })}</span></p>
        <p><label><input type="checkbox" id="recon-only-bad" checked=${onlyBad} onChange=${(e) => setOnlyBad(e.currentTarget.checked)} />
          ${t('quality.only_bad')}</label> <${Csv} path="/api/v1/reconciliation" period=${period} /></p>
        ${!d.rows.length ? html`<p class="muted" id="recon-none">${t('quality.none')}</p>`
          : html`<div class="table-wrap"><table id="recon-table">
          <thead><tr>
            <th scope="col">${t('quality.system')}</th><th scope="col">${t('quality.service')}</th>
            <th scope="col">${t('quality.period')}</th>
            <th scope="col" class="num">${t('quality.reported')}</th><th scope="col" class="num">${t('quality.counted')}</th>
            <th scope="col" class="num">${t('quality.difference')}</th><th scope="col" class="num">${t('quality.relative')}</th>
            <th scope="col">${t('quality.status')}</th>
          </tr></thead>
          <tbody>${d.rows.filter((r) => !onlyBad || r.status !== 'matched').map((r) => html`<tr
              class=${r.status === 'matched' ? '' : 'mismatch'} data-system=${r.system} data-period=${r.period} data-status=${r.status}>
            <td>${r.system}</td><td>${r.service}</td><td>${r.period}</td>
            <td class="num">${r.reported === null ? '—' : fmtInt(r.reported)}</td>
            <td class="num">${fmtInt(r.counted)}</td>
            <td class="num" data-k="difference">${r.difference === null ? '—' : fmtInt(r.difference)}</td>
            <td class="num" data-k="relative">${r.relative === null ? '—' : fmtPct(r.relative)}</td>
            <td><span class=${`badge recon-${r.status}`}>${t(`quality.status_${r.status}`)}</span></td>
          </tr>`)}</tbody></table></div>`}`}
      <//>
    </section>`;
}

const CRITERIA = ['mandatory', 'usage', 'quality', 'security', 'efficiency', 'alerting'];

function Evidence({ row }) {
  return html`<div class="evidence" id=${`evidence-${row.system}`}>
    <table><thead><tr><th scope="col">${t('quality.criterion')}</th><th scope="col" class="num">${t('quality.score')}</th>
      <th scope="col" class="num">${t('quality.weight')}</th><th scope="col">${t('quality.formula')}</th><th scope="col">${t('quality.inputs')}</th></tr></thead>
    <tbody>${CRITERIA.map((k) => {
      const c = row.criteria[k];
      return html`<tr data-criterion=${k}><th scope="row">${t(`quality.crit_${k}`)}</th>
        <td class="num">${c.score === null ? '—' : fmtDec(c.score)}</td><td class="num">${fmtInt(c.weight)}</td>
        <td><code>${c.formula}</code></td>
        <td>${Object.entries(c.inputs).map(([n, v]) => html`<span class="input"><code>${n}</code>=${Array.isArray(v) ? v.join(' ') || '—' : v === null ? '—' : String(v)} </span>`)}</td></tr>`;
    })}</tbody></table></div>`;
}

export function Rankings() {
  const [y] = vnNow();
  const [period, setPeriod] = useState(initialPeriod(y));
  const [open, setOpen] = useState({});
  const res = useResource(() => get(`/api/v1/rankings?${qs({ period })}`), [period, getLang()]);
  const toggle = (code) => setOpen((o) => ({ ...o, [code]: !o[code] }));
  return html`<${SubNav} here="/rankings" /><h1>${t('quality.rank_heading')}</h1>
    <p class="muted">${t('quality.rank_intro')}</p>
    <section class="card">
      <${PeriodPicker} id="rank" period=${period} onApply=${setPeriod} />
      <${Resource} res=${res}>${(d) => d && html`
        <${Method} id="rank-method" text=${d.method} />
        <p class="muted" id="rank-weights">${t('quality.weights', {
          weights: CRITERIA.map((k) => `${t(`quality.crit_${k}`)} ${d.weights[k]}`).join(', '), a: d.class_a, b: d.class_b })}
          <${Csv} path="/api/v1/rankings" period=${period} /></p>
        ${!d.rows.length ? html`<p class="muted" id="rank-none">${t('quality.none')}</p>`
          : html`<div class="table-wrap"><table id="rank-table">
          <thead><tr><th scope="col" class="num">${t('quality.rank')}</th><th scope="col">${t('quality.system')}</th>
            <th scope="col" class="num">${t('quality.total')}</th><th scope="col">${t('quality.class')}</th>
            ${CRITERIA.map((k) => html`<th scope="col" class="num">${t(`quality.crit_${k}`)}</th>`)}
            <th scope="col">${t('quality.evidence')}</th></tr></thead>
          <tbody>${d.rows.map((r) => html`<tr data-system=${r.system} data-class=${r.class || ''}>
              <td class="num">${r.rank === null ? '—' : r.rank}</td><td title=${r.name}>${r.system}</td>
              <td class="num" data-k="total">${r.total === null ? '—' : fmtDec(r.total)}</td>
              <td>${r.class ? html`<span class=${`badge class-${r.class}`} data-k="class">${r.class}</span>`
                : html`<span class="muted">${t('quality.unranked')}</span>`}</td>
              ${CRITERIA.map((k) => html`<td class="num" data-k=${k}>${r.criteria[k].score === null ? '—' : fmtDec(r.criteria[k].score)}</td>`)}
              <td><button type="button" class="link" aria-expanded=${open[r.system] ? 'true' : 'false'}
                aria-controls=${`evidence-${r.system}`} data-evidence=${r.system} onClick=${() => toggle(r.system)}>
                ${open[r.system] ? t('quality.hide') : t('quality.show')}</button></td></tr>
            ${open[r.system] && html`<tr class="evidence-row"><td colspan=${5 + CRITERIA.length}><${Evidence} row=${r} /></td></tr>`}`)}
          </tbody></table></div>`}`}
      <//>
    </section>`;
}
