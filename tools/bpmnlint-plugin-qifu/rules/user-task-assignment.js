'use strict';

const { is } = require('../expressions');

function lanesOf(container) {
  const lanes = [];
  const visit = (laneSet) => {
    for (const lane of (laneSet && laneSet.lanes) || []) {
      lanes.push(lane);
      visit(lane.childLaneSet);
    }
  };
  for (const laneSet of container.laneSets || []) {
    visit(laneSet);
  }
  return lanes;
}

function inLane(node) {
  for (let container = node.$parent; container; container = container.$parent) {
    if (lanesOf(container).some((lane) => (lane.flowNodeRef || []).includes(node))) {
      return true;
    }
  }
  return false;
}

/**
 * Somebody must see a user task in their inbox: Qifu offers it to camunda:candidateGroups (or
 * candidateUsers / assignee), else to the lane's name. A user task with neither waits for nobody.
 */
module.exports = function userTaskAssignment() {
  function check(node, reporter) {
    if (!is(node, 'bpmn:UserTask')) {
      return;
    }
    const assigned = ['candidateGroups', 'candidateUsers', 'assignee']
      .some((attr) => String(node.get(`camunda:${attr}`) || '').trim());
    if (!assigned && !inLane(node)) {
      reporter.report(node.id, '用户任务没有候选组（camunda:candidateGroups）、候选人或办理人，也不在任何泳道中：没有人会在待办中看到它');
    }
  }
  return { check };
};
