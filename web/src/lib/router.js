// lib/router.js — history routing without hashes: the server answers index.html for every page
// path (src/web/web.c), and this module maps location.pathname to a page. navigate() changes the
// address without a reload; links use onLink so a plain click stays in the app.
const listeners = new Set();

export function currentPath() {
  return location.pathname.replace(/\/+$/, '') || '/';
}

export function navigate(path, replace = false) {
  if (path === currentPath() + location.search) return;
  history[replace ? 'replaceState' : 'pushState'](null, '', path);
  listeners.forEach((f) => f());
  window.scrollTo(0, 0);
}

export function onRoute(f) {
  listeners.add(f);
  window.addEventListener('popstate', f);
  return () => {
    listeners.delete(f);
    window.removeEventListener('popstate', f);
  };
}

/* onClick of an <a href="/…">: a plain click navigates in the app; a click with a modifier
 * (new tab, new window) is left to the browser. */
export function onLink(e) {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const href = e.currentTarget.getAttribute('href');
  if (!href || !href.startsWith('/')) return;
  e.preventDefault();
  navigate(href);
}
