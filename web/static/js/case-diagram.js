/* Case diagram: render the deployment's BPMN with bpmn-js (vendored) and mark the case's progress.
   Data comes from a JSON block written by the server with |tojson (no inline script, CSP script-src 'self'). */
(function () {
  "use strict";
  var container = document.getElementById("case-diagram");
  var dataNode = document.getElementById("case-diagram-markers");
  if (!container || !dataNode || typeof BpmnJS === "undefined") { return; }
  var markers = JSON.parse(dataNode.textContent || "{}");
  var viewer = new BpmnJS({ container: container });

  function mark(canvas, registry, ids, cls) {
    (ids || []).forEach(function (id) {
      if (registry.get(id)) { canvas.addMarker(id, cls); }
    });
  }

  fetch(container.getAttribute("data-xml-url"), { credentials: "same-origin" })
    .then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.text();
    })
    .then(function (xml) { return viewer.importXML(xml); })
    .then(function () {
      var canvas = viewer.get("canvas");
      var registry = viewer.get("elementRegistry");
      canvas.zoom("fit-viewport");
      mark(canvas, registry, markers.completed, "qifu-completed");
      mark(canvas, registry, markers.active, "qifu-active");
      mark(canvas, registry, markers.overdue, "qifu-overdue");
      container.setAttribute("data-rendered", "true");
    })
    .catch(function (err) {
      container.textContent = "流程图加载失败：" + err.message;
      container.setAttribute("data-rendered", "error");
    });
})();
