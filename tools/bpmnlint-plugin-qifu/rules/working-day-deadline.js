'use strict';

const { is } = require('../expressions');

// P3D, P1W, P2DT4H: days and weeks of the plain calendar, weekends and statutory holidays included.
const CALENDAR_DAYS = /^P(?:\d+W)?(?:\d+D)?(?:T.*)?$/i;

/**
 * A hint: a timer duration in days counts calendar days, but the deadlines of both service-centre
 * documents are working days (Chinese statutory calendar with 调休). Qifu counts those with
 * ${working_days_after(start, n)} as a timeDate.
 */
module.exports = function workingDayDeadline() {
  function check(node, reporter) {
    if (!is(node, 'bpmn:Event')) {
      return;
    }
    for (const definition of node.eventDefinitions || []) {
      if (!is(definition, 'bpmn:TimerEventDefinition') || !definition.timeDuration) {
        continue;
      }
      const value = String(definition.timeDuration.body || '').trim();
      if (/[DW]/i.test(value.split('T')[0]) && CALENDAR_DAYS.test(value)) {
        reporter.report(node.id, `期限 ${value} 按日历日计算（含周末和法定节假日）；按工作日计算请改用“日期”定时器 `
          + '${working_days_after(received_at, N)}');
      }
    }
  }
  return { check };
};
