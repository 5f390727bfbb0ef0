'use strict';

const { context, verdictKey } = require('../context');
const { expressionsOf, is, juelHabit } = require('../expressions');

/**
 * Every expression must be one Qifu accepts. The verdict is the server's: the modeler asks
 * /processes/api/expressions (compiled the way a deploy compiles: RestrictedPython, Qifu's guards, timer
 * literals parsed), CI reads it from QIFU_LINT_DATA. Besides, Camunda's JUEL habits that would compile as
 * Python but mean something else (true, null, eq, empty…) are flagged here.
 */
module.exports = function validExpression() {
  function check(node, reporter) {
    if (!is(node, 'bpmn:FlowElement')) {
      return;
    }
    for (const { kind, text, where } of expressionsOf(node)) {
      const verdict = context.verdicts.get(verdictKey(kind, text));
      if (verdict) {
        reporter.report(node.id, `${where}：Qifu 不接受此表达式（${verdict}）`);
        continue;
      }
      const habit = juelHabit(kind, text);
      if (habit) {
        reporter.report(node.id, `${where}：${habit}（Qifu 的表达式是受限的 Python，不是 JUEL）`);
      }
    }
  }
  return { check };
};
