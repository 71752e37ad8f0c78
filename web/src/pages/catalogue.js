// pages/catalogue.js — the public data catalogue (issue 8, G2): every dataset of GET
// /api/v1/datasets with its description, scope, managing agency, classification, access
// conditions, update frequency, keywords and current quality summary (receipts of the last 30
// days), in Vietnamese or English. Readable without signing in (main.js marks it public); links
// to the API reference (/docs) and the DCAT JSON-LD export for data portals.
import { html } from '../lib/html.js';
import { fmtDateTime, fmtInt, fmtPct, getLang, t } from '../lib/i18n.js';
import { get } from '../lib/api.js';
import { Resource, useResource } from '../lib/ui.js';

/* The text of an {vi, en} object in the current language (the other one when it is missing). */
function txt(o) {
  if (!o) return '';
  const l = getLang();
  return o[l] || o[l === 'vi' ? 'en' : 'vi'] || '';
}

function Quality({ q }) {
  if (!q) return html`<span class="muted">${t('common.none')}</span>`;
  return html`<dl class="catalogue-quality">
    <dt>${t('catalogue.q.submitted', { days: q.window_days })}</dt><dd>${fmtInt(q.submitted)}</dd>
    <dt>${t('catalogue.q.accepted')}</dt><dd>${fmtPct(q.accepted_share)}</dd>
    <dt>${t('catalogue.q.rejected')}</dt><dd>${fmtPct(q.rejected_share)}</dd>
    <dt>${t('catalogue.q.duplicates')}</dt><dd>${fmtPct(q.duplicate_share)}</dd>
    <dt>${t('catalogue.q.systems')}</dt><dd>${fmtInt(q.systems_reporting)}</dd>
    <dt>${t('catalogue.q.last')}</dt><dd>${q.last_received ? fmtDateTime(q.last_received) : t('catalogue.q.never')}</dd>
  </dl>`;
}

function Dataset({ d }) {
  const field = (key, value) => html`<dt>${t(key)}</dt><dd>${value || t('common.none')}</dd>`;
  return html`<article class="card catalogue-item" id=${`dataset-${d.code}`} data-code=${d.code}>
    <h2>${txt(d.title)} <code class="muted">${d.code}</code></h2>
    <p>${txt(d.description)}</p>
    <dl class="catalogue-fields">
      ${field('catalogue.scope', txt(d.scope))}
      ${field('catalogue.agency', d.agency)}
      ${field('catalogue.classification', d.classification && t(`catalogue.class.${d.classification}`))}
      ${field('catalogue.access', txt(d.access))}
      ${field('catalogue.frequency', d.update_frequency && t(`catalogue.freq.${d.update_frequency}`))}
      ${field('catalogue.keywords', txt(d.keywords))}
      ${field('catalogue.version', String(d.version))}
    </dl>
    <h3>${t('catalogue.quality')}</h3>
    <${Quality} q=${d.quality} />
    <p class="catalogue-links">
      <a href=${`/api/v1/datasets/${encodeURIComponent(d.code)}`}>${t('catalogue.definition')}</a>
    </p>
  </article>`;
}

export function Catalogue() {
  const res = useResource(() => get('/api/v1/datasets'), [], 60000);
  return html`<section class="page catalogue" aria-labelledby="catalogue-title">
    <h1 id="catalogue-title">${t('catalogue.title')}</h1>
    <p class="muted">${t('catalogue.intro')}</p>
    <p class="catalogue-links">
      <a href=${`/docs?lang=${getLang()}`}>${t('catalogue.docs')}</a> ·
      <a href="/api/v1/catalog.jsonld" type="application/ld+json">${t('catalogue.jsonld')}</a>
    </p>
    <${Resource} res=${res}>${(data) => html`
      <p class="muted" id="catalogue-count">${t('catalogue.count', { n: data.datasets.length })}</p>
      ${data.datasets.map((d) => html`<${Dataset} key=${d.code} d=${d} />`)}
      <p class="muted small">${t('catalogue.q.method')}</p>`}
    <//>
  </section>`;
}
