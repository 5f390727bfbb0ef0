/* Replay slider: moving it opens that step (the page is the step; without script, 跳转 does the same). */
(function () {
  "use strict";
  var form = document.getElementById("replay-form");
  var slider = document.getElementById("replay-step");
  var position = document.getElementById("replay-position");
  if (!form || !slider) { return; }
  slider.addEventListener("input", function () {
    if (position) { position.textContent = "第 " + slider.value + " / " + slider.max + " 步"; }
  });
  slider.addEventListener("change", function () { form.submit(); });
})();
