// pages/batches.js — batch imports (operators and admins): sending a file on behalf of a
// connected system (POST /api/v1/batches?dataset=D&system=C; drag and drop or a file picker),
// with a progress bar for the upload and then for the processing, its counts and the download
// of its rejected rows; and the latest batches of every system (GET /api/v1/batches) with their
// state, counts and a progress bar, refreshed every 2 s.
import { useEffect, useRef, useState } from 'preact/hooks';
import { html } from '../lib/html.js';
import { fmtDateTime, fmtInt, fmtPct, t } from '../lib/i18n.js';
import { get, upload } from '../lib/api.js';
import { ErrorBox, Resource, useResource } from '../lib/ui.js';
import { onLink } from '../lib/router.js';

export function BatchTable({ batches }) {
  return html`<div class="table-wrap"><table class="batches">
    <thead><tr><th scope="col">${t('batches.created')}</th><th scope="col">${t('systems.code')}</th><th scope="col">${t('explorer.dataset')}</th>
      <th scope="col">${t('batches.status')}</th><th scope="col">${t('batches.progress')}</th>
      <th scope="col" class="num">${t('batches.accepted')}</th><th scope="col" class="num">${t('batches.duplicates')}</th>
      <th scope="col" class="num">${t('batches.rejected')}</th></tr></thead>
    <tbody>${batches.map((b) => html`<tr>
      <td>${fmtDateTime(b.created_at)}</td>
      <td><a href=${`/systems/${encodeURIComponent(b.system_code)}`} onClick=${onLink}>${b.system_code}</a></td>
      <td>${b.dataset}</td>
      <td><span class=${`badge batch-${b.status}`}>${t(`batch.${b.status}`)}</span></td>
      <td><progress max="1" value=${b.progress ?? 0} aria-label=${t('batches.progress')}></progress> ${fmtPct(b.progress)}</td>
      <td class="num">${fmtInt(b.accepted)}</td><td class="num">${fmtInt(b.duplicates)}</td><td class="num">${fmtInt(b.rejected)}</td>
    </tr>`)}</tbody></table></div>`;
}

/* The request headers of a file, from its name: the decoder's type and, for .gz, the encoding. */
function fileHeaders(name) {
  const lower = name.toLowerCase();
  const gz = lower.endsWith('.gz');
  const base = gz ? lower.slice(0, -3) : lower;
  const type = base.endsWith('.csv') ? 'text/csv'
    : base.endsWith('.xml') ? 'application/xml'
      : base.endsWith('.ndjson') || base.endsWith('.jsonl') ? 'application/x-ndjson'
        : 'application/json';
  return gz ? { 'Content-Type': type, 'Content-Encoding': 'gzip' } : { 'Content-Type': type };
}

const FINAL = ['done', 'failed', 'cancelled'];

function Upload({ onSent }) {
  const systems = useResource(() => get('/api/v1/systems'), []);
  const datasets = useResource(() => get('/api/v1/datasets'), []);
  const [system, setSystem] = useState('');
  const [dataset, setDataset] = useState('transactions');
  const [file, setFile] = useState(null);
  const [over, setOver] = useState(false);
  const [sent, setSent] = useState(null); // {loaded, total}
  const [batch, setBatch] = useState(null);
  const [error, setError] = useState(null);
  const timer = useRef(null);
  useEffect(() => () => clearTimeout(timer.current), []);
  const senders = ((systems.data && systems.data.systems) || []).filter((s) => s.role !== 'consumer');
  if (!system && senders.length) setSystem(senders[0].code);

  const follow = (id) => {
    get(`/api/v1/batches/${encodeURIComponent(id)}`).then((b) => {
      setBatch(b);
      if (!FINAL.includes(b.status)) timer.current = setTimeout(() => follow(id), 500);
      else onSent();
    }, setError);
  };
  const send = (e) => {
    e.preventDefault();
    if (!file || !system) return;
    setError(null);
    setBatch(null);
    setSent({ loaded: 0, total: file.size });
    const q = new URLSearchParams({ dataset, system });
    upload(`/api/v1/batches?${q}`, file, fileHeaders(file.name), (loaded, total) => setSent({ loaded, total }))
      .then((b) => {
        setSent({ loaded: file.size, total: file.size });
        setBatch(b);
        onSent();
        follow(b.id);
      }, (err) => {
        setSent(null);
        setError(err);
      });
  };
  const drop = (e) => {
    e.preventDefault();
    setOver(false);
    if (e.dataTransfer.files.length) setFile(e.dataTransfer.files[0]);
  };
  const busy = sent && !(batch && FINAL.includes(batch.status)) && !error;
  return html`<section class="card" aria-labelledby="upload-heading">
    <h2 id="upload-heading">${t('upload.heading')}</h2>
    <form id="batch-upload" onSubmit=${send}>
      <div class="form-row">
        <label for="upload-system">${t('upload.system')}</label>
        <select id="upload-system" value=${system} onChange=${(e) => setSystem(e.target.value)} required>
          ${senders.map((s) => html`<option value=${s.code}>${s.code} — ${s.name}</option>`)}
        </select>
        <label for="upload-dataset">${t('explorer.dataset')}</label>
        <select id="upload-dataset" value=${dataset} onChange=${(e) => setDataset(e.target.value)}>
          ${((datasets.data && datasets.data.datasets) || []).map((d) => html`<option value=${d.code}>${d.code}</option>`)}
        </select>
      </div>
      <div id="drop-zone" class=${`drop-zone${over ? ' over' : ''}`}
        onDragOver=${(e) => { e.preventDefault(); setOver(true); }}
        onDragLeave=${() => setOver(false)} onDrop=${drop}>
        <label for="upload-file">${t('upload.drop')}</label>
        <input id="upload-file" type="file" accept=".json,.ndjson,.jsonl,.csv,.xml,.gz"
          onChange=${(e) => setFile(e.target.files[0] || null)} />
        ${file && html`<p id="upload-name">${file.name} (${fmtInt(file.size)} B)</p>`}
      </div>
      <button id="upload-send" type="submit" disabled=${!file || !system || busy}>${t('upload.send')}</button>
    </form>
    ${sent && html`<p><label for="upload-progress">${t('upload.sending')}</label>${' '}
      <progress id="upload-progress" max=${sent.total || 1} value=${sent.loaded}></progress>
      ${fmtPct(sent.total ? sent.loaded / sent.total : 0)}</p>`}
    ${batch && html`<div id="upload-result" role="status">
      <p><label for="batch-progress">${t('upload.processing')}</label>${' '}
        <progress id="batch-progress" max="1" value=${batch.progress ?? 0}></progress> ${fmtPct(batch.progress)}${' '}
        <span id="upload-status" class=${`badge batch-${batch.status}`}>${t(`batch.${batch.status}`)}</span></p>
      <p>${t('batches.accepted')}: <strong id="upload-accepted">${fmtInt(batch.accepted)}</strong>${' · '}
        ${t('batches.duplicates')}: ${fmtInt(batch.duplicates)}${' · '}
        ${t('batches.rejected')}: <strong id="upload-rejected">${fmtInt(batch.rejected)}</strong></p>
      ${batch.rejected > 0 && FINAL.includes(batch.status) && html`<p><a id="upload-errors" download
        href=${`/api/v1/batches/${encodeURIComponent(batch.id)}/errors?format=csv`}>${t('upload.rejected_rows')}</a></p>`}
    </div>`}
    ${error && html`<${ErrorBox} error=${error} />`}
  </section>`;
}

export function Batches() {
  const res = useResource(() => get('/api/v1/batches?limit=100'), [], 2000);
  return html`<h1>${t('batches.heading')}</h1>
    <p class="muted">${t('batches.intro')}</p>
    <${Upload} onSent=${res.reload} />
    <${Resource} res=${res}>${(d) => ((d.batches || []).length
      ? html`<${BatchTable} batches=${d.batches} />`
      : html`<p class="muted">${t('batches.none')}</p>`)}<//>`;
}
