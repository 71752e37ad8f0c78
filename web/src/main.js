// main.js — the dashboard's entry point: the session (sign-in, TOTP enrolment, sign-out, a
// session that ends while the page is open), the page table with the roles allowed to open each
// page, and the frame of every page (header with navigation, user and language switcher).
import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import './style.css';
import { html } from './lib/html.js';
import { getLang, LANGS, onLangChange, setLang, t } from './lib/i18n.js';
import { api, get, onSessionEnded, setCsrf } from './lib/api.js';
import { can } from './lib/access.js';
import { currentPath, navigate, onLink, onRoute } from './lib/router.js';
import { Enrol, Login } from './pages/login.js';
import { Overview } from './pages/overview.js';
import { SystemPage, Systems } from './pages/systems.js';
import { Explorer } from './pages/explorer.js';
import { Batches } from './pages/batches.js';
import { Reports } from './pages/reports.js';
import { Admin, Alerts, Audit, Forbidden, NotFound } from './pages/other.js';
import { Catalogue } from './pages/catalogue.js';
import { Forecast } from './pages/forecast.js';
import { Quality, Rankings, Reconciliation } from './pages/quality.js';

const everyone = () => true;

/* The pages: a path pattern, the component, who may open it, and its navigation entry (none for
 * pages reached from another one). Every path here is also answered with index.html by the
 * server (src/web/web.c). */
const PAGES = [
  { re: /^\/$/, view: Overview, allow: everyone, nav: 'nav.overview', href: '/' },
  { re: /^\/systems$/, view: Systems, allow: everyone, nav: 'nav.systems', href: '/systems' },
  { re: /^\/systems\/([^/]+)$/, view: SystemPage, allow: everyone, param: 'code', section: '/systems' },
  { re: /^\/explorer$/, view: Explorer, allow: can.stats, nav: 'nav.explorer', href: '/explorer' },
  // issue 7 (F7): forecasts with their bands and backtest errors
  { re: /^\/forecast$/, view: Forecast, allow: can.stats, nav: 'forecast.nav', href: '/forecast' },
  // issue 7 (G4, G5, Art. 5.5): data quality, reconciliation (reached from quality), rankings
  { re: /^\/quality$/, view: Quality, allow: everyone, nav: 'quality.nav', href: '/quality' },
  { re: /^\/reconciliation$/, view: Reconciliation, allow: everyone, section: '/quality' },
  { re: /^\/rankings$/, view: Rankings, allow: everyone, nav: 'quality.rank_nav', href: '/rankings' },
  { re: /^\/batches$/, view: Batches, allow: can.alerts, nav: 'nav.batches', href: '/batches' },
  { re: /^\/reports$/, view: Reports, allow: everyone, nav: 'reports.nav', href: '/reports' },
  { re: /^\/alerts$/, view: Alerts, allow: can.alerts, nav: 'nav.alerts', href: '/alerts' },
  { re: /^\/audit$/, view: Audit, allow: can.audit, nav: 'nav.audit', href: '/audit' },
  { re: /^\/admin$/, view: Admin, allow: can.admin, nav: 'nav.admin', href: '/admin' },
  // issue 8 (G2): the public data catalogue, readable without signing in (`public`)
  { re: /^\/catalogue$/, view: Catalogue, allow: everyone, nav: 'catalogue.nav', href: '/catalogue', public: true },
];

function LangSwitch() {
  return html`<div class="lang">
    <label for="lang-select">${t('lang.label')}</label>
    <select id="lang-select" value=${getLang()} onChange=${(e) => setLang(e.currentTarget.value)}>
      ${LANGS.map((l) => html`<option value=${l} lang=${l}>${t(`lang.${l}`)}</option>`)}
    </select>
  </div>`;
}

function Header({ me, path, onLogout }) {
  const current = (p) => p.href === path || (p.href !== '/' && path.startsWith(p.href + '/'));
  return html`<header class="top">
    <a class="skip" href="#main">${t('app.skip')}</a>
    <a class="brand" href="/" onClick=${onLink} title=${t('app.title')}>${t('app.short')}</a>
    ${me && html`<nav aria-label=${t('nav.label')}><ul>
      ${PAGES.filter((p) => p.nav && p.allow(me.role)).map((p) => html`<li>
        <a href=${p.href} onClick=${onLink} aria-current=${current(p) ? 'page' : undefined}>${t(p.nav)}</a></li>`)}
    </ul></nav>`}
    <div class="spacer"></div>
    <${LangSwitch} />
    ${me && html`<span class="who" id="who">${t('user.signed_in_as', { user: me.username, role: t(`role.${me.role}`) })}</span>
      <button type="button" id="logout" onClick=${onLogout} title=${t('user.signed_in_as', { user: me.username, role: t(`role.${me.role}`) })}>
        ${t('action.logout')}</button>`}
  </header>`;
}

function App() {
  const [me, setMe] = useState(undefined); // undefined: asking the server; null: signed out
  const [notice, setNotice] = useState(null);
  const [path, setPath] = useState(currentPath());
  // TOTP enrolment is offered right after a sign-in (not on every reload of a signed-in page);
  // an admin without it is held on the enrolment page whatever this says
  const [enrolLater, setEnrolLater] = useState(true);
  const [, setLangState] = useState(getLang());
  const meRef = useRef(me);
  meRef.current = me;

  useEffect(() => onRoute(() => setPath(currentPath())), []);
  // after an in-app navigation, keyboard and screen-reader focus moves to the new page
  const firstPath = useRef(true);
  useEffect(() => {
    if (firstPath.current) firstPath.current = false;
    else document.getElementById('main')?.focus();
  }, [path]);
  useEffect(() => onLangChange(setLangState), []);
  useEffect(() => {
    document.documentElement.lang = getLang();
    // a 401 on any call once signed in: the session ended (idle or absolute timeout, sign-out
    // elsewhere, account disabled) — back to the sign-in page with a message
    onSessionEnded(() => {
      if (!meRef.current) return;
      setCsrf(null);
      setMe(null);
      setNotice('login.expired');
    });
    get('/api/v1/session').then(
      (m) => {
        setCsrf(m.csrf_token);
        setMe(m);
      },
      () => setMe(null),
    );
  }, []);
  useEffect(() => {
    document.title = t('app.title');
  });
  // signed in at /login or /index.html: the overview is the home page
  useEffect(() => {
    if (me && (path === '/login' || path === '/index.html')) navigate('/', true);
  }, [me, path]);

  const signedIn = (m, fresh) => {
    setCsrf(m.csrf_token);
    setNotice(null);
    setEnrolLater(!fresh);
    setMe(m);
    if (currentPath() === '/login') navigate('/', true);
  };
  const logout = async () => {
    try {
      await api('DELETE', '/api/v1/session');
    } catch {
      /* already ended: signed out all the same */
    }
    setCsrf(null);
    setMe(null);
    setNotice('login.logged_out');
    navigate('/login');
  };

  if (me === undefined) return html`<p class="muted boot" role="status">${t('common.loading')}</p>`;
  // a public page (the data catalogue) is shown to anyone; every other one needs a sign-in
  const open = PAGES.find((p) => p.public && p.re.test(path));
  if (me === null && open)
    return html`<${Header} me=${null} path=${path} />
      <main id="main" tabindex="-1"><${open.view} me=${null} />
        <p><a href="/login" onClick=${onLink}>${t('catalogue.signin')}</a></p></main>`;
  if (me === null)
    return html`<${Header} me=${null} path=${path} /><${Login} notice=${notice} onSignedIn=${signedIn} />`;
  // CONTRACT §3: an admin must enrol TOTP before acting; others are offered it at sign-in
  if (me.mfa_required || (!me.mfa_enrolled && !enrolLater))
    return html`<${Header} me=${null} path=${path} />
      <${Enrol} me=${me} onDone=${(m) => signedIn(m, false)} onLater=${() => setEnrolLater(true)} />`;

  let body = html`<${NotFound} path=${path} />`;
  for (const p of PAGES) {
    const m = p.re.exec(path === '/login' || path === '/index.html' ? '/' : path);
    if (!m) continue;
    const props = { me };
    if (p.param) props[p.param] = decodeURIComponent(m[1]);
    body = p.allow(me.role) ? html`<${p.view} ...${props} />` : html`<${Forbidden} me=${me} />`;
    break;
  }
  return html`<${Header} me=${me} path=${path} onLogout=${logout} />
    <main id="main" tabindex="-1">${body}</main>`;
}

render(html`<${App} />`, document.getElementById('app'));
