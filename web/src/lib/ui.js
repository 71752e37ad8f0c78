// lib/ui.js — small shared pieces of the pages: loading and error states, a status badge,
// a KPI card, a hook that loads (and optionally re-loads periodically) an API resource.
import { useEffect, useState, useCallback } from 'preact/hooks';
import { html } from './html.js';
import { t } from './i18n.js';

/* Loads fetcher() now and every `every` ms (0 = once); re-runs when deps change. Returns
 * {data, error, loading, reload}. */
export function useResource(fetcher, deps, every = 0) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const load = useCallback(() => {
    let live = true;
    fetcher().then(
      (data) => live && setState({ data, error: null, loading: false }),
      (error) => live && setState((s) => ({ data: s.data, error, loading: false })),
    );
    return () => (live = false);
  }, deps);
  useEffect(() => {
    setState((s) => ({ ...s, loading: true }));
    let cancel = load();
    if (!every) return () => cancel();
    const id = setInterval(() => {
      cancel();
      cancel = load();
    }, every);
    return () => {
      clearInterval(id);
      cancel();
    };
  }, [load, every]);
  return { ...state, reload: load };
}

export function Loading() {
  return html`<p class="muted" role="status">${t('common.loading')}</p>`;
}

export function ErrorBox({ error, retry }) {
  return html`<div class="error" role="alert">
    ${t('common.error', { detail: error.message })}
    ${retry && html` <button type="button" class="link" onClick=${retry}>${t('action.retry')}</button>`}
  </div>`;
}

/* Loading / error / content, for a useResource result. */
export function Resource({ res, children }) {
  if (res.data == null && res.error) return html`<${ErrorBox} error=${res.error} retry=${res.reload} />`;
  if (res.data == null) return html`<${Loading} />`;
  return html`${res.error && html`<${ErrorBox} error=${res.error} retry=${res.reload} />`}${children(res.data)}`;
}

export function StatusBadge({ status }) {
  return html`<span class=${`badge status-${status}`}>${t(`status.${status}`)}</span>`;
}

export function Kpi({ id, label, value, detail }) {
  return html`<div class="kpi">
    <div class="kpi-label" id=${`${id}-label`}>${label}</div>
    <div class="kpi-value" id=${id} aria-labelledby=${`${id}-label`}>${value}</div>
    ${detail && html`<div class="kpi-detail">${detail}</div>`}
  </div>`;
}
