/* A deployed version's diagram on the process pages: bpmn-js viewer (vendored, web/static/vendor/bpmn-js).
   No inline script (CSP script-src 'self'): the XML comes from the URL in data-xml-url. */
(function () {
  "use strict";
  var container = document.getElementById("version-diagram");
  if (!container || typeof BpmnJS === "undefined") { return; }
  var viewer = new BpmnJS({ container: container });
  fetch(container.getAttribute("data-xml-url"), { credentials: "same-origin" })
    .then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.text();
    })
    .then(function (xml) { return viewer.importXML(xml); })
    .then(function () {
      viewer.get("canvas").zoom("fit-viewport");
      container.setAttribute("data-rendered", "true");
    })
    .catch(function (err) {
      container.textContent = "流程图加载失败：" + err.message;
      container.setAttribute("data-rendered", "error");
    });
})();
