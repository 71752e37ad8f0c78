// bench/page/summary.mjs — reads Lighthouse JSON reports (bench/page/run.sh) and prints, as a
// Markdown table, the median run (by performance score, then first contentful paint) against the
// targets of issue 6 / Annex II. Measured values (observed*) are used: throttling is "provided".
//   node summary.mjs RECORDS COMMIT BINARY lh-1.json lh-2.json …
import { readFileSync } from 'node:fs';

const [records, commit, binary, ...files] = process.argv.slice(2);
const LIVE = '/api/v1/live'; // an event stream: open for as long as the page is

function measure(file) {
  const lh = JSON.parse(readFileSync(file, 'utf8'));
  const m = lh.audits.metrics.details.items[0];
  const reqs = lh.audits['network-requests'].details.items;
  const timed = reqs.filter((r) => !r.url.includes(LIVE));
  const slowest = timed.reduce((a, r) => ((r.networkEndTime - r.networkRequestTime) > (a ? a.networkEndTime - a.networkRequestTime : -1) ? r : a), null);
  const jsCss = reqs.filter((r) => r.resourceType === 'Script' || r.resourceType === 'Stylesheet')
    .reduce((n, r) => n + (r.transferSize || 0), 0);
  return {
    file,
    score: Math.round(lh.categories.performance.score * 100),
    fcp: m.observedFirstContentfulPaint,
    lcp: m.observedLargestContentfulPaint,
    load: m.observedLoad,
    slowest: slowest ? slowest.networkEndTime - slowest.networkRequestTime : 0,
    slowestUrl: slowest ? new URL(slowest.url).pathname : '',
    requests: reqs.length,
    jsCss,
    total: reqs.reduce((n, r) => n + (r.transferSize || 0), 0),
  };
}

const runs = files.map(measure).sort((a, b) => b.score - a.score || a.fcp - b.fcp);
const r = runs[Math.floor((runs.length - 1) / 2)];
const ms = (v) => `${Math.round(v)} ms`;
const kb = (v) => `${(v / 1024).toFixed(1)} KB`;
const row = (what, value, target, ok) => `| ${what} | ${value} | ${target} | ${ok ? 'yes' : 'no'} |`;
console.log(`\n## ${new Date().toISOString().slice(0, 19)}Z — commit ${commit} — page (dashboard overview, Lighthouse)\n`);
console.log(`Overview page, signed in as an analyst, demo data (${Number(records).toLocaleString('en')} transactions), ` +
  `desktop preset, cold cache, measured (throttling provided); median of ${runs.length} runs ` +
  `(scores ${runs.map((x) => x.score).join(', ')}); binary ${binary}.\n`);
console.log('| measure | result | target | met |\n|---|---|---|---|');
console.log(row('first contentful paint', ms(r.fcp), '≤ 800 ms', r.fcp <= 800));
console.log(row('largest contentful paint', ms(r.lcp), '≤ 1200 ms', r.lcp <= 1200));
console.log(row('fully loaded (load event)', ms(r.load), '≤ 1500 ms', r.load <= 1500));
console.log(row(`slowest request (${r.slowestUrl}; ${r.requests} requests, the live stream aside)`, ms(r.slowest), '≤ 100 ms', r.slowest <= 100));
console.log(row('performance score', String(r.score), '≥ 95', r.score >= 95));
console.log(row('JavaScript + CSS transferred (gzip)', kb(r.jsCss), '≤ 150 KB', r.jsCss <= 150 * 1024));
console.log(row('everything transferred', kb(r.total), '—', true));
