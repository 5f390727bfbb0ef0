#!/usr/bin/env node
// Checks that BPMN files are something a designer can open, edit and save in a standard modeler.
//
// bpmn-js / Camunda Modeler read diagrams through bpmn-moddle; whatever bpmn-moddle warns about on import
// (unknown elements or attributes, unresolved references) is silently dropped or mangled when the designer
// saves. So for every file given on the command line:
//   1. import it with bpmn-moddle `fromXML` (BPMN + Camunda descriptors) and FAIL on any import warning;
//   2. FAIL on elements/attributes from namespaces no descriptor knows (bpmn-moddle keeps those without a
//      warning, but nothing in our toolchain understands them: SpiffWorkflow runs the Camunda dialect only),
//      except Camunda Modeler's own metadata namespace (TOLERATED_NAMESPACES);
//   3. save it again with toXML and re-import the result (what the designer saves must open cleanly);
//   4. run bpmnlint with ./.bpmnlintrc and FAIL on errors (warnings are printed, not fatal).
// One summary line per file; details are indented below it. Exit status 1 when any file failed.
//
// Usage: node check.mjs [--config path/to/.bpmnlintrc] file.bpmn [file.bpmn ...]

import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

import BpmnModdle from 'bpmn-moddle';

const require = createRequire(import.meta.url);
const { Linter } = require('bpmnlint');
const NodeResolver = require('bpmnlint/lib/resolver/node-resolver');

const HERE = path.dirname(fileURLToPath(import.meta.url));

function usage(message) {
  process.stderr.write(`${message}\nusage: node check.mjs [--config .bpmnlintrc] file.bpmn...\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const files = [];
  let config = path.join(HERE, '.bpmnlintrc');
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--config') {
      config = argv[++i];
      if (!config) usage('--config needs a path');
    } else if (argv[i].startsWith('-')) {
      usage(`unknown option ${argv[i]}`);
    } else {
      files.push(argv[i]);
    }
  }
  if (!files.length) usage('no BPMN files given');
  return { files, config };
}

async function loadJson(file) {
  return JSON.parse(await readFile(file, 'utf-8'));
}

// Namespaces allowed although no descriptor describes them. Camunda Modeler itself writes
// modeler:executionPlatform / modeler:executionPlatformVersion on <definitions> and keeps them on save.
const TOLERATED_NAMESPACES = new Set(['http://camunda.org/schema/modeler/1.0']);

/** Elements and attributes that bpmn-moddle kept only as opaque "any" data: nothing can edit or run them. */
function foreignContent(root, moddle) {
  const found = [];
  const seen = new Set();
  const visit = (el, where, scope) => {
    if (!el || typeof el !== 'object' || seen.has(el)) return;
    seen.add(el);
    if (Array.isArray(el)) {
      el.forEach((child) => visit(child, where, scope));
      return;
    }
    if (!el.$type) return;
    const here = el.id ? `${el.$type}#${el.id}` : `${el.$type} in ${where}`;
    const attrs = el.$attrs || {};
    // namespace declarations in scope (prefix -> URI), for judging prefixed attributes by their URI
    const declared = Object.keys(attrs).filter((name) => name.startsWith('xmlns:'));
    if (declared.length) {
      scope = { ...scope };
      for (const name of declared) scope[name.slice('xmlns:'.length)] = attrs[name];
    }
    if (el.$descriptor && el.$descriptor.isGeneric) {
      const uri = el.$descriptor.ns && el.$descriptor.ns.uri;
      if (!TOLERATED_NAMESPACES.has(uri)) found.push(`unknown element <${el.$type}> in ${where}`);
    }
    for (const name of Object.keys(attrs)) {
      if (name === 'xmlns' || name.startsWith('xmlns:')) continue;
      // xsi:* attributes are handled by the XML layer itself (xsi:type). Unknown attributes of a known
      // package (camunda:candidateGroup, a typo) were already reported by fromXML as import warnings.
      const prefix = name.includes(':') ? name.split(':')[0] : null;
      if (prefix === 'xsi' || (prefix && moddle.getPackage(prefix))) continue;
      if (prefix && TOLERATED_NAMESPACES.has(scope[prefix])) continue;
      found.push(`unknown attribute <${name}> on ${here}`);
    }
    for (const key of Object.keys(el)) {
      if (key.startsWith('$') && key !== '$children' && key !== '$body') continue;
      const value = el[key];
      if (value && typeof value === 'object') {
        // References (sourceRef, bpmnElement, …) point at elements visited through their own parent.
        const prop = el.$descriptor && el.$descriptor.propertiesByName && el.$descriptor.propertiesByName[key];
        if (prop && prop.isReference) continue;
        visit(value, here, scope);
      }
    }
  };
  visit(root, 'definitions', {});
  return found;
}

async function checkFile(file, moddle, makeLinter) {
  const problems = [];
  let importWarnings = 0;
  let lintErrors = 0;
  let lintWarnings = 0;
  let xml;
  try {
    xml = await readFile(file, 'utf-8');
  } catch (err) {
    return { ok: false, line: `FAIL ${file}: cannot read (${err.message})`, problems };
  }

  let rootElement;
  try {
    const result = await moddle.fromXML(xml, 'bpmn:Definitions');
    rootElement = result.rootElement;
    for (const w of result.warnings || []) {
      importWarnings++;
      const id = w.element && w.element.id ? ` (${w.element.id})` : '';
      problems.push(`  import  error  ${w.message.split('\n')[0]}${id}`);
    }
  } catch (err) {
    const line = `FAIL ${file}: parse error: ${String(err.message).split('\n')[0]}`;
    for (const w of err.warnings || []) problems.push(`  import  error  ${w.message.split('\n')[0]}`);
    return { ok: false, line, problems };
  }

  for (const message of foreignContent(rootElement, moddle)) {
    importWarnings++;
    problems.push(`  import  error  ${message}`);
  }

  // Save as a modeler would (toXML) and open the result again: what the designer saves must import cleanly.
  if (importWarnings === 0) {
    try {
      const { xml: saved } = await moddle.toXML(rootElement, { format: true });
      const again = await moddle.fromXML(saved, 'bpmn:Definitions');
      for (const w of again.warnings || []) {
        importWarnings++;
        problems.push(`  round-trip  error  ${w.message.split('\n')[0]}`);
      }
    } catch (err) {
      importWarnings++;
      problems.push(`  round-trip  error  ${String(err.message).split('\n')[0]}`);
    }
  }

  const reports = await makeLinter().lint(rootElement);
  for (const [rule, entries] of Object.entries(reports)) {
    for (const r of entries) {
      const isError = r.category === 'error' || r.category === 'rule-error';
      if (isError) lintErrors++;
      else if (r.category === 'warn') lintWarnings++;
      const level = isError ? 'error' : r.category === 'warn' ? 'warning' : r.category;
      problems.push(`  ${rule}  ${level}  ${r.id || ''}  ${r.message}`);
    }
  }

  const ok = importWarnings === 0 && lintErrors === 0;
  const line =
    `${ok ? 'OK  ' : 'FAIL'} ${file}: ${importWarnings} import problem(s), ` +
    `${lintErrors} lint error(s), ${lintWarnings} lint warning(s)`;
  return { ok, line, problems };
}

async function main() {
  const { files, config: configPath } = parseArgs(process.argv.slice(2));
  const config = await loadJson(configPath);
  // Moddle extensions come from the config (as for the bpmnlint CLI), so `npx bpmnlint` in this directory
  // sees the same model. Camunda's descriptor (camunda:candidateGroups, formData, type/topic, inputOutput…)
  // is required: without it every camunda:* attribute would pass unchecked as foreign data.
  const resolverRequire = createRequire(path.join(HERE, 'package.json'));
  const extensions = {};
  for (const [prefix, descriptor] of Object.entries(config.moddleExtensions || {})) {
    extensions[prefix] = await loadJson(resolverRequire.resolve(descriptor));
  }
  if (!extensions.camunda) throw new Error(`${configPath}: moddleExtensions.camunda is missing`);
  const moddle = new BpmnModdle(extensions);
  // A fresh Linter per file: rule instances are cached per Linter and some keep state across lint() calls
  // (no-duplicate-sequence-flows remembers every flow it saw, so a shared Linter reports flows of the
  // previous file as duplicates). Rules and plugins resolve from this package, wherever we are started from.
  const makeLinter = () => new Linter({ config, resolver: new NodeResolver({ require: resolverRequire }) });

  let failed = 0;
  for (const file of files) {
    const { ok, line, problems } = await checkFile(file, moddle, makeLinter);
    if (!ok) failed++;
    process.stdout.write(`${line}\n`);
    for (const p of problems) process.stdout.write(`${p}\n`);
  }
  process.stdout.write(`${files.length - failed}/${files.length} BPMN file(s) passed\n`);
  process.exit(failed ? 1 : 0);
}

main().catch((err) => {
  process.stderr.write(`bpmn-check crashed: ${err && err.stack ? err.stack : err}\n`);
  process.exit(3);
});
