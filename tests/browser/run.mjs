// tests/browser/run.mjs — browser tests of the dashboard (issue 6), run by scripts/test.sh:
//   DTM_BIN=build/dtm node tests/browser/run.mjs [ARTIFACTS_DIR]
// A real `dtm` on a fresh data dir (init, a source system, an analyst from the CLI), driven by
// Playwright (playwright-core from web/node_modules) with Debian's headless chromium — no browser
// download, no internet. Signs in with a TOTP computed by `oathtool`, enrols TOTP through the UI,
// watches the live overview move after an ingest, switches language (translated labels, vi-VN
// numbers), runs an explorer query and downloads its Excel file, follows a batch to done, drops a
// file for a system and follows its upload and processing to done (rejected rows downloaded), rotates
// and revokes a system's key, checks that an analyst cannot open admin pages, that an ended
// session goes back to the sign-in page, and the main pages with axe-core (WCAG 2.1 A/AA).
// Screenshots of every page go to ARTIFACTS_DIR (default: the binary's directory/
// browser-artifacts). Exit status 0 when every test passed.
import { execFileSync, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { appendFileSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');
const require = createRequire(join(repo, 'web', 'package.json'));
const { chromium } = require('playwright-core');

const DTM = resolve(process.env.DTM_BIN || join(repo, 'build', 'dtm'));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ART = resolve(process.argv[2] || join(dirname(DTM), 'browser-artifacts'));
const T0 = Date.now();

// ---- the server

const dtm = (...args) => execFileSync(DTM, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const kv = (text) => Object.fromEntries(text.split('\n').filter((l) => l.includes(': ')).map((l) => [l.slice(0, l.indexOf(': ')), l.slice(l.indexOf(': ') + 2)]));
const totp = (secret, offset = 0) => execFileSync('oathtool', ['--totp', '-b', secret, ...(offset ? ['-N', `now + ${offset} seconds`] : [])], { encoding: 'utf8' }).trim();

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

async function startServer() {
  const root = mkdtempSync(join(tmpdir(), 'dtm-browser-'));
  const dataDir = join(root, 'data');
  const admin = kv(dtm('init', '--data-dir', dataDir));
  const sys = kv(dtm('system', 'add', '--data-dir', dataDir, '--code', 'BROWSER1', '--name', 'Cổng dịch vụ công thử nghiệm', '--org', 'Bộ Thử nghiệm'));
  const analyst = JSON.parse(dtm('user', 'add', '--data-dir', dataDir, '--username', 'analyst1', '--role', 'analyst', '--json'));
  // alerts checked every second, and one to act on: a vulnerability past its deadline
  appendFileSync(join(dataDir, 'dtm.conf'), '\n[alert]\ncheck_interval = 1\n');
  dtm('vuln', 'add', '--data-dir', dataDir, '--title', 'Thư viện XML lỗi thời', '--severity', 'high',
    '--found', '2026-01-05', '--deadline', '2026-02-01');
  const port = await freePort();
  const log = openSync(join(ART, 'serve.stderr.log'), 'w');
  const proc = spawn(DTM, ['serve', '--data-dir', dataDir, '--http', `127.0.0.1:${port}`, '--https', 'off'], { stdio: ['ignore', log, log] });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(url + '/healthz')).ok) break;
    } catch {
      /* not listening yet */
    }
    if (i > 200 || proc.exitCode !== null) throw new Error('dtm serve did not start; see serve.stderr.log');
    await new Promise((r) => setTimeout(r, 50));
  }
  return { root, url, proc, admin, apiKey: sys.api_key, analyst };
}

let seq = 0;
/* Ingests n transactions of now through the API (X-API-Key); returns the answer. */
async function ingest(srv, n, failed = 0) {
  const now = new Date().toISOString();
  const recs = [];
  for (let i = 0; i < n; i++) {
    const bad = i < failed;
    recs.push({ txn_id: `BR-${Date.now()}-${seq++}`, service_code: 'SV01', channel: 'web', status: bad ? 'failed' : 'success',
      ...(bad ? { error_code: 'E_TIMEOUT', error_reason: 'timeout' } : {}), started_at: now, response_ms: 100 + (i % 400) });
  }
  const r = await fetch(srv.url + '/api/v1/ingest/transactions', {
    method: 'POST', headers: { 'Content-Type': 'application/json', 'X-API-Key': srv.apiKey }, body: JSON.stringify(recs),
  });
  if (r.status !== 200) throw new Error(`ingest answered ${r.status}: ${await r.text()}`);
  return r.json();
}

// ---- a tiny test harness

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

const tests = [];
const test = (name, fn) => tests.push({ name, fn });

async function shot(page, name) {
  await page.screenshot({ path: join(ART, `${name}.png`), fullPage: true });
}

/* Signs in through the form; totpCode optional. */
async function signIn(page, user, password, totpCode) {
  await page.fill('#username', user);
  await page.fill('#password', password);
  if (totpCode) await page.fill('#totp', totpCode);
  await page.click('button[type=submit]');
}

// ---- the tests (in order: they share one server and the admin's browser context)

const S = {}; // shared state

test('sign-in page is served under a strict CSP and in Vietnamese by default', async ({ page, srv }) => {
  const resp = await page.goto(srv.url + '/');
  const csp = resp.headers()['content-security-policy'] || '';
  assert(csp.includes("script-src 'self'") && !csp.includes('unsafe-inline'), `CSP: ${csp}`);
  await page.waitForSelector('#username');
  assert((await page.textContent('#login-heading')) === 'Đăng nhập', 'the sign-in heading is Vietnamese');
  assert((await page.getAttribute('html', 'lang')) === 'vi', 'html lang is vi');
  await shot(page, '01-login');
});

test('first sign-in of the admin enrols TOTP with the QR code, then signs in with a TOTP', async ({ page, srv }) => {
  await signIn(page, srv.admin.admin_username, srv.admin.admin_password);
  await page.waitForSelector('#mfa-secret');
  const qr = await page.waitForSelector('img.qr');
  assert(await qr.evaluate((img) => img.complete && img.naturalWidth > 0), 'the QR code image loaded');
  assert((await page.textContent('#mfa-uri')).startsWith('otpauth://totp/'), 'the otpauth URI is shown');
  await shot(page, '02-mfa-enrol');
  S.secret = (await page.textContent('#mfa-secret')).trim();
  await page.fill('#mfa-code', totp(S.secret));
  await page.click('form button[type=submit]');
  await page.waitForSelector('#recovery-codes li');
  assert((await page.$$('#recovery-codes li')).length === 10, 'ten recovery codes');
  await shot(page, '03-mfa-recovery-codes');
  await page.click('button.primary');
  await page.waitForSelector('#kpi-today');
  // sign out, and in again with the password and a TOTP (the next step: the current one is used)
  await page.click('#logout');
  await page.waitForSelector('#username');
  assert((await page.textContent('.notice')).includes('đăng xuất'), 'signed-out notice');
  await signIn(page, srv.admin.admin_username, srv.admin.admin_password);
  await page.waitForSelector('#login-error');
  await signIn(page, srv.admin.admin_username, srv.admin.admin_password, totp(S.secret, 30));
  await page.waitForSelector('#kpi-today');
  assert((await page.textContent('#who')).includes(srv.admin.admin_username), 'the header names the user');
});

test('the overview count moves within 2 s of an ingest (live feed)', async ({ page, srv }) => {
  await page.waitForFunction(() => /\d/.test(document.querySelector('#kpi-today').textContent));
  const before = await page.textContent('#kpi-today');
  const t0 = Date.now();
  await ingest(srv, 1);
  await page.waitForFunction((b) => document.querySelector('#kpi-today').textContent !== b, before, { timeout: 2000 });
  S.liveMs = Date.now() - t0;
  const after = await page.textContent('#kpi-today');
  assert(Number(after.replace(/\D/g, '')) === Number(before.replace(/\D/g, '')) + 1, `count ${before} → ${after}`);
});

test('overview in Vietnamese: vi-VN numbers (1.234) and the chart', async ({ page, srv }) => {
  await ingest(srv, 1500, 40);
  await page.waitForFunction(() => /^\d{1,3}(\.\d{3})+$/.test(document.querySelector('#kpi-today').textContent), null, { timeout: 3000 });
  const n = await page.textContent('#kpi-today');
  assert(/^1\.50\d$/.test(n), `vi-VN grouping with dots: ${n}`);
  assert((await page.textContent('#kpi-today-label')) === 'Giao dịch hôm nay', 'KPI label in Vietnamese');
  await page.reload(); // the chart and the failure reasons reload every 60 s / 30 s: now at once
  await page.waitForSelector('.chart canvas');
  await page.click('.segmented button:nth-child(2)'); // 7 days
  await page.waitForSelector('.segmented button:nth-child(2)[aria-pressed=true]');
  await page.waitForSelector('.chart canvas');
  await page.waitForFunction(() => document.querySelector('#reasons-heading') && document.body.textContent.includes('E_TIMEOUT'));
  await shot(page, '04-overview-vi');
});

test('switching to English translates labels and numbers, and is remembered', async ({ page }) => {
  await page.selectOption('#lang-select', 'en');
  await page.waitForFunction(() => document.querySelector('#kpi-today-label').textContent === 'Transactions today');
  assert((await page.getAttribute('html', 'lang')) === 'en', 'html lang is en');
  const n = await page.textContent('#kpi-today');
  assert(/^1,50\d$/.test(n), `English grouping with commas: ${n}`);
  assert((await page.textContent('nav a[aria-current=page]')) === 'Overview', 'navigation in English');
  await shot(page, '05-overview-en');
  await page.reload();
  await page.waitForSelector('#kpi-today-label');
  assert((await page.textContent('#kpi-today-label')) === 'Transactions today', 'English remembered after a reload');
  await page.selectOption('#lang-select', 'vi');
  await page.waitForFunction(() => document.querySelector('#kpi-today-label').textContent === 'Giao dịch hôm nay');
});

test('systems: searchable, sortable table and a system page with its hourly series', async ({ page }) => {
  await page.click('nav a[href="/systems"]');
  await page.waitForSelector('#systems-table tbody tr td a');
  assert(page.url().endsWith('/systems'), 'history routing: /systems');
  await page.fill('#system-search', 'zzz-none');
  await page.waitForFunction(() => document.querySelectorAll('#systems-table tbody tr td a').length === 0);
  await page.fill('#system-search', 'browser1');
  await page.waitForSelector('#systems-table tbody tr td a');
  await page.click('#systems-table th:nth-child(6) button'); // by transactions today
  await page.waitForSelector('#systems-table th:nth-child(6)[aria-sort=ascending]');
  await shot(page, '06-systems');
  await page.click('#systems-table tbody a');
  await page.waitForSelector('#hourly-heading');
  await page.waitForSelector('.chart canvas');
  assert(page.url().endsWith('/systems/BROWSER1'), 'system page URL');
  await page.waitForFunction(() => /^1\.50\d$/.test(document.querySelector('#sys-today').textContent));
  await shot(page, '07-system');
  // a deep link opens straight on the page (the server answers index.html)
  await page.goto(page.url());
  await page.waitForSelector('#hourly-heading');
});

test('explorer: a query held in the address, its chart and table, the Excel download', async ({ page, srv }) => {
  await page.click('nav a[href="/explorer"]');
  await page.waitForSelector('#ex-group option[value=system_code]');
  await page.selectOption('#ex-metrics', ['count', 'rate:status=failed']);
  await page.selectOption('#ex-group', ['status']);
  await page.selectOption('#ex-interval', 'hour');
  await page.fill('#ex-from', new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Ho_Chi_Minh' }).format(new Date()));
  await page.fill('#ex-where', 'system_code:eq:BROWSER1');
  await page.click('#ex-run');
  await page.waitForSelector('#explorer-table tbody tr');
  const url = new URL(page.url());
  assert(url.pathname === '/explorer' && url.searchParams.get('metrics') === 'count,rate:status=failed' &&
    url.searchParams.get('group_by') === 'status' && url.searchParams.get('where') === 'system_code:eq:BROWSER1', `query in the address: ${url}`);
  const text = await page.textContent('#explorer-table');
  assert(text.includes('success') && text.includes('failed'), 'grouped by status');
  await shot(page, '08-explorer');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-xlsx')]);
  const file = join(ART, 'explorer.xlsx');
  await download.saveAs(file);
  const head = readFileSync(file).subarray(0, 2).toString('latin1');
  assert(head === 'PK', 'the download is an Excel (zip) workbook');
  // the address alone reproduces the query (a shared link)
  await page.goto(url.toString());
  await page.waitForSelector('#explorer-table tbody tr');
  assert((await page.textContent('#explorer-table')) === text, 'the shared link shows the same result');
});

test('batches: a batch sent by a system is followed to done', async ({ page, srv }) => {
  const now = new Date().toISOString();
  const rows = ['txn_id,service_code,channel,status,started_at,response_ms'];
  for (let i = 0; i < 3000; i++) rows.push(`BATCH-${Date.now()}-${i},SV02,api,success,${now},${50 + (i % 100)}`);
  const r = await fetch(srv.url + '/api/v1/batches?dataset=transactions', {
    method: 'POST', headers: { 'Content-Type': 'text/csv', 'X-API-Key': srv.apiKey }, body: rows.join('\n') + '\n',
  });
  assert(r.status === 202, `batch answered ${r.status}`);
  await page.click('nav a[href="/batches"]');
  await page.waitForSelector('table.batches .batch-done', { timeout: 15000 });
  assert((await page.textContent('table.batches')).includes('3.000'), 'the batch counts 3.000 accepted');
  await shot(page, '09-batches');
  await page.click('table.batches a[href="/systems/BROWSER1"]');
  await page.waitForSelector('#latency-table');
  await page.waitForSelector('#sys-batches-heading ~ .table-wrap .batch-done');
  await shot(page, '09-system-batches');
});

test('batches: a file dropped for a system is uploaded, processed to done, its rejected rows downloaded', async ({ page, srv }) => {
  await page.click('nav a[href="/batches"]');
  await page.waitForSelector('#upload-system option[value="BROWSER1"]', { state: 'attached' });
  await page.selectOption('#upload-system', 'BROWSER1');
  const now = new Date().toISOString();
  const rows = ['txn_id,service_code,channel,status,started_at,response_ms'];
  for (let i = 0; i < 2000; i++) rows.push(`DROP-${Date.now()}-${i},SV02,api,success,${now},${40 + (i % 50)}`);
  rows.push(`DROP-BAD-1,SV02,pigeon,success,${now},10`, `DROP-BAD-2,SV02,api,success,${now},-5`);
  // a real drop event carrying the file, as a browser fires it
  await page.evaluate((text) => {
    const dt = new DataTransfer();
    dt.items.add(new File([text], 'drop.csv', { type: 'text/csv' }));
    document.querySelector('#drop-zone').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, rows.join('\n') + '\n');
  await page.waitForSelector('#upload-name');
  await page.click('#upload-send');
  await page.waitForSelector('#upload-status.batch-done', { timeout: 30000 });
  const sent = await page.$eval('#upload-progress', (e) => e.value / e.max);
  assert(sent === 1, `the upload bar reached ${sent}`);
  const done = await page.$eval('#batch-progress', (e) => e.value / e.max);
  assert(done === 1, `the processing bar reached ${done}`);
  assert((await page.textContent('#upload-accepted')) === '2.000', 'vi-VN: 2.000 accepted');
  assert((await page.textContent('#upload-rejected')) === '2', '2 rejected');
  await shot(page, '09-upload');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#upload-errors')]);
  const file = join(ART, 'rejected.csv');
  await download.saveAs(file);
  const csv = readFileSync(file, 'utf8');
  const lines = csv.trim().split('\n');
  assert(lines.length === 3 && lines[1].startsWith('2000,2002,channel,') && lines[2].startsWith('2001,2003,response_ms,'),
    `the rejected rows file lists both, by row and field: ${csv.slice(0, 300)}`);
  // the batch is the system's, listed with the others; back to the system's page for the next test
  await page.waitForSelector('table.batches .batch-done');
  await page.click('table.batches a[href="/systems/BROWSER1"]');
  await page.waitForSelector('#latency-table');
});

test('a system\'s keys (admin): a new key shown once works, revoking it refuses it', async ({ page, srv }) => {
  // on the system page of the previous test
  await page.waitForSelector('#keys-table tbody tr');
  await page.click('#key-rotate');
  await page.waitForSelector('#new-api-key');
  const key = (await page.textContent('#new-api-key')).trim();
  const ping = (k) => fetch(srv.url + '/api/v1/heartbeat', { method: 'POST', headers: { 'X-API-Key': k } }).then((r) => r.status);
  assert((await ping(key)) < 300, 'the new key is accepted');
  assert((await ping(srv.apiKey)) < 300, 'the old key stays valid during its grace period');
  await page.waitForFunction(() => document.querySelectorAll('#keys-table tbody tr').length === 2);
  const newest = await page.$$eval('#keys-table tbody tr', (trs) => trs.map((tr) => tr.querySelector('code').textContent));
  await shot(page, '09-system-keys');
  // revoke the new one (two steps: the button asks for a confirmation)
  const rows = await page.$$('#keys-table tbody tr');
  let revoked = null;
  for (const [i, row] of rows.entries()) {
    if (!(await row.textContent()).includes('đang dùng')) continue; // the new key; the old is expiring
    revoked = newest[i];
    await (await row.$('button')).click();
    await (await row.$('button.danger')).click();
  }
  assert(revoked, 'an active key was listed');
  await page.waitForFunction(() => document.querySelector('#keys-table').textContent.includes('đã thu hồi'));
  for (let i = 0; i < 20 && (await ping(key)) !== 401; i++) await new Promise((r) => setTimeout(r, 100));
  assert((await ping(key)) === 401, 'the revoked key is refused');
});

test('alerts: a firing alert is acknowledged, then resolved (operators and admins)', async ({ page }) => {
  await page.click('nav a[href="/alerts"]');
  const row = '#alerts-table tr[data-rule="vuln.overdue"]';
  await page.waitForSelector(`${row}[data-state="firing"]`, { timeout: 15000 });
  await page.click(`${row} button.ack`);
  await page.selectOption('#alert-state', 'acknowledged');
  await page.waitForSelector(`${row}[data-state="acknowledged"]`);
  await page.click(`${row} button.resolve`);
  await page.selectOption('#alert-state', 'resolved');
  await page.waitForSelector(`${row}[data-state="resolved"]`);
  await shot(page, '10-alert-resolved');
});

test('admin pages: alerts, audit trail, administration (a new account, a new system)', async ({ page, srv }) => {
  for (const [href, sel, name, text] of [['/alerts', '#alert-state', '10-alerts', ''],
    ['/audit', '#audit-table', '11-audit', 'login.succeeded'], ['/admin', '#users-table', '12-admin', 'analyst1']]) {
    await page.click(`nav a[href="${href}"]`);
    await page.waitForSelector(sel);
    assert((await page.textContent(sel)).includes(text), `${href} shows ${text}`);
    await shot(page, name);
  }
  // a new account through the form (a POST with the CSRF token): its first password shown once
  await page.fill('#new-username', 'operator1');
  await page.selectOption('#new-role', 'operator');
  await page.click('#add-user');
  await page.waitForSelector('#new-password');
  assert((await page.textContent('#new-password')).trim().length >= 12, 'a first password is shown');
  await page.waitForFunction(() => document.querySelector('#users-table').textContent.includes('operator1'));
  // a connected system registered from the page: its API key, shown once, is accepted at once
  await page.fill('#sys-code', 'BROWSER2');
  await page.fill('#sys-name', 'Hệ thống đăng ký từ giao diện');
  await page.click('#add-system');
  await page.waitForSelector('#new-system-key');
  const key = (await page.textContent('#new-system-key')).trim();
  const hb = await fetch(srv.url + '/api/v1/heartbeat', { method: 'POST', headers: { 'X-API-Key': key, 'Content-Type': 'application/json' }, body: '{}' });
  assert(hb.status === 200, `the new system's key answered ${hb.status}`);
  // a dataset defined from a built-in template, then listed as defined here
  await page.click('#datasets-table tbody tr:has-text("transactions") button');
  await page.waitForSelector('#dataset-json');
  const def = JSON.parse(await page.inputValue('#dataset-json'));
  assert(def.code === 'transactions_copy' && def.version === 1, `the template: ${def.code} v${def.version}`);
  def.code = 'browser_permits';
  await page.fill('#dataset-json', JSON.stringify(def, null, 2));
  await page.click('#dataset-save');
  await page.waitForSelector('#dataset-saved');
  await page.waitForFunction(() => document.querySelector('#datasets-table').textContent.includes('browser_permits'));
  const ds = await (await fetch(srv.url + '/api/v1/datasets/browser_permits')).json();
  assert(ds.version === 1 && ds.builtin !== true, 'the new dataset is served');
  // the alert channels as configured (none in this data dir)
  await page.waitForSelector('#no-channels');
  await shot(page, '12-admin-systems');
});

test('an ended session goes back to the sign-in page with a message', async ({ page, context }) => {
  await page.click('nav a[href="/"]');
  await page.waitForSelector('#kpi-today');
  await context.clearCookies();
  await page.click('nav a[href="/systems"]'); // its API call is now refused (401)
  await page.waitForSelector('#username');
  assert((await page.textContent('.notice')).includes('hết hạn'), 'session expired notice');
  await shot(page, '13-session-expired');
});

test('an analyst sees no admin pages and cannot open them', async ({ browser, srv }) => {
  const context = await browser.newContext({ viewport: { width: 768, height: 1024 } });
  context.setDefaultTimeout(5000);
  const page = await context.newPage();
  watch(page);
  try {
    await page.goto(srv.url + '/login');
    await signIn(page, 'analyst1', srv.analyst.password);
    await page.click('#mfa-later'); // an analyst may enrol later; an admin may not
    await page.waitForSelector('#kpi-today');
    const nav = await page.$$eval('nav a', (as) => as.map((a) => a.getAttribute('href')));
    assert(nav.includes('/') && nav.includes('/systems') && nav.includes('/explorer'), `analyst navigation: ${nav}`);
    assert(!['/admin', '/audit', '/alerts', '/batches'].some((p) => nav.includes(p)), `no admin pages offered: ${nav}`);
    await page.waitForSelector('.chart canvas'); // analysts read statistics
    await shot(page, '14-analyst-overview-768');
    for (const path of ['/admin', '/audit', '/alerts', '/batches']) {
      await page.goto(srv.url + path);
      await page.waitForSelector('#forbidden');
      assert((await page.textContent('#forbidden h1')) === 'Không được phép', 'not-allowed message');
    }
    await shot(page, '15-analyst-forbidden');
    // the page fits a 768 px tablet: nothing wider than the window
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert(overflow <= 0, `no horizontal scrolling at 768 px (${overflow} px too wide)`);
  } catch (e) {
    await shot(page, 'FAIL-analyst');
    throw e;
  } finally {
    await context.close();
  }
});

test('accessibility: no serious WCAG 2.1 A/AA violation (axe-core) on the main pages', async ({ browser, srv }) => {
  // axe is injected as a script, which the page's CSP forbids: this context alone bypasses it
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, bypassCSP: true });
  context.setDefaultTimeout(5000);
  const page = await context.newPage();
  const axe = require.resolve('axe-core/axe.min.js');
  const found = [];
  const check = async (name) => {
    await page.addScriptTag({ path: axe });
    const v = await page.evaluate(async () => (await window.axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
    })).violations.filter((x) => x.impact === 'serious' || x.impact === 'critical')
      .map((x) => `${x.id} (${x.nodes.length}: ${x.nodes[0].target.join(' ')})`));
    found.push(...v.map((x) => `${name}: ${x}`));
  };
  try {
    await page.goto(srv.url + '/login');
    await page.waitForSelector('#username');
    await check('sign-in');
    await signIn(page, 'analyst1', srv.analyst.password);
    await page.click('#mfa-later');
    await page.waitForSelector('.chart canvas');
    await check('overview');
    await page.click('nav a[href="/systems"]');
    await page.waitForSelector('#systems-table tbody a');
    await check('systems');
    await page.click('#systems-table tbody a');
    await page.waitForSelector('#latency-table');
    await check('system');
    await page.goto(srv.url + '/explorer?dataset=transactions&metrics=count&group_by=channel&interval=day');
    await page.waitForSelector('#explorer-table tbody tr');
    await check('explorer');
  } finally {
    await context.close();
  }
  assert(!found.length, `violations:\n    ${found.join('\n    ')}`);
});

// ---- run

const problems = []; // console errors, CSP violations, uncaught exceptions
function watch(page) {
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    // refused API calls (401/403 by design in these tests) are logged by the browser as errors
    if (m.type() === 'error' && !/Failed to load resource: the server responded with a status of 40[13]/.test(m.text()))
      problems.push(`console: ${m.text()}`);
  });
}

async function main() {
  rmSync(ART, { recursive: true, force: true });
  mkdirSync(ART, { recursive: true });
  const srv = await startServer();
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, timezoneId: 'UTC', locale: 'en-US' });
  context.setDefaultTimeout(5000);
  const page = await context.newPage();
  watch(page);
  let failed = 0;
  try {
    for (const t of tests) {
      const t1 = Date.now();
      try {
        await t.fn({ browser, context, page, srv });
        console.log(`ok   ${t.name} (${Date.now() - t1} ms)`);
      } catch (e) {
        failed++;
        const where = (e.stack || '').split('\n').find((l) => l.includes('run.mjs:')) || '';
        console.log(`FAIL ${t.name}: ${e.message.split('\n').slice(0, 12).join('\n')} ${where.trim()}`);
        await shot(page, `FAIL-${tests.indexOf(t)}`).catch(() => {});
      }
    }
    if (problems.length) {
      failed++;
      console.log(`FAIL no console error, CSP violation or page error:\n  ${problems.join('\n  ')}`);
    } else console.log('ok   no console error, CSP violation or page error');
  } finally {
    await browser.close();
    srv.proc.kill('SIGTERM');
    await new Promise((r) => (srv.proc.exitCode !== null ? r() : srv.proc.once('exit', r)));
    rmSync(srv.root, { recursive: true, force: true });
  }
  // a clean stop (under ASan: no leak or error report, which changes the exit status)
  if (srv.proc.exitCode !== 0) {
    failed++;
    console.log(`FAIL dtm serve exited with ${srv.proc.exitCode ?? srv.proc.signalCode} after SIGTERM; see serve.stderr.log`);
  } else console.log('ok   dtm serve stopped cleanly');
  console.log(`browser tests: ${tests.length + 2 - failed}/${tests.length + 2} passed in ${((Date.now() - T0) / 1000).toFixed(1)} s` +
    (S.liveMs ? `; overview moved ${S.liveMs} ms after the ingest` : '') + `; screenshots in ${ART}`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.error(`browser tests: ${e.stack || e}`);
  process.exit(1);
});
