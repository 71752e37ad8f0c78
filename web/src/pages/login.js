// pages/login.js — sign-in (user name, password, TOTP code) and the TOTP enrolment of an account
// that has none yet (QR code from GET /api/v1/session/mfa/qr.png, the otpauth URI, confirmation
// with a code, the one-time display of the recovery codes). CONTRACT §3.
import { useEffect, useRef, useState } from 'preact/hooks';
import { html } from '../lib/html.js';
import { t } from '../lib/i18n.js';
import { api, post } from '../lib/api.js';

export function Login({ notice, onSignedIn }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [needTotp, setNeedTotp] = useState(false);
  const totpRef = useRef(null);
  const userRef = useRef(null);
  useEffect(() => userRef.current && userRef.current.focus(), []);
  useEffect(() => {
    if (needTotp && totpRef.current) totpRef.current.focus();
  }, [needTotp]);

  async function submit(e) {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const body = { username: f.get('username').trim(), password: f.get('password') };
    const code = String(f.get('totp') || '').trim();
    if (code) body.totp = code;
    setBusy(true);
    setError(null);
    try {
      const me = await api('POST', '/api/v1/session', body, { signIn: true });
      onSignedIn(me, true);
    } catch (err) {
      if (err.code === 'totp_required') {
        setNeedTotp(true);
        setError(t('login.totp_required'));
      } else setError(err.message);
      setBusy(false);
    }
  }

  return html`<main id="main" class="login">
    <h1>${t('app.title')}</h1>
    <form class="card" onSubmit=${submit} aria-labelledby="login-heading" novalidate>
      <h2 id="login-heading">${t('login.heading')}</h2>
      ${notice && html`<p class="notice" role="status">${t(notice)}</p>`}
      ${error && html`<p class="error" role="alert" id="login-error">${error}</p>`}
      <label for="username">${t('login.username')}</label>
      <input id="username" name="username" autocomplete="username" required ref=${userRef} />
      <label for="password">${t('login.password')}</label>
      <input id="password" name="password" type="password" autocomplete="current-password" required />
      <label for="totp">${t('login.totp')}</label>
      <input id="totp" name="totp" inputmode="numeric" autocomplete="one-time-code" maxlength="32"
        aria-describedby="totp-hint" aria-invalid=${needTotp ? 'true' : undefined} ref=${totpRef} />
      <p class="hint" id="totp-hint">${t('login.totp_hint')}</p>
      <button type="submit" class="primary" disabled=${busy}>${busy ? t('login.busy') : t('login.submit')}</button>
    </form>
  </main>`;
}

/* Enrolment: POST /api/v1/session/mfa makes a new secret (shown once, with its QR code), then
 * POST /api/v1/session/mfa/confirm with a code turns it on and returns the recovery codes. */
export function Enrol({ me, onDone, onLater }) {
  const [setup, setSetup] = useState(null);
  const [error, setError] = useState(null);
  const [codes, setCodes] = useState(null);
  const [busy, setBusy] = useState(false);
  // an admin must enrol now; anyone else is asked first (and may choose later)
  const [started, setStarted] = useState(!!me.mfa_required);
  useEffect(() => {
    if (started) post('/api/v1/session/mfa').then(setSetup, (e) => setError(e.message));
  }, [started]);

  async function confirm(e) {
    e.preventDefault();
    const code = new FormData(e.currentTarget).get('code').trim();
    setBusy(true);
    setError(null);
    try {
      const r = await post('/api/v1/session/mfa/confirm', { totp: code });
      setCodes(r.recovery_codes);
    } catch (err) {
      setError(err.message);
    }
    setBusy(false);
  }

  if (codes)
    return html`<main id="main" class="login">
      <section class="card" aria-labelledby="mfa-heading">
        <h1 id="mfa-heading">${t('mfa.done')}</h1>
        <p>${t('mfa.recovery')}</p>
        <ul class="codes" id="recovery-codes">${codes.map((c) => html`<li><code>${c}</code></li>`)}</ul>
        <button type="button" class="primary" onClick=${() => onDone({ ...me, mfa_enrolled: true, mfa_required: false })}>
          ${t('action.continue')}
        </button>
      </section>
    </main>`;

  return html`<main id="main" class="login">
    <section class="card wide" aria-labelledby="mfa-heading">
      <h1 id="mfa-heading">${t('mfa.heading')}</h1>
      ${me.mfa_required && html`<p class="notice">${t('mfa.required')}</p>`}
      <p>${t('mfa.intro')}</p>
      ${error && html`<p class="error" role="alert" id="mfa-error">${error}</p>`}
      ${!started && html`<div class="row">
        <button type="button" class="primary" id="mfa-start" onClick=${() => setStarted(true)}>${t('mfa.start')}</button>
        <button type="button" id="mfa-later" onClick=${onLater}>${t('action.later')}</button>
      </div>`}
      ${started && !setup && !error && html`<p class="muted" role="status">${t('mfa.starting')}</p>`}
      ${setup && html`<div class="enrol">
        <img class="qr" src=${setup.qr_png} alt=${t('mfa.qr_alt')} width="200" height="200" />
        <dl>
          <dt>${t('mfa.secret')}</dt><dd><code id="mfa-secret">${setup.secret}</code></dd>
          <dt>${t('mfa.uri')}</dt><dd><code class="wrap" id="mfa-uri">${setup.otpauth_uri}</code></dd>
        </dl>
      </div>
      <form onSubmit=${confirm}>
        <label for="mfa-code">${t('mfa.code')}</label>
        <input id="mfa-code" name="code" inputmode="numeric" autocomplete="one-time-code" maxlength="6" required />
        <div class="row">
          <button type="submit" class="primary" disabled=${busy}>${t('mfa.confirm')}</button>
          ${!me.mfa_required && html`<button type="button" id="mfa-later2" onClick=${onLater}>${t('action.later')}</button>`}
        </div>
      </form>`}
    </section>
  </main>`;
}
