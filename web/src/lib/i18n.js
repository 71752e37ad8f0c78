// lib/i18n.js — the dashboard's languages (T1.2): Vietnamese (default) and English. Every string
// comes from the catalogues i18n/vi.json and i18n/en.json (and i18n/AREA.vi.json, AREA.en.json); the choice is remembered in
// localStorage. Numbers, dates and times are formatted with Intl in the language's locale
// (vi-VN: 1.234.567 and 23/11/2026 14:05) and always in Asia/Ho_Chi_Minh time (UTC+07:00).
import vi from '../i18n/vi.json';
import en from '../i18n/en.json';
import reportsVi from '../i18n/reports.vi.json';
import reportsEn from '../i18n/reports.en.json';
import qualityVi from '../i18n/quality.vi.json';
import qualityEn from '../i18n/quality.en.json';
import forecastVi from '../i18n/forecast.vi.json';
import forecastEn from '../i18n/forecast.en.json';
import catalogueVi from '../i18n/catalogue.vi.json';
import catalogueEn from '../i18n/catalogue.en.json';

// one catalogue per language: the common one and one per area of the dashboard (web/build.mjs
// checks that both languages have the same keys and no key is in two areas)
const catalogues = {
  vi: { ...vi, ...reportsVi, ...qualityVi, ...forecastVi, ...catalogueVi },
  en: { ...en, ...reportsEn, ...qualityEn, ...forecastEn, ...catalogueEn },
};
const locales = { vi: 'vi-VN', en: 'en-GB' };
export const LANGS = ['vi', 'en'];
export const TIME_ZONE = 'Asia/Ho_Chi_Minh';
const STORAGE_KEY = 'dtm.lang';

function stored() {
  try {
    const l = localStorage.getItem(STORAGE_KEY);
    return LANGS.includes(l) ? l : 'vi';
  } catch {
    return 'vi'; // storage disabled: the default
  }
}

let lang = stored();
let fmt = makeFormatters(lang);
const listeners = new Set();

function makeFormatters(l) {
  const loc = locales[l];
  return {
    int: new Intl.NumberFormat(loc, { maximumFractionDigits: 0 }),
    dec: new Intl.NumberFormat(loc, { maximumFractionDigits: 1 }),
    pct: new Intl.NumberFormat(loc, { style: 'percent', maximumFractionDigits: 2 }),
    dateTime: new Intl.DateTimeFormat(loc, {
      day: '2-digit', month: '2-digit', year: 'numeric', hour: '2-digit', minute: '2-digit',
      hourCycle: 'h23', timeZone: TIME_ZONE,
    }),
    time: new Intl.DateTimeFormat(loc, {
      hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23', timeZone: TIME_ZONE,
    }),
    dayMonth: new Intl.DateTimeFormat(loc, { day: '2-digit', month: '2-digit', timeZone: TIME_ZONE }),
    hourMin: new Intl.DateTimeFormat(loc, {
      hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZone: TIME_ZONE,
    }),
  };
}

export function getLang() {
  return lang;
}

export function setLang(l) {
  if (!LANGS.includes(l) || l === lang) return;
  lang = l;
  fmt = makeFormatters(l);
  try {
    localStorage.setItem(STORAGE_KEY, l);
  } catch {
    /* not remembered, still switched */
  }
  document.documentElement.lang = l;
  listeners.forEach((f) => f(l));
}

/* Calls f(lang) after every switch; returns the function that stops it. */
export function onLangChange(f) {
  listeners.add(f);
  return () => listeners.delete(f);
}

/* The catalogue's text for key, with {name} placeholders replaced from vars. A missing key shows
 * itself (and is easy to spot), never an empty label. */
export function t(key, vars) {
  let s = catalogues[lang][key] ?? catalogues.vi[key] ?? key;
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
  return s;
}

const none = () => t('common.none');
const num = (v) => typeof v === 'number' && Number.isFinite(v);

export const fmtInt = (v) => (num(v) ? fmt.int.format(v) : none());
export const fmtDec = (v) => (num(v) ? fmt.dec.format(v) : none());
export const fmtPct = (v) => (num(v) ? fmt.pct.format(v) : none());
export const fmtMs = (v) => (num(v) ? t('unit.ms', { n: fmt.int.format(v) }) : none());

/* A date and time: vi-VN "23/11/2026 14:05" (day first, then the time). */
export function fmtDateTime(v) {
  if (v == null || v === '') return none();
  const d = v instanceof Date ? v : new Date(v);
  if (Number.isNaN(d.getTime())) return String(v);
  const p = Object.fromEntries(fmt.dateTime.formatToParts(d).map((x) => [x.type, x.value]));
  return `${p.day}/${p.month}/${p.year} ${p.hour}:${p.minute}`;
}

export const fmtTime = (d) => fmt.time.format(d);
/* A chart's day tick: "23/11" in both languages (Intl's vi-VN short form is "23-11"). */
export function fmtAxisDay(d) {
  const p = Object.fromEntries(fmt.dayMonth.formatToParts(d).map((x) => [x.type, x.value]));
  return `${p.day}/${p.month}`;
}
export const fmtAxisHour = (d) => fmt.hourMin.format(d);

/* Today's date in Asia/Ho_Chi_Minh as YYYY-MM-DD (a date without offset means UTC+07:00 to the
 * API, CONTRACT §2). */
export function todayVN() {
  return new Intl.DateTimeFormat('en-CA', { timeZone: TIME_ZONE }).format(new Date());
}
