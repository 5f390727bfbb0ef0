'use strict';

/**
 * Every expression of a diagram element, with the kind that decides how Qifu reads it — the same walk as
 * the server's web/designer_lint.collect (keep the two in step):
 *
 * condition (flow conditions, conditional events), timer:date|duration|cycle, parameter (service-task
 * inputOutput: text is a string, ${…} an expression), script, attribute (user task candidateGroups,
 * candidateUsers, assignee, dueDate: only ${…} is an expression), default (form field defaultValue),
 * expression (multi-instance loopCardinality, completionCondition).
 */

const USER_TASK_ATTRIBUTES = ['candidateGroups', 'candidateUsers', 'assignee', 'dueDate'];

function is(node, type) {
  return node && typeof node.$instanceOf === 'function' && node.$instanceOf(type);
}

function extensions(node, type) {
  const ext = node.extensionElements;
  return ((ext && ext.values) || []).filter((value) => is(value, type));
}

function body(expression) {
  return expression && typeof expression.body === 'string' ? expression.body : null;
}

function eventDefinitions(node) {
  return node.eventDefinitions || [];
}

/** [{kind, text, where}] of one flow element (not of elements nested in it). */
function expressionsOf(node) {
  const found = [];
  const add = (kind, text, where) => {
    if (typeof text === 'string' && text.trim()) {
      found.push({ kind, text: text.trim(), where });
    }
  };
  if (is(node, 'bpmn:SequenceFlow')) {
    add('condition', body(node.conditionExpression), '条件');
  }
  for (const definition of eventDefinitions(node)) {
    if (is(definition, 'bpmn:TimerEventDefinition')) {
      add('timer:date', body(definition.timeDate), '定时器（日期）');
      add('timer:duration', body(definition.timeDuration), '定时器（时长）');
      add('timer:cycle', body(definition.timeCycle), '定时器（循环）');
    } else if (is(definition, 'bpmn:ConditionalEventDefinition')) {
      add('condition', body(definition.condition), '条件事件');
    }
  }
  if (is(node, 'bpmn:ServiceTask')) {
    for (const io of extensions(node, 'camunda:InputOutput')) {
      for (const p of io.inputParameters || []) {
        add('parameter', p.value, `输入参数 ${p.name}`);
      }
      for (const p of io.outputParameters || []) {
        add('parameter', p.value, `输出参数 ${p.name}`);
      }
    }
  }
  if (is(node, 'bpmn:ScriptTask')) {
    add('script', node.script, '脚本');
  }
  if (is(node, 'bpmn:UserTask')) {
    for (const attr of USER_TASK_ATTRIBUTES) {
      add('attribute', node.get(`camunda:${attr}`), attr);
    }
    for (const form of extensions(node, 'camunda:FormData')) {
      for (const field of form.fields || []) {
        add('default', field.defaultValue, `表单字段 ${field.id} 默认值`);
      }
    }
  }
  const loop = node.loopCharacteristics;
  if (is(loop, 'bpmn:MultiInstanceLoopCharacteristics')) {
    add('expression', body(loop.loopCardinality), 'loopCardinality');
    add('expression', body(loop.completionCondition), 'completionCondition');
  }
  return found;
}

/** Every flow element of the definitions (sub-processes included), with its expressions. */
function collectExpressions(definitions) {
  const out = [];
  const visit = (container) => {
    for (const element of container.flowElements || []) {
      for (const e of expressionsOf(element)) {
        out.push(Object.assign({ id: element.id }, e));
      }
      if (element.flowElements) {
        visit(element);
      }
    }
  };
  for (const root of (definitions && definitions.rootElements) || []) {
    if (is(root, 'bpmn:Process')) {
      visit(root);
    }
  }
  return out;
}

// Camunda's JUEL, which Qifu does not run (expressions are Python): what a designer coming from Camunda
// writes out of habit. Compiling catches &&, || and !; these compile in Python but mean something else.
const JUEL_WORDS = [
  [/(^|[^\w.'"])(true|false)(?![\w'"])/, (m) => `JUEL 写法 ${m[2]}：Python 表达式中应写 ${m[2] === 'true' ? 'True' : 'False'}`],
  [/(^|[^\w.'"])null(?![\w'"])/, () => 'JUEL 写法 null：Python 表达式中应写 None'],
  [/(^|\s)empty\s+\w/, () => 'JUEL 写法 empty x：Python 表达式中应写 not x'],
  [/\s(eq|ne|lt|gt|le|ge)\s/, (m) => `JUEL 运算符 ${m[1]}：Python 表达式中应写 ${{ eq: '==', ne: '!=', lt: '<', gt: '>', le: '<=', ge: '>=' }[m[1]]}`],
  [/&&|\|\|/, () => 'JUEL 运算符 && / ||：Python 表达式中应写 and / or'],
  [/(^|[^!=<>])!(?!=)/, () => 'JUEL 运算符 !：Python 表达式中应写 not'],
  [/^#\{/, () => 'JUEL 的 #{…}：Qifu 只认 ${…}']
];

/** What in an expression is JUEL rather than Python (a reason), or null. */
function juelHabit(kind, text) {
  let source = text.trim();
  if (kind === 'parameter' || kind === 'attribute' || kind === 'default') {
    if (!source.includes('${') && !source.startsWith('#{')) {
      return null; // plain text
    }
  }
  if (source.startsWith('#{')) {
    return JUEL_WORDS[JUEL_WORDS.length - 1][1]();
  }
  const match = /^\$\{([\s\S]*)\}$/.exec(source);
  if (match) {
    source = match[1];
  } else if (kind.startsWith('timer:') || kind === 'condition') {
    if (/^(R\d*\/|PT?\d|\d{4}-\d)/i.test(source)) {
      return null; // an ISO 8601 literal
    }
  }
  const code = source.replace(/'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"/g, "''"); // not inside string literals
  for (const [pattern, say] of JUEL_WORDS) {
    const m = pattern.exec(code);
    if (m) {
      return say(m);
    }
  }
  return null;
}

module.exports = { collectExpressions, expressionsOf, extensions, is, juelHabit };
