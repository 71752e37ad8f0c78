// pages/other.js — the smaller pages: alerts (list, acknowledge, resolve — operators and admins),
// the audit trail (auditors and admins), administration (accounts, registering a connected
// system with its credentials shown once, dataset definitions, the alert channels as configured —
// admins), and the
// "not allowed" and "not found" pages.
import { useState } from 'preact/hooks';
import { html } from '../lib/html.js';
import { fmtDateTime, fmtInt, t } from '../lib/i18n.js';
import { api, get, post, qs } from '../lib/api.js';
import { ROLES } from '../lib/access.js';
import { ErrorBox, Resource, useResource } from '../lib/ui.js';

export function Alerts() {
  const [state, setState] = useState('firing');
  const [error, setError] = useState(null);
  const res = useResource(() => get(`/api/v1/alerts?${qs({ state: state || null, limit: 200 })}`), [state], 15000);
  // a change (with the CSRF token, lib/api.js), then the list again
  const act = (a, what) => post(`/api/v1/alerts/${a.id}/${what}`).then(() => {
    setError(null);
    res.reload();
  }, setError);
  return html`<h1>${t('alerts.heading')}</h1>
    <div class="toolbar">
      <label for="alert-state">${t('alerts.filter')}</label>
      <select id="alert-state" value=${state} onChange=${(e) => setState(e.currentTarget.value)}>
        ${['firing', 'acknowledged', 'resolved'].map((s) => html`<option value=${s}>${t(`state.${s}`)}</option>`)}
        <option value="">${t('alerts.all')}</option>
      </select>
    </div>
    ${error && html`<${ErrorBox} error=${error} />`}
    <${Resource} res=${res}>${(d) => (!(d.alerts || []).length ? html`<p class="muted">${t('alerts.none')}</p>`
      : html`<div class="table-wrap"><table id="alerts-table">
        <thead><tr><th scope="col">${t('alerts.severity')}</th><th scope="col">${t('alerts.title')}</th>
          <th scope="col">${t('alerts.state')}</th><th scope="col">${t('alerts.first_seen')}</th>
          <th scope="col">${t('alerts.last_seen')}</th><th scope="col" class="num">${t('alerts.count')}</th><th scope="col"></th></tr></thead>
        <tbody>${d.alerts.map((a) => html`<tr data-rule=${a.rule} data-state=${a.state}>
          <td><span class=${`badge sev-${a.severity}`}>${t(`severity.${a.severity}`)}</span></td>
          <td>${a.title}</td><td>${t(`state.${a.state}`)}</td>
          <td>${fmtDateTime(a.first_seen)}</td><td>${fmtDateTime(a.last_seen)}</td><td class="num">${fmtInt(a.count)}</td>
          <td class="actions">
            ${a.state === 'firing' && html`<button type="button" class="ack" onClick=${() => act(a, 'ack')}>${t('alerts.ack')}</button>`}
            ${a.state !== 'resolved' && html`<button type="button" class="resolve" onClick=${() => act(a, 'resolve')}>${t('alerts.resolve')}</button>`}
          </td></tr>`)}</tbody></table></div>`)}<//>`;
}

export function Audit() {
  // the last day's entries (the API lists oldest first; shown newest first)
  const res = useResource(() => get(`/api/v1/audit?${qs({ from: new Date(Date.now() - 86400e3).toISOString(), limit: 1000 })}`), [], 0);
  return html`<h1>${t('audit.heading')}</h1>
    <${Resource} res=${res}>${(d) => (!(d.entries || []).length ? html`<p class="muted">${t('audit.none')}</p>`
      : html`<div class="table-wrap"><table id="audit-table">
        <thead><tr><th scope="col">${t('audit.time')}</th><th scope="col">${t('audit.actor')}</th><th scope="col">${t('audit.action')}</th>
          <th scope="col">${t('audit.target')}</th><th scope="col">${t('audit.ip')}</th></tr></thead>
        <tbody>${d.entries.slice().reverse().map((e) => html`<tr><td>${fmtDateTime(e.at)}</td><td>${e.actor}</td>
          <td><code>${e.action}</code></td><td>${e.target}</td><td>${e.source_ip}</td></tr>`)}</tbody></table></div>`)}<//>`;
}

/* Administration: the accounts (GET /api/v1/users), a new account (POST: its first password is
 * shown once) and disabling or enabling one (PATCH; a disabled account's sessions end). */
export function Admin({ me }) {
  const res = useResource(() => get('/api/v1/users'), [], 0);
  const [created, setCreated] = useState(null);
  const [error, setError] = useState(null);
  async function add(e) {
    e.preventDefault();
    const form = e.currentTarget;
    const f = new FormData(form);
    setError(null);
    setCreated(null);
    try {
      setCreated(await post('/api/v1/users', { username: f.get('username').trim(), role: f.get('role') }));
      form.reset();
      res.reload();
    } catch (err) {
      setError(err);
    }
  }
  const toggle = (u) => api('PATCH', `/api/v1/users/${encodeURIComponent(u.username)}`, { disabled: !u.disabled })
    .then(() => res.reload(), setError);
  return html`<h1>${t('admin.heading')}</h1>
    <section class="card" aria-labelledby="users-heading">
      <h2 id="users-heading">${t('admin.users')}</h2>
      ${error && html`<${ErrorBox} error=${error} />`}
      ${created && html`<p class="notice" role="status" id="new-user">${t('admin.created_once', { user: created.username })}
        <code id="new-password">${created.password}</code></p>`}
      <${Resource} res=${res}>${(d) => html`<div class="table-wrap"><table id="users-table">
        <thead><tr><th scope="col">${t('admin.username')}</th><th scope="col">${t('admin.role')}</th><th scope="col">${t('admin.mfa')}</th>
          <th scope="col">${t('admin.disabled')}</th><th scope="col">${t('admin.created')}</th><th scope="col"></th></tr></thead>
        <tbody>${(d.users || []).map((u) => html`<tr><td>${u.username}</td><td>${t(`role.${u.role}`)}</td>
          <td>${t(u.mfa_enrolled ? 'common.yes' : 'common.no')}</td><td>${t(u.disabled ? 'common.yes' : 'common.no')}</td>
          <td>${fmtDateTime(u.created_at)}</td>
          <td class="actions">${u.username !== me.username && html`<button type="button" onClick=${() => toggle(u)}>
            ${t(u.disabled ? 'admin.enable' : 'admin.disable')}</button>`}</td></tr>`)}</tbody></table></div>`}<//>
      <form class="row add-user" onSubmit=${add} aria-labelledby="add-user-heading">
        <h3 id="add-user-heading" class="sr-only">${t('admin.add')}</h3>
        <div class="field"><label for="new-username">${t('admin.username')}</label>
          <input id="new-username" name="username" required maxlength="64" autocomplete="off" /></div>
        <div class="field"><label for="new-role">${t('admin.role')}</label>
          <select id="new-role" name="role">${ROLES.map((r) => html`<option value=${r} selected=${r === 'analyst'}>${t(`role.${r}`)}</option>`)}</select></div>
        <div class="field actions-end"><button type="submit" class="primary" id="add-user">${t('admin.add')}</button></div>
      </form>
    </section>
    <${NewSystem} />
    <${Datasets} />
    <${Channels} />`;
}

/* Dataset definitions (CONTRACT §4): the catalogue, and a JSON editor that PUTs a definition —
 * a new dataset (from the definition of an existing one as a template) or a new version of one
 * defined here. Built-ins are fixed. */
function Datasets() {
  const res = useResource(() => get('/api/v1/datasets'), []);
  const [text, setText] = useState('');
  const [saved, setSaved] = useState(null);
  const [error, setError] = useState(null);
  const load = (code, asNew) => get(`/api/v1/datasets/${encodeURIComponent(code)}`).then((d) => {
    if (asNew) {
      d.code = `${d.code}_copy`;
      d.version = 1;
    } else {
      d.version += 1;
    }
    setSaved(null);
    setError(null);
    setText(JSON.stringify(d, null, 2));
  }, setError);
  async function save(e) {
    e.preventDefault();
    setError(null);
    setSaved(null);
    let d;
    try {
      d = JSON.parse(text);
    } catch (err) {
      setError(new Error(t('admin.ds_not_json', { detail: err.message })));
      return;
    }
    try {
      setSaved(await api('PUT', `/api/v1/datasets/${encodeURIComponent(d.code || '')}`, d));
      res.reload();
    } catch (err) {
      setError(err);
    }
  }
  return html`<section class="card" aria-labelledby="datasets-heading">
    <h2 id="datasets-heading">${t('admin.datasets')}</h2>
    <${Resource} res=${res}>${(d) => html`<div class="table-wrap"><table id="datasets-table">
      <thead><tr><th scope="col">${t('systems.code')}</th><th scope="col">${t('admin.ds_version')}</th>
        <th scope="col">${t('admin.ds_kind')}</th><th scope="col"></th></tr></thead>
      <tbody>${(d.datasets || []).map((x) => html`<tr><td>${x.code}</td><td>${x.version}</td>
        <td>${t(x.builtin ? 'admin.ds_builtin' : 'admin.ds_custom')}</td>
        <td class="actions"><button type="button" onClick=${() => load(x.code, true)}>${t('admin.ds_template')}</button>
          ${!x.builtin && html` <button type="button" onClick=${() => load(x.code, false)}>${t('admin.ds_edit')}</button>`}</td></tr>`)}
      </tbody></table></div>`}<//>
    ${text && html`<form id="dataset-form" onSubmit=${save}>
      <label for="dataset-json">${t('admin.ds_json')}</label>
      <textarea id="dataset-json" rows="16" spellcheck="false" value=${text} onInput=${(e) => setText(e.target.value)}></textarea>
      <div class="actions-end"><button type="submit" class="primary" id="dataset-save">${t('admin.ds_save')}</button></div>
    </form>`}
    ${saved && html`<p class="notice" role="status" id="dataset-saved">${t('admin.ds_saved', { code: saved.code, version: saved.version })}</p>`}
    ${error && html`<${ErrorBox} error=${error} />`}
  </section>`;
}

/* Registers a connected system (POST /api/v1/systems): its API key and OAuth client secret are
 * shown this once. */
function NewSystem() {
  const [created, setCreated] = useState(null);
  const [error, setError] = useState(null);
  async function add(e) {
    e.preventDefault();
    const form = e.currentTarget;
    const f = new FormData(form);
    setError(null);
    setCreated(null);
    try {
      setCreated(await post('/api/v1/systems', {
        code: f.get('code').trim(), name: f.get('name').trim(), org: f.get('org').trim(),
        role: f.get('role'), tier: f.get('tier') || null,
      }));
      form.reset();
    } catch (err) {
      setError(err);
    }
  }
  return html`<section class="card" aria-labelledby="new-system-heading">
    <h2 id="new-system-heading">${t('admin.new_system')}</h2>
    ${error && html`<${ErrorBox} error=${error} />`}
    ${created && html`<div class="notice" role="status" id="new-system">
      <p>${t('admin.system_created_once', { code: created.system_code })}</p>
      <dl><dt>api_key</dt><dd><code id="new-system-key">${created.api_key}</code></dd>
        <dt>client_id</dt><dd><code>${created.client_id}</code></dd>
        <dt>client_secret</dt><dd><code id="new-system-secret">${created.client_secret}</code></dd></dl></div>`}
    <form class="row" onSubmit=${add}>
      <div class="field"><label for="sys-code">${t('systems.code')}</label>
        <input id="sys-code" name="code" required maxlength="32" autocomplete="off" /></div>
      <div class="field"><label for="sys-name">${t('admin.system_name')}</label>
        <input id="sys-name" name="name" required maxlength="255" /></div>
      <div class="field"><label for="sys-org">${t('admin.system_org')}</label>
        <input id="sys-org" name="org" maxlength="255" /></div>
      <div class="field"><label for="sys-role">${t('admin.role')}</label>
        <select id="sys-role" name="role">${['source', 'aggregator', 'consumer'].map((r) => html`<option value=${r}>${r}</option>`)}</select></div>
      <div class="field"><label for="sys-tier">${t('admin.tier')}</label>
        <select id="sys-tier" name="tier"><option value="">—</option>${['bronze', 'silver', 'gold'].map((x) => html`<option value=${x}>${x}</option>`)}</select></div>
      <div class="field actions-end"><button type="submit" class="primary" id="add-system">${t('admin.register')}</button></div>
    </form>
  </section>`;
}

/* The alert channels of dtm.conf (GET /api/v1/alert-channels): read only, no secret. */
function Channels() {
  const res = useResource(() => get('/api/v1/alert-channels'), []);
  return html`<section class="card" aria-labelledby="channels-heading">
    <h2 id="channels-heading">${t('admin.channels')}</h2>
    <p class="muted">${t('admin.channels_intro')}</p>
    <${Resource} res=${res}>${(d) => ((d.channels || []).length ? html`<div class="table-wrap"><table id="channels-table">
      <thead><tr><th scope="col">${t('admin.channel')}</th><th scope="col">${t('admin.channel_type')}</th>
        <th scope="col">${t('admin.channel_target')}</th><th scope="col">${t('admin.channel_min')}</th>
        <th scope="col">${t('admin.channel_secret')}</th></tr></thead>
      <tbody>${d.channels.map((c) => html`<tr><td>${c.name}</td><td>${c.type}</td><td><code>${c.target}</code></td>
        <td>${c.min_severity}</td><td>${t(`admin.secret_${c.secret}`)}</td></tr>`)}</tbody></table></div>`
      : html`<p class="muted" id="no-channels">${t('admin.no_channels')}</p>`)}<//>
  </section>`;
}

export function Forbidden({ me }) {
  return html`<section class="card" role="alert" id="forbidden">
    <h1>${t('forbidden.heading')}</h1>
    <p>${t('forbidden.text', { role: t(`role.${me.role}`) })}</p>
  </section>`;
}

export function NotFound({ path }) {
  return html`<section class="card" id="not-found">
    <h1>${t('notfound.heading')}</h1>
    <p>${t('notfound.text', { path })}</p>
  </section>`;
}
