'use strict';

const { context } = require('../context');
const { is } = require('../expressions');

/**
 * A service task must be a Camunda *External* task whose topic a Qifu handler registered (handlers/__init__.py);
 * a deploy refuses anything else. The registered topics come from the server (see ../context.js).
 */
module.exports = function knownTopic() {
  function check(node, reporter) {
    if (!is(node, 'bpmn:ServiceTask')) {
      return;
    }
    const type = node.get('camunda:type');
    const topic = node.get('camunda:topic');
    const topics = Object.keys((context.data && context.data.topics) || {});
    if (type !== 'external' || !topic) {
      reporter.report(node.id, '服务任务必须是 Camunda 外部任务：实现方式选“External”（camunda:type="external"）并填写主题（topic）');
      return;
    }
    if (!topics.includes(topic)) {
      reporter.report(node.id, `未注册的服务主题「${topic}」，部署会被拒绝；已注册：${topics.join('、') || '无'}`);
    }
  }
  return { check };
};
