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

// issue 8: the public data catalogue and the API reference, both readable without signing in
test('the data catalogue (/catalogue) is public: every dataset with its catalogue fields, vi and en', async ({ browser, srv }) => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } }); // no cookie
  context.setDefaultTimeout(5000);
  const page = await context.newPage();
  watch(page);
  try {
    const resp = await page.goto(srv.url + '/catalogue');
    assert(resp.status() === 200, `status ${resp.status()}`);
    await page.waitForSelector('.catalogue-item');
    const api = await (await fetch(srv.url + '/api/v1/datasets')).json();
    const codes = await page.$$eval('.catalogue-item', (as) => as.map((a) => a.dataset.code));
    assert(codes.length === api.datasets.length && api.datasets.every((d) => codes.includes(d.code)),
      `every dataset listed: ${codes}`);
    assert((await page.textContent('#catalogue-title')) === 'Danh mục dữ liệu giao dịch điện tử', 'Vietnamese title');
    const tx = await page.textContent('#dataset-transactions');
    assert(tx.includes('Cơ quan quản lý') && tx.includes('Cục Chuyển đổi số quốc gia') && tx.includes('Tỷ lệ bị từ chối'),
      'agency and quality summary shown');
    assert(!(await page.$('#username')), 'no sign-in form in the way');
    await shot(page, '20-catalogue-vi');
    await page.selectOption('#lang-select', 'en');
    await page.waitForFunction(() => document.querySelector('#catalogue-title').textContent === 'Electronic transaction data catalogue');
    const en = await page.textContent('#dataset-transactions');
    assert(en.includes('Managing agency') && en.includes('Access conditions') && en.includes('Update frequency'), 'English labels');
    await shot(page, '21-catalogue-en');
  } catch (e) {
    await shot(page, 'FAIL-catalogue');
    throw e;
  } finally {
    await context.close();
  }
});

test('/docs renders the API reference (Redoc, from the binary) under its own CSP, in English and Vietnamese', async ({ browser, srv }) => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  context.setDefaultTimeout(60000); // Redoc lays out the whole document: seconds on a busy machine
  const page = await context.newPage();
  watch(page);
  const outside = [];
  page.on('request', (r) => { if (!r.url().startsWith(srv.url) && !r.url().startsWith('blob:') && !r.url().startsWith('data:')) outside.push(r.url()); });
  try {
    const resp = await page.goto(srv.url + '/docs?lang=en');
    const csp = resp.headers()['content-security-policy'] || '';
    assert(csp.includes("script-src 'self'") && !csp.includes('unsafe-eval') && csp.includes('worker-src blob:'), `CSP: ${csp}`);
    await page.waitForSelector('body[data-ready="1"]');
    // the operations' headings of the middle panel (the side menu's entries are collapsed)
    await page.waitForSelector('h2:has-text("Send records (realtime)")');
    assert(await page.isVisible('h2:has-text("Public data catalogue")'), 'an operation of the catalogue is listed');
    // the viewport only: the whole reference is far too tall for a full-page screenshot
    await page.screenshot({ path: join(ART, '22-docs-en.png') });
    await page.goto(srv.url + '/docs?lang=vi');
    await page.waitForSelector('body[data-ready="1"]');
    await page.waitForSelector('h2:has-text("Gửi bản ghi (thời gian thực)")');
    assert((await page.getAttribute('html', 'lang')) === 'vi', 'html lang is vi');
    await page.screenshot({ path: join(ART, '23-docs-vi.png') });
    assert(!outside.length, `nothing fetched from elsewhere: ${outside}`);
  } catch (e) {
    await page.screenshot({ path: join(ART, 'FAIL-docs.png') }).catch(() => {});
    throw e;
  } finally {
    await context.close();
  }
});

// issue 7 (F7): the forecast page — history and forecast with 80 % / 95 % bands, the method and
// both methods' backtest errors, the question held in the address; no serious axe violation
test('forecast: a daily series of a system with its bands, method and backtest errors', async ({ browser, srv }) => {
  // five weeks of back-dated daily records of BROWSER1 (the current day is never history)
  const recs = [];
  const day0 = Date.now() - 35 * 86400e3;
  for (let d = 0; d < 35; d++)
    for (let i = 0; i < 20 + (d % 7) * 3 + Math.floor(d / 7) + ((d * 7) % 5) - 2; i++) // trend, week, noise
      recs.push({ txn_id: `FC-${d}-${i}`, service_code: 'SV01', channel: 'web', status: 'success',
        started_at: new Date(day0 + d * 86400e3 + i * 1000).toISOString(), response_ms: 100 });
  const r = await fetch(srv.url + '/api/v1/ingest/transactions', {
    method: 'POST', headers: { 'Content-Type': 'application/json', 'X-API-Key': srv.apiKey }, body: JSON.stringify(recs),
  });
  assert(r.status === 200, `ingest answered ${r.status}`);
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, bypassCSP: true });
  context.setDefaultTimeout(10000);
  const page = await context.newPage();
  watch(page);
  try {
    await page.goto(srv.url + '/login');
    await signIn(page, 'analyst1', srv.analyst.password);
    await page.click('#mfa-later');
    await page.waitForSelector('nav a[href="/forecast"]');
    await page.click('nav a[href="/forecast"]');
    await page.waitForSelector('#fc-system option[value=BROWSER1]', { state: 'attached' });
    assert((await page.textContent('h1')) === 'Dự báo', 'the heading in Vietnamese');
    await page.selectOption('#fc-system', 'BROWSER1');
    await page.fill('#fc-horizon', '10');
    await page.click('#fc-run');
    await page.waitForSelector('#forecast-chart canvas');
    await page.waitForSelector('#fc-points tbody tr');
    const url = new URL(page.url());
    assert(url.pathname === '/forecast' && url.searchParams.get('system') === 'BROWSER1' && url.searchParams.get('horizon') === '10',
      `question in the address: ${url}`);
    assert((await page.$$('#fc-points tbody tr')).length === 10, 'ten forecast points');
    const method = await page.getAttribute('#fc-method-name', 'data-method');
    assert(['holt_winters', 'seasonal_naive'].includes(method), `method ${method}`);
    const bt = await page.textContent('#fc-backtest');
    assert(bt.includes('Holt-Winters') && bt.includes('Mùa vụ ngây thơ') && bt.includes('MASE'), `backtest table: ${bt}`);
    assert((await page.textContent('#fc-explain')).includes('kiểm định ngược'), 'the explanation in Vietnamese');
    await shot(page, '24-forecast-vi');
    await page.addScriptTag({ path: require.resolve('axe-core/axe.min.js') });
    const v = await page.evaluate(async () => (await window.axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
    })).violations.filter((x) => x.impact === 'serious' || x.impact === 'critical').map((x) => x.id));
    assert(!v.length, `axe violations on /forecast: ${v}`);
    await page.selectOption('#lang-select', 'en');
    await page.waitForFunction(() => document.querySelector('h1').textContent === 'Forecast');
    assert((await page.textContent('#fc-backtest')).includes('Seasonal naive'), 'English labels');
    await page.waitForFunction(() => document.querySelector('#fc-explain').textContent.includes('backtest'));
    await shot(page, '25-forecast-en');
  } catch (e) {
    await shot(page, 'FAIL-forecast');
    throw e;
  } finally {
    await context.close();
  }
});

test('quality, reconciliation (a mismatch highlighted) and rankings (A/B/C, evidence) for a period', async ({ browser, srv }) => {
  // a day 40 days ago (UTC+07:00): 3 transactions of service SVQ that BROWSER1's report says were
  // 5 (mismatched, -2); the next day 2 reported and 2 sent (matched)
  const vnDay = (ms) => new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Ho_Chi_Minh', year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date(ms));
  const d1 = vnDay(Date.now() - 40 * 86400e3), d2 = vnDay(Date.now() - 39 * 86400e3);
  const send = async (dataset, recs) => {
    const r = await fetch(`${srv.url}/api/v1/ingest/${dataset}`, {
      method: 'POST', headers: { 'Content-Type': 'application/json', 'X-API-Key': srv.apiKey }, body: JSON.stringify(recs),
    });
    assert(r.status === 200, `ingest ${dataset} answered ${r.status}: ${await r.text()}`);
  };
  const tx = (day, n) => Array.from({ length: n }, (_, i) => ({ txn_id: `QR-${day}-${i}`, service_code: 'SVQ', channel: 'web',
    status: 'success', started_at: `${day}T10:00:0${i}+07:00`, response_ms: 200 }));
  await send('transactions', [...tx(d1, 3), ...tx(d2, 2)]);
  await send('service_stats', [
    { system_code: 'BROWSER1', service_code: 'SVQ', period_type: 'day', period_start: d1, total: 5 },
    { system_code: 'BROWSER1', service_code: 'SVQ', period_type: 'day', period_start: d2, total: 2 }]);
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, bypassCSP: true });
  context.setDefaultTimeout(10000);
  const page = await context.newPage();
  watch(page);
  try {
    await page.goto(srv.url + '/login');
    await signIn(page, 'analyst1', srv.analyst.password);
    await page.click('#mfa-later');
    await page.waitForSelector('nav a[href="/quality"]');
    // reconciliation of d1: the mismatch, highlighted, in Vietnamese
    await page.goto(`${srv.url}/reconciliation?period=${d1}`);
    await page.waitForSelector('#recon-table tr[data-system=BROWSER1]');
    assert((await page.textContent('h1')) === 'Đối soát số liệu', 'the heading in Vietnamese');
    const row = 'tr[data-system=BROWSER1][data-status=mismatched]';
    await page.waitForSelector(row);
    assert((await page.getAttribute(row, 'class')).includes('mismatch'), 'the mismatched row is highlighted');
    assert((await page.textContent(`${row} [data-k=difference]`)).replace('−', '-').trim() === '-2', 'difference -2');
    assert((await page.textContent(`${row} .badge`)).trim() === 'Lệch', 'status badge');
    // the period picker: the next day matches
    await page.fill('#recon-period', d2);
    await page.click('#recon-apply');
    await page.waitForSelector('tr[data-system=BROWSER1][data-status=matched]');
    assert(new URL(page.url()).searchParams.get('period') === d2, 'the period is kept in the address');
    await shot(page, '26-reconciliation');
    // quality of d1: BROWSER1's report of that day was received (completeness 100 %)
    await page.click('.subnav a[href="/quality"]');
    await page.fill('#quality-period', d1);
    await page.click('#quality-apply');
    await page.waitForSelector('#quality-table tr[data-system=BROWSER1][data-dataset=service_stats]');
    const c = await page.textContent('#quality-table tr[data-system=BROWSER1][data-dataset=service_stats] [data-k=completeness]');
    assert(c.replace(/\s/g, '') === '100%', `completeness ${c}`);
    assert((await page.textContent('#quality-table tr[data-system=BROWSER1][data-dataset=service_stats] [data-k=mismatches]')).trim() === '1',
      'one reconciliation mismatch in quality');
    await shot(page, '27-quality');
    // rankings of d1: a class badge and the evidence on demand
    await page.goto(`${srv.url}/rankings?period=${d1}`);
    await page.waitForSelector('#rank-table tr[data-system=BROWSER1] [data-k=class]');
    const cls = (await page.textContent('#rank-table tr[data-system=BROWSER1] [data-k=class]')).trim();
    assert(['A', 'B', 'C'].includes(cls), `class badge ${cls}`);
    await page.click('button[data-evidence=BROWSER1]');
    await page.waitForSelector('#evidence-BROWSER1 tr[data-criterion=mandatory]');
    assert((await page.$$('#evidence-BROWSER1 tbody tr')).length === 6, 'six criteria with their evidence');
    assert((await page.textContent('#evidence-BROWSER1')).includes('on_time / expected'), 'the formula is shown');
    await page.addScriptTag({ path: require.resolve('axe-core/axe.min.js') });
    const v = await page.evaluate(async () => (await window.axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
    })).violations.filter((x) => x.impact === 'serious' || x.impact === 'critical').map((x) => x.id));
    assert(!v.length, `axe violations on /rankings: ${v}`);
    await shot(page, '28-rankings-vi');
    await page.selectOption('#lang-select', 'en');
    await page.waitForFunction(() => document.querySelector('h1').textContent === 'Rankings');
    await page.waitForFunction(() => document.querySelector('#rank-method').textContent.includes('weight'));
    await shot(page, '29-rankings-en');
  } catch (e) {
    await shot(page, 'FAIL-quality');
    throw e;
  } finally {
    await context.close();
  }
});

test('reports (analyst): the kept reports with a download per format, and one made now', async ({ browser, srv }) => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  context.setDefaultTimeout(5000);
  const page = await context.newPage();
  watch(page);
  try {
    await page.goto(srv.url + '/login');
    await signIn(page, 'analyst1', srv.analyst.password);
    await page.click('#mfa-later');
    await page.waitForSelector('nav a[href="/reports"]');
    await page.click('nav a[href="/reports"]');
    await page.waitForSelector('#report-form');
    // the server produced last month's reports shortly after it started ([reports] schedule)
    for (let i = 0; i < 20 && !(await page.$('#reports-table tr[data-kind=transactions][data-lang=vi]')); i++) {
      await new Promise((r) => setTimeout(r, 500));
      await page.reload();
      await page.waitForSelector('#report-form');
    }
    const row = '#reports-table tr[data-kind=transactions][data-lang=vi]';
    await page.waitForSelector(row);
    const formats = await page.$eval(row, (tr) => [...tr.querySelectorAll('a')].map((a) => a.textContent.trim()));
    assert(formats.join(',') === 'JSON,CSV,Excel,PDF', `a download per format: ${formats}`);
    await shot(page, '22-reports');
    const [pdf] = await Promise.all([page.waitForEvent('download'), page.locator(`${row} a[href*="format=pdf"]`).first().click()]);
    const file = join(ART, 'report.pdf');
    await pdf.saveAs(file);
    assert(readFileSync(file).subarray(0, 5).toString('latin1') === '%PDF-', 'the kept report downloads as a PDF');
    // one made now: today's transactions as CSV in English (provisional)
    const today = new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Ho_Chi_Minh' }).format(new Date());
    await page.selectOption('#report-kind', 'transactions');
    await page.fill('#report-period', 'not-a-period');
    await page.waitForSelector('#report-period-error');
    await page.fill('#report-period', today);
    await page.selectOption('#report-format', 'csv');
    await page.selectOption('#report-lang', 'en');
    const [csv] = await Promise.all([page.waitForEvent('download'), page.click('#report-make')]);
    const out = join(ART, 'report.csv');
    await csv.saveAs(out);
    const text = readFileSync(out, 'utf8');
    assert(text.startsWith('Summary') && text.includes('Transactions by system') && text.includes(today),
      `the CSV of today's report: ${text.slice(0, 200)}`);
    await shot(page, '23-reports-made');
  } catch (e) {
    await shot(page, 'FAIL-reports');
    throw e;
  } finally {
    await context.close();
  }
});

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
