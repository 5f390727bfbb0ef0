'use strict';

/**
 * bpmnlint-plugin-qifu: what a diagram must satisfy to run on Qifu, flagged on the element while a designer
 * edits (the in-browser modeler, via bpmn-js-bpmnlint) and in CI (scripts/check-bpmn.sh, tools/bpmn-check).
 *
 *   "extends": ["bpmnlint:recommended", "plugin:qifu/recommended"]
 *
 * The data the rules judge against (registered topics, form field types, the server's verdict on each
 * expression) lives in ./context.js; see README.md.
 */
module.exports = {
  configs: {
    recommended: {
      rules: {
        'qifu/known-topic': 'error',
        'qifu/valid-expression': 'error',
        'qifu/working-day-deadline': 'warn',
        'qifu/form-field-type': 'error',
        'qifu/user-task-assignment': 'error'
      }
    }
  }
};
