'use strict';

const { context } = require('../context');
const { extensions, is } = require('../expressions');

/**
 * A user task's form fields must be ones Qifu's task forms can fill (engine/forms.py): the supported
 * types and constraints, an enum with options. Otherwise the task could never be completed, and a deploy
 * refuses it.
 */
module.exports = function formFieldType() {
  function check(node, reporter) {
    if (!is(node, 'bpmn:UserTask')) {
      return;
    }
    const types = (context.data && context.data.formTypes) || [];
    const constraints = (context.data && context.data.constraints) || [];
    for (const form of extensions(node, 'camunda:FormData')) {
      for (const field of form.fields || []) {
        const label = field.label ? `「${field.label}」(${field.id})` : field.id;
        const type = field.type || 'string';
        if (!types.includes(type)) {
          reporter.report(node.id, `表单字段 ${label} 的类型 ${type} 无法在任务表单中填写；可用类型：${types.join('、')}`);
        }
        if (type === 'enum' && !(field.values || []).length) {
          reporter.report(node.id, `表单字段 ${label} 是枚举类型但没有选项`);
        }
        const validation = field.validation;
        for (const constraint of (validation && validation.constraints) || []) {
          if (!constraints.includes(constraint.name)) {
            reporter.report(node.id, `表单字段 ${label} 的约束 ${constraint.name} 不受支持；可用：${constraints.join('、')}`);
          }
        }
      }
    }
  }
  return { check };
};
