// Small progressive enhancement only: every form works without this file.
(function () {
  "use strict";
  // Put keyboard focus on the first field with an error, so it is announced and can be fixed at once.
  document.addEventListener("DOMContentLoaded", function () {
    var invalid = document.querySelector("[aria-invalid='true']");
    if (invalid) { invalid.focus(); return; }
    var alert = document.querySelector("#conflict, #import-errors");
    if (alert) { alert.setAttribute("tabindex", "-1"); alert.focus(); }
  });
})();
