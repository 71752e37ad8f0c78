// lib/api.js — calls to the DTM API from the dashboard. The session is an HttpOnly cookie set by
// POST /api/v1/session; every request that changes something carries the session's CSRF token
// in X-CSRF-Token (CONTRACT §3, checked by the router). A 401 on any call means the session has
// ended: the app is told (onSessionEnded) and goes back to the sign-in page with a message.
// Errors are RFC 9457 problems, already in the language asked for with Accept-Language.
import { getLang } from './i18n.js';

let csrfToken = null;
let sessionEnded = () => {};

export function setCsrf(token) {
  csrfToken = token || null;
}

export function onSessionEnded(f) {
  sessionEnded = f;
}

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.code = problem && typeof problem.type === 'string' ? problem.type.replace(/^urn:dtm:problem:/, '') : '';
    this.problem = problem;
  }
}

/* One call: method, path (with its query), an optional JSON body. Resolves to the parsed JSON
 * answer (null when there is none). opts.signIn: a 401 is the sign-in's own answer, not the end
 * of a session. */
export async function api(method, path, body, opts = {}) {
  const headers = { Accept: 'application/json', 'Accept-Language': getLang() };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  let r;
  try {
    r = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(0, { detail: e.message });
  }
  const type = r.headers.get('Content-Type') || '';
  const data = type.includes('json') ? await r.json().catch(() => null) : null;
  if (r.status === 401 && !opts.signIn) sessionEnded();
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body === undefined ? {} : body);

/* A query string from an object (arrays repeat the parameter: where=a&where=b). */
export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v == null) continue;
    for (const x of Array.isArray(v) ? v : [v]) u.append(k, x);
  }
  return u.toString();
}

/* Sends a file (POST, the body as is) with the session's CSRF token, telling onProgress(sent,
 * total) as it goes — fetch cannot report an upload's progress, XMLHttpRequest can. Resolves
 * to the parsed JSON answer; rejects with an ApiError like api(). */
export function upload(path, file, headers, onProgress) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open('POST', path);
    x.setRequestHeader('Accept', 'application/json');
    x.setRequestHeader('Accept-Language', getLang());
    if (csrfToken) x.setRequestHeader('X-CSRF-Token', csrfToken);
    for (const [k, v] of Object.entries(headers)) x.setRequestHeader(k, v);
    x.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
    x.onerror = () => reject(new ApiError(0, { detail: 'network error' }));
    x.onload = () => {
      let data = null;
      try {
        data = JSON.parse(x.responseText);
      } catch (e) {
        data = null;
      }
      if (x.status === 401) sessionEnded();
      if (x.status < 200 || x.status > 299) reject(new ApiError(x.status, data));
      else resolve(data);
    };
    x.send(file);
  });
}
