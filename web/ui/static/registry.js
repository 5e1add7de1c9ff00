// Small progressive enhancement only: every form works without this file.
(function () {
  "use strict";

  // Taxonomy pickers: a filter box over the long list, and the "Chosen:" line kept current.
  function setUpPicker(picker) {
    var boxes = Array.prototype.slice.call(picker.querySelectorAll("input[type='checkbox']"));
    var chosen = picker.querySelector("[data-chosen]");
    var filterRow = picker.querySelector(".picker-filter");
    var filter = picker.querySelector("[data-filter]");
    function showChosen() {
      if (!chosen) { return; }
      var keys = boxes.filter(function (b) { return b.checked; }).map(function (b) { return b.value; });
      chosen.textContent = keys.length ? keys.join(", ") : (chosen.getAttribute("data-none") || "none");
    }
    picker.addEventListener("change", showChosen);
    if (filter && filterRow) {
      filterRow.hidden = false;
      filter.addEventListener("input", function () {
        var needle = filter.value.trim().toLowerCase();
        boxes.forEach(function (b) {
          var row = b.closest("li");
          row.hidden = needle !== "" && row.textContent.toLowerCase().indexOf(needle) === -1;
        });
      });
      // Enter in the filter box must not send the form.
      filter.addEventListener("keydown", function (e) { if (e.key === "Enter") { e.preventDefault(); } });
    }
  }

  // "Add a row" under the location and sub-processor tables: a copy of the last row, emptied and renumbered.
  function setUpAddRow(button) {
    var body = document.getElementById(button.getAttribute("data-add-row"));
    if (!body) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      var rows = body.querySelectorAll("tr");
      var last = rows[rows.length - 1];
      var next = rows.length + 1;
      var copy = last.cloneNode(true);
      copy.querySelectorAll(".field-error").forEach(function (e) { e.remove(); });
      copy.querySelectorAll("[id]").forEach(function (el) { el.id = el.id.replace(/-\d+-/, "-" + (next - 1) + "-"); });
      copy.querySelectorAll("label[for]").forEach(function (l) {
        l.htmlFor = l.htmlFor.replace(/-\d+-/, "-" + (next - 1) + "-");
        l.textContent = l.textContent.replace(/\d+\s*$/, String(next));
      });
      copy.querySelectorAll("input, select").forEach(function (el) {
        el.removeAttribute("aria-invalid");
        el.removeAttribute("aria-describedby");
        if (el.tagName === "SELECT") { el.selectedIndex = 0; } else { el.value = ""; }
      });
      body.appendChild(copy);
      var first = copy.querySelector("input, select");
      if (first) { first.focus(); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-picker]").forEach(setUpPicker);
    document.querySelectorAll("[data-add-row]").forEach(setUpAddRow);
    // The printable record's button (an inline onclick would need the CSP to allow inline script).
    document.querySelectorAll("[data-print]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () { window.print(); });
    });
    // Put keyboard focus on the first field with an error, so it is announced and can be fixed at once.
    var invalid = document.querySelector("[aria-invalid='true'], fieldset.picker.invalid");
    if (invalid) { invalid.focus(); return; }
    var alert = document.querySelector("#conflict, #import-errors");
    if (alert) { alert.setAttribute("tabindex", "-1"); alert.focus(); }
  });
})();
