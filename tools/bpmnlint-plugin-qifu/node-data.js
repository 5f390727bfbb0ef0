'use strict';

// Node only (package.json "browser" maps this file to nothing): scripts/check-bpmn.sh exports what the
// server knows (`python -m web.designer_lint FILE…`: topics, form types and the verdict on every
// expression of the files) into a JSON file and names it in QIFU_LINT_DATA.
const fs = require('fs');

function load() {
  const file = process.env.QIFU_LINT_DATA;
  if (!file) {
    return null;
  }
  return JSON.parse(fs.readFileSync(file, 'utf-8'));
}

module.exports = { load };
