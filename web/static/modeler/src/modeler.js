/* The in-browser modeler of the 流程设计 pages (bundled by web/modeler/build.mjs; no CDN, no inline script).
 *
 * bpmn-js Modeler + properties panel (Camunda 7) + camunda-bpmn-moddle (camunda: attributes survive a save)
 * + element templates (processes/.camunda/element-templates, served by /processes/api/element-templates)
 * + bpmn-js-bpmnlint with the CI's rules (tools/bpmn-check/.bpmnlintrc, Qifu's plugin included).
 *
 * While the designer edits, every expression of the diagram is sent to /processes/api/expressions once and
 * judged the way a deploy compiles it; the verdicts feed the plugin's qifu/valid-expression rule, so the
 * problem shows on the element. 部署为新版本 posts the XML to /processes/api/preview (validated as
 * `qifu deploy` validates, held on the server, nothing stored), shows the changes against the newest version,
 * and only 确认部署 (/processes/api/deploy) stores it.
 */
import BpmnModeler from 'bpmn-js/lib/Modeler';
import {
  BpmnPropertiesPanelModule,
  BpmnPropertiesProviderModule,
  CamundaPlatformPropertiesProviderModule
} from 'bpmn-js-properties-panel';
import { ElementTemplatesPropertiesProviderModule } from 'bpmn-js-element-templates';
import CamundaBehaviorsModule from 'camunda-bpmn-js-behaviors/lib/camunda-platform';
import camundaModdle from 'camunda-bpmn-moddle/resources/camunda.json';
import lintModule from 'bpmn-js-bpmnlint';
import lintConfig from 'qifu:lint-config';
import { context, setData, setVerdicts, verdictKey } from 'bpmnlint-plugin-qifu/context';
import { collectExpressions } from 'bpmnlint-plugin-qifu/expressions';

import { translateModule, zh } from './translations';

import 'bpmn-js/dist/assets/diagram-js.css';
import 'bpmn-js/dist/assets/bpmn-js.css';
import 'bpmn-js/dist/assets/bpmn-font/css/bpmn-embedded.css';
import '@bpmn-io/properties-panel/dist/assets/properties-panel.css';
import 'bpmn-js-element-templates/dist/assets/element-templates.css';
import 'bpmn-js-bpmnlint/dist/assets/css/bpmn-js-bpmnlint.css';
import './modeler.css';

const app = document.getElementById('modeler-app');
const statusLine = document.getElementById('modeler-status');
const report = document.getElementById('modeler-report');
const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || '';

function say(text, state) {
  statusLine.textContent = text;
  if (state) app.setAttribute('data-state', state);
}

async function request(url, body) {
  const options = body === undefined ? { credentials: 'same-origin' } : {
    method: 'POST', credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', 'X-CSRFToken': csrf },
    body: JSON.stringify(body)
  };
  const response = await fetch(url, options);
  const type = response.headers.get('Content-Type') || '';
  const data = type.includes('json') ? await response.json() : await response.text();
  if (!response.ok) {
    const error = new Error((data && data.error && data.error.message) || `HTTP ${response.status}`);
    error.detail = data && data.error;
    throw error;
  }
  return data;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === 'class') node.className = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat(3)) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function showReport(...content) {
  report.replaceChildren(...content.flat(3).filter((c) => c !== null && c !== undefined));
  report.hidden = false;
}

// --- element templates: choose one (the panel's 选择 button fires elementTemplates.select) --------------
function templateChooser(modeler) {
  const elementTemplates = modeler.get('elementTemplates');
  modeler.get('eventBus').on('elementTemplates.select', (event) => {
    const element = event.element;
    const type = element.businessObject.$type;
    const offered = elementTemplates.getAll().filter((t) => (t.appliesTo || []).some((a) => element.businessObject.$instanceOf(a)));
    const list = el('ul', { class: 'template-list' }, offered.map((template) => el('li', {},
      el('button', {
        type: 'button', 'data-template': template.id,
        onclick: () => {
          elementTemplates.applyTemplate(element, template);
          report.hidden = true;
        }
      }, template.name), template.description ? el('small', {}, ` ${template.description}`) : null)));
    showReport(el('h2', {}, `为 ${element.businessObject.name || element.id} 选择元素模板（${type}）`),
      offered.length ? list : el('p', {}, '没有适用于此元素的模板'),
      el('button', { type: 'button', onclick: () => { report.hidden = true; } }, '关闭'));
  });
}

// --- the server's verdict on every expression --------------------------------------------------------
let pendingCheck = null;

async function checkExpressions(modeler) {
  const found = collectExpressions(modeler.getDefinitions());
  const unknown = found.filter((e) => !context.verdicts.has(verdictKey(e.kind, e.text)));
  const seen = new Set();
  const ask = unknown.filter((e) => {
    const key = verdictKey(e.kind, e.text);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  }).map((e) => ({ kind: e.kind, text: e.text }));
  if (ask.length) {
    const { verdicts } = await request(app.dataset.expressionsUrl, { expressions: ask.slice(0, 2000) });
    setVerdicts(verdicts);
  }
  return modeler.get('linting').update();
}

function scheduleCheck(modeler) {
  clearTimeout(pendingCheck);
  pendingCheck = setTimeout(() => {
    checkExpressions(modeler).catch((err) => say(`表达式检查失败：${err.message}`));
  }, 300);
}

async function lintIssues(modeler) {
  await checkExpressions(modeler);
  const results = await modeler.get('linting').lint();
  const issues = [];
  for (const [rule, entries] of Object.entries(results)) {
    for (const entry of entries) {
      issues.push({ rule, id: entry.id, message: entry.message, category: entry.category });
    }
  }
  return issues;
}

function issueList(issues) {
  return el('ul', { class: 'lint-issues' }, issues.map((i) => el('li', {
    class: `issue issue-${i.category}`, 'data-rule': i.rule, 'data-element': i.id || ''
  }, `${i.category === 'error' ? '错误' : '提示'} ${i.id || ''}：${i.message}（${i.rule}）`)));
}

function changeList(title, items, css) {
  if (!items || !items.length) return null;
  return [el('h3', { class: css }, `${title}（${items.length}）`),
    el('ul', { class: `changes ${css}` }, items.map((c) => el('li', { 'data-element': c.element },
      el('strong', {}, `${c.kind}${c.name ? `「${c.name}」` : ''}`), ' ', el('code', {}, c.element),
      c.details && c.details.length ? el('ul', {}, c.details.map((d) => el('li', {}, d))) : null)))];
}

async function currentXml(modeler) {
  const { xml } = await modeler.saveXML({ format: true });
  return xml;
}

async function runChecks(modeler) {
  say('正在检查…', 'checking');
  const issues = await lintIssues(modeler);
  let server;
  try {
    server = await request(app.dataset.previewUrl, { xml: await currentXml(modeler), filename: app.dataset.filename, check_only: true });
  } catch (err) {
    server = { error: err.detail || { message: err.message } };
  }
  const errors = issues.filter((i) => i.category === 'error');
  showReport(el('h2', {}, '检查结果'),
    server.error ? el('p', { class: 'alert', id: 'server-refusal' }, `部署校验未通过：${server.error.element ? `${server.error.element}：` : ''}${server.error.message}`)
      : el('p', { id: 'server-ok' }, '部署校验通过（与 qifu deploy 相同的校验）。'),
    issues.length ? issueList(issues) : el('p', { id: 'lint-clean' }, 'Qifu 检查规则未发现问题。'));
  say(errors.length || server.error ? `发现 ${errors.length} 个错误` : '检查通过', 'checked');
  return { issues, errors, server };
}

async function deploy(modeler) {
  say('正在校验并比较改动…', 'previewing');
  const issues = await lintIssues(modeler);
  const errors = issues.filter((i) => i.category === 'error');
  let preview;
  try {
    preview = await request(app.dataset.previewUrl, { xml: await currentXml(modeler), filename: app.dataset.filename });
  } catch (err) {
    const e = err.detail || { message: err.message };
    showReport(el('h2', {}, '无法部署'), el('p', { class: 'alert', id: 'server-refusal' },
      `${e.element ? `${e.element}：` : ''}${e.message}`), el('p', {}, '未部署任何内容。'), issues.length ? issueList(issues) : null);
    say('校验未通过，未部署', 'refused');
    return;
  }
  const s = preview.summary || {};
  const body = [el('h2', {}, preview.same_as_version ? '无需部署' : `部署为版本 ${(preview.base_version || 0) + 1}？`)];
  if (preview.same_as_version) {
    body.push(el('p', { id: 'same-version' }, `内容与已部署的版本 ${preview.same_as_version} 完全相同，不会产生新版本。`));
  } else {
    body.push(el('p', {}, `与当前最新版本 ${preview.base_version || '（新流程）'} 相比（尚未保存）：`));
    (s.process || []).forEach((d) => body.push(el('p', {}, d)));
    body.push(changeList('新增元素', s.added, 'added'), changeList('删除元素', s.removed, 'removed'),
      changeList('改动元素', s.changed, 'changed'));
    if (!(s.added || []).length && !(s.removed || []).length && !(s.changed || []).length) {
      body.push(el('p', {}, '流程元素没有改动（仅布局或说明文字不同）。'));
    }
    if (errors.length) {
      body.push(el('p', { class: 'alert', id: 'fix-first' }, `请先修正 ${errors.length} 个错误再部署：`), issueList(errors));
    } else {
      body.push(el('button', {
        type: 'button', class: 'primary', id: 'modeler-confirm',
        onclick: async (event) => {
          event.target.disabled = true;
          try {
            const done = await request(app.dataset.deployUrl, { upload_id: preview.upload_id });
            const d = done.deployments[0];
            showReport(el('h2', {}, '已部署'), el('p', { id: 'deployed' }, `${d.process_key} 已部署为版本 ${d.version}（sha256 ${d.hash.slice(0, 12)}）。新受理的案件使用此版本，运行中的案件留在原版本。`),
              el('p', {}, el('a', { href: d.url, id: 'deployed-link' }, '查看新版本')));
            say(`已部署为版本 ${d.version}`, 'deployed');
          } catch (err) {
            const e = err.detail || { message: err.message };
            showReport(el('h2', {}, '部署未完成'), el('p', { class: 'alert', id: 'server-refusal' }, e.message));
            say('部署未完成', 'refused');
          }
        }
      }, '确认部署'), ' ', el('button', { type: 'button', onclick: () => { report.hidden = true; say('已取消'); } }, '取消'));
    }
  }
  showReport(...body);
  say(errors.length ? `发现 ${errors.length} 个错误` : '请核对改动后确认', 'previewed');
}

async function download(modeler) {
  const blob = new Blob([await currentXml(modeler)], { type: 'application/xml' });
  const link = el('a', { href: URL.createObjectURL(blob), download: app.dataset.filename });
  document.body.append(link);
  link.click();
  link.remove();
}

async function openFile(modeler, input) {
  const file = input.files && input.files[0];
  if (!file) return;
  try {
    const { warnings } = await modeler.importXML(await file.text());
    app.dataset.filename = file.name;
    modeler.get('canvas').zoom('fit-viewport');
    await checkExpressions(modeler);
    report.hidden = true;
    say(`已打开 ${file.name}${warnings.length ? `（${warnings.length} 条导入警告）` : ''}`, 'ready');
  } catch (err) {
    say(`无法打开 ${file.name}：${err.message}`, 'error');
  } finally {
    input.value = '';
  }
}

async function start() {
  say('正在加载…', 'loading');
  const [xml, templates, lintData] = await Promise.all([
    request(app.dataset.xmlUrl), request(app.dataset.templatesUrl), request(app.dataset.lintDataUrl)]);
  setData(lintData);
  const modeler = new BpmnModeler({
    container: '#modeler-canvas',
    propertiesPanel: { parent: '#modeler-properties' },
    additionalModules: [
      BpmnPropertiesPanelModule, BpmnPropertiesProviderModule, CamundaPlatformPropertiesProviderModule,
      ElementTemplatesPropertiesProviderModule, CamundaBehaviorsModule, lintModule, translateModule(zh)
    ],
    moddleExtensions: { camunda: camundaModdle },
    elementTemplates: templates,
    linting: { bpmnlint: lintConfig, active: true }
  });
  window.qifuModeler = modeler; // for the browser tests and the curious
  templateChooser(modeler);
  const { warnings } = await modeler.importXML(xml);
  modeler.get('canvas').zoom('fit-viewport');
  await checkExpressions(modeler);
  modeler.get('eventBus').on('elements.changed', () => scheduleCheck(modeler));
  document.getElementById('modeler-check').addEventListener('click', () => runChecks(modeler).catch((e) => say(e.message, 'error')));
  document.getElementById('modeler-deploy').addEventListener('click', () => deploy(modeler).catch((e) => say(e.message, 'error')));
  document.getElementById('modeler-download').addEventListener('click', () => download(modeler));
  const open = document.getElementById('modeler-open');
  open.addEventListener('change', () => openFile(modeler, open));
  say(warnings.length ? `已加载（${warnings.length} 条导入警告）` : '已加载', 'ready');
}

if (app) {
  start().catch((err) => say(`建模器加载失败：${err.message}`, 'error'));
}
