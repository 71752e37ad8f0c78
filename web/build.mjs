// web/build.mjs — bundles the dashboard with esbuild (minified, content-hashed file names) into
// OUTDIR/web-dist and writes OUTDIR/web-manifest.json (the files and their URL paths), which
// scripts/embed_web.py turns into C, and, when asked, a depfile naming every source file the
// bundle was made from (so a new module needs no change to web/meson.build). Run by meson:
//   node web/build.mjs OUTDIR [DEPFILE]
// Fails with a clear message when the npm packages are not installed (scripts/deps.sh installs
// them with `npm ci`), so a build never ships an empty dashboard.
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const outdir = process.argv[2] && resolve(process.argv[2]);
if (!outdir) {
  console.error('usage: node web/build.mjs OUTDIR');
  process.exit(2);
}
for (const pkg of ['esbuild', 'preact', 'htm', 'uplot']) {
  if (!existsSync(join(here, 'node_modules', pkg, 'package.json'))) {
    console.error(`web/build.mjs: npm package '${pkg}' is not installed in web/node_modules; ` +
      'run scripts/deps.sh (it runs `npm ci` in web/) — the dashboard cannot be built without it.');
    process.exit(1);
  }
}
const esbuild = await import('esbuild');

// Every string comes from the catalogues: both languages have the same keys, and every literal
// key the sources ask for (t('…')) exists. A missing one fails the build.
function checkCatalogues() {
  // i18n/vi.json + en.json, and one pair per area (i18n/AREA.vi.json + AREA.en.json)
  const problems = [];
  const vi = {};
  for (const f of readdirSync(join(here, 'src/i18n')).filter((n) => /(^|\.)vi\.json$/.test(n))) {
    const g = f.replace(/vi\.json$/, 'en.json');
    const a = JSON.parse(readFileSync(join(here, 'src/i18n', f), 'utf8'));
    const b = JSON.parse(readFileSync(join(here, 'src/i18n', g), 'utf8'));
    for (const k of Object.keys(a)) if (!(k in b)) problems.push(`'${k}' is in ${f} but not in ${g}`);
    for (const k of Object.keys(b)) if (!(k in a)) problems.push(`'${k}' is in ${g} but not in ${f}`);
    for (const k of Object.keys(a)) if (k in vi) problems.push(`'${k}' is in ${f} and another catalogue`);
    Object.assign(vi, a);
  }
  const walk = (dir) => readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? walk(join(dir, d.name)) : d.name.endsWith('.js') ? [join(dir, d.name)] : []);
  for (const file of walk(join(here, 'src'))) {
    for (const m of readFileSync(file, 'utf8').matchAll(/\bt\('([a-z0-9_.]+)'/g))
      if (!(m[1] in vi)) problems.push(`${relative(here, file)} asks for '${m[1]}', which the catalogues lack`);
  }
  if (problems.length) {
    console.error('web/build.mjs: the message catalogues are incomplete:\n  ' + problems.join('\n  '));
    process.exit(1);
  }
}
checkCatalogues();

const dist = join(outdir, 'web-dist');
rmSync(dist, { recursive: true, force: true });
mkdirSync(join(dist, 'assets'), { recursive: true });

// One JS bundle and its CSS, named by content hash: cached for a year by browsers (immutable).
const result = await esbuild.build({
  absWorkingDir: here,
  entryPoints: { app: 'src/main.js' },
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['chrome100', 'firefox100', 'safari15'],
  outdir: join(dist, 'assets'),
  entryNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  metafile: true,
  legalComments: 'none',
  logLevel: 'warning',
});

const outputs = Object.keys(result.metafile.outputs).map((p) => join(here, p));
const js = outputs.find((p) => p.endsWith('.js'));
const css = outputs.find((p) => p.endsWith('.css'));
const url = (p) => '/' + relative(dist, p).split('\\').join('/');

// index.html: no inline script or style (the Content-Security-Policy allows only 'self').
const html = readFileSync(join(here, 'src', 'index.html'), 'utf8')
  .replace('%CSS%', url(css))
  .replace('%JS%', url(js));
writeFileSync(join(dist, 'index.html'), html);
copyFileSync(join(here, 'src', 'favicon.svg'), join(dist, 'favicon.svg'));

const files = [
  { path: '/index.html', file: join(dist, 'index.html'), immutable: false },
  { path: '/favicon.svg', file: join(dist, 'favicon.svg'), immutable: false },
];
for (const p of [js, css])
  files.push({ path: url(p), file: p, immutable: true });
writeFileSync(join(outdir, 'web-manifest.json'), JSON.stringify({ files }, null, 1) + '\n');

// Makefile-style dependencies of the manifest for ninja: the bundle's inputs (our sources and the
// npm packages' files it used), the page template, the favicon, this script and the lockfile.
if (process.argv[3]) {
  const deps = [
    ...Object.keys(result.metafile.inputs).map((p) => join(here, p)),
    join(here, 'src', 'index.html'), join(here, 'src', 'favicon.svg'),
    join(here, 'build.mjs'), join(here, 'package-lock.json'),
  ].map((p) => p.replace(/([ #$])/g, '\\$1'));
  writeFileSync(resolve(process.argv[3]), `${join(outdir, 'web-manifest.json')}: ${deps.join(' \\\n ')}\n`);
}
