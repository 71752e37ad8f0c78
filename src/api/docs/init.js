// src/api/docs/init.js — starts Redoc on the /docs page (src/api/docs.c): the document's URL and
// the language come from data attributes of #redoc, so the page has no inline script (CSP).
(function () {
  var el = document.getElementById('redoc');
  if (!el || !window.Redoc) return;
  window.Redoc.init(el.getAttribute('data-spec'), {
    hideDownloadButton: false,
    expandResponses: '200,201,202',
    jsonSampleExpandLevel: 3,
    pathInMiddlePanel: true,
    sortPropsAlphabetically: false,
    theme: { colors: { primary: { main: '#b3261e' } }, typography: { fontFamily: 'system-ui, sans-serif', headings: { fontFamily: 'system-ui, sans-serif' } } }
  }, el, function () { document.body.setAttribute('data-ready', '1'); });
})();
