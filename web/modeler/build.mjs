#!/usr/bin/env node
// Bundles the in-browser modeler (web/static/modeler/src/modeler.js) with esbuild into web/static/modeler/dist/:
// modeler.js, modeler.css (fonts inlined: CSP allows font-src data:) and LICENSES.txt (every package that
// ended up in the bundle, with its licence text). Nothing here is committed: scripts/build-modeler.sh runs
// `npm ci` from package-lock.json and then this, at set-up (`make run`) and before the browser tests.
//
// The lint rules are the CI's: tools/bpmn-check/.bpmnlintrc (bpmnlint:recommended + plugin:qifu/recommended)
// is read here and packed into a virtual module `qifu:lint-config` ({ config, resolver }, what
// bpmn-js-bpmnlint expects), so the designer sees in the browser exactly what `make test` would report.

import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

import * as esbuild from 'esbuild';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');
const ENTRY = path.join(ROOT, 'web', 'static', 'modeler', 'src', 'modeler.js');
const OUT = path.join(ROOT, 'web', 'static', 'modeler', 'dist');
const LINTRC = path.join(ROOT, 'tools', 'bpmn-check', '.bpmnlintrc');
const require = createRequire(path.join(HERE, 'package.json'));

function ruleNames(config, seen = new Set()) {
  const names = new Set(Object.keys(config.rules || {}));
  for (const ext of [].concat(config.extends || [])) {
    if (seen.has(ext)) continue;
    seen.add(ext);
    const base = ext.startsWith('plugin:')
      ? require(`bpmnlint-plugin-${ext.slice(7).split('/')[0]}`).configs[ext.split('/')[1]]
      : require(`bpmnlint/config/${ext.split(':')[1]}`);
    for (const name of ruleNames(base, seen)) names.add(name);
  }
  return names;
}

/** The virtual module `qifu:lint-config`: the CI's .bpmnlintrc with every rule it names imported statically. */
function lintConfigModule() {
  const rc = JSON.parse(readFileSync(LINTRC, 'utf-8'));
  const config = { extends: rc.extends, rules: rc.rules || {} };
  const lines = [];
  const rules = [];
  [...ruleNames(config)].sort().forEach((name, n) => {
    const [pkg, rule] = name.includes('/') ? [`bpmnlint-plugin-${name.split('/')[0]}`, name.split('/')[1]]
      : ['bpmnlint', name];
    lines.push(`import rule${n} from ${JSON.stringify(`${pkg}/rules/${rule}`)};`);
    rules.push(`${JSON.stringify(`${pkg}/${rule}`)}: rule${n}`);
  });
  const configs = [];
  for (const ext of [].concat(config.extends || [])) {
    const n = configs.length;
    if (ext.startsWith('plugin:')) {
      const [plugin, name] = ext.slice(7).split('/');
      lines.push(`import plugin${n} from ${JSON.stringify(`bpmnlint-plugin-${plugin}`)};`);
      configs.push(`${JSON.stringify(`bpmnlint-plugin-${plugin}/${name}`)}: plugin${n}.configs[${JSON.stringify(name)}]`);
    } else {
      const name = ext.split(':')[1];
      lines.push(`import config${n} from ${JSON.stringify(`bpmnlint/config/${name}`)};`);
      configs.push(`${JSON.stringify(`bpmnlint/${name}`)}: config${n}`);
    }
  }
  return `${lines.join('\n')}
const RULES = {${rules.join(', ')}};
const CONFIGS = {${configs.join(', ')}};
function find(table, pkg, name, what) {
  const found = table[pkg + '/' + name];
  if (!found) { throw new Error('unknown ' + what + ' <' + pkg + '/' + name + '>'); }
  return found;
}
export default {
  config: ${JSON.stringify(config)},
  resolver: {
    resolveRule: (pkg, name) => find(RULES, pkg, name, 'rule'),
    resolveConfig: (pkg, name) => find(CONFIGS, pkg, name, 'config')
  }
};
`;
}

const virtualLintConfig = {
  name: 'qifu-lint-config',
  setup(build) {
    build.onResolve({ filter: /^qifu:lint-config$/ }, () => ({ path: 'lint-config', namespace: 'qifu' }));
    build.onLoad({ filter: /.*/, namespace: 'qifu' }, () => ({
      contents: lintConfigModule(), loader: 'js', resolveDir: HERE
    }));
  }
};

function packageOf(file) {
  let dir = path.dirname(file);
  while (dir !== path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    if (existsSync(manifest)) {
      const pkg = JSON.parse(readFileSync(manifest, 'utf-8'));
      if (pkg.name) return { dir, pkg };
    }
    dir = path.dirname(dir);
  }
  return null;
}

function licences(metafile) {
  const found = new Map();
  for (const input of Object.keys(metafile.inputs)) {
    if (!input.includes('node_modules')) continue;
    const owner = packageOf(path.resolve(HERE, input));
    if (owner && !found.has(owner.pkg.name)) found.set(owner.pkg.name, owner);
  }
  const parts = ['Third-party software in modeler.js / modeler.css (installed from npm by scripts/build-modeler.sh,',
    'versions pinned in web/modeler/package-lock.json). bpmn-js: keep the bpmn.io watermark visible (its licence).', ''];
  for (const name of [...found.keys()].sort()) {
    const { dir, pkg } = found.get(name);
    const file = readdirSync(dir).find((f) => /^(licen[cs]e|copying)(\.|$)/i.test(f));
    parts.push('='.repeat(78), `${name} ${pkg.version}  (${pkg.license || 'see below'})`, '-'.repeat(78));
    parts.push(file ? readFileSync(path.join(dir, file), 'utf-8').trim() : `licence: ${pkg.license || 'unknown'}`, '');
  }
  return { text: parts.join('\n'), count: found.size };
}

async function main() {
  mkdirSync(OUT, { recursive: true });
  const result = await esbuild.build({
    absWorkingDir: HERE,
    entryPoints: { modeler: ENTRY },
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: ['es2020'],
    minify: true,
    sourcemap: false,
    legalComments: 'none', // the licences are collected into LICENSES.txt instead
    outdir: OUT,
    nodePaths: [path.join(HERE, 'node_modules')],
    loader: { '.woff': 'dataurl', '.woff2': 'dataurl', '.ttf': 'dataurl', '.eot': 'dataurl', '.svg': 'dataurl' },
    define: { 'process.env.NODE_ENV': '"production"' },
    plugins: [virtualLintConfig],
    metafile: true,
    logLevel: 'warning'
  });
  const { text, count } = licences(result.metafile);
  writeFileSync(path.join(OUT, 'LICENSES.txt'), text);
  process.stdout.write(`modeler bundle written to ${path.relative(ROOT, OUT)}/ (${count} npm packages, licences in LICENSES.txt)\n`);
}

main().catch((err) => {
  process.stderr.write(`modeler build failed: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
