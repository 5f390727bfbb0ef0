'use strict';

/**
 * What the rules judge against, shared by every rule instance:
 *
 * - data: the server's lint data (topics, formTypes, constraints). Defaults to ./qifu-data.json, a snapshot
 *   of `python -m web.designer_lint --data` (tests/test_bpmnlint_plugin.py keeps it equal); the modeler
 *   replaces it with /processes/api/lint-data, CI with the file named in QIFU_LINT_DATA.
 * - verdicts: Map of `kind + "\u0000" + text` → null (the server compiled it) or the server's reason. The
 *   modeler fills it from /processes/api/expressions while the designer edits; CI from QIFU_LINT_DATA.
 */
const snapshot = require('./qifu-data.json');
const nodeData = require('./node-data.js');

const context = {
  data: snapshot,
  verdicts: new Map(),
  serverVerdicts: false
};

function setData(data) {
  context.data = Object.assign({}, snapshot, data || {});
}

function setVerdicts(verdicts) {
  for (const [key, value] of Object.entries(verdicts || {})) {
    context.verdicts.set(key, value);
  }
  context.serverVerdicts = true;
}

function verdictKey(kind, text) {
  return `${kind}\u0000${String(text).trim()}`;
}

const loaded = nodeData && typeof nodeData.load === 'function' ? nodeData.load() : null;
if (loaded) {
  setData(loaded);
  setVerdicts(loaded.verdicts);
}

module.exports = { context, setData, setVerdicts, verdictKey };
