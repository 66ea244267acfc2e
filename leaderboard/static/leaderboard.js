/* sparsebench leaderboard: sortable tables, family / pruner / reparam / schedule filters and search.  Vanilla JS, no dependencies.
 * Reads only attributes and textContent; never writes HTML (no innerHTML), so page text stays text. */
(function () {
  "use strict";

  function cellKey(row, idx, type) {
    var cell = row.cells[idx];
    if (!cell) { return null; }
    var raw = cell.getAttribute("data-sort");
    if (raw === null) { raw = cell.textContent.trim(); }
    if (raw === "") { return null; }
    if (type === "num") {
      var v = parseFloat(raw);
      return isNaN(v) ? null : v;
    }
    return raw.toLowerCase();
  }

  function sortBy(table, th) {
    var headers = table.tHead.rows[0].cells;
    var idx = Array.prototype.indexOf.call(headers, th);
    var type = th.getAttribute("data-type") || "text";
    var dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {   /* Array.prototype.sort is stable */
      var x = cellKey(a, idx, type), y = cellKey(b, idx, type);
      if (x === null && y === null) { return 0; }
      if (x === null) { return 1; }          /* missing values last in both directions */
      if (y === null) { return -1; }
      var c = x < y ? -1 : (x > y ? 1 : 0);
      return dir === "ascending" ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(headers, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir);
  }

  function applyFilters() {
    var active = {};
    document.querySelectorAll("input.family-filter").forEach(function (cb) { active[cb.value] = cb.checked; });
    var box = document.getElementById("search");
    var q = box ? box.value.trim().toLowerCase() : "";
    var facets = [];   /* pruner / reparam / schedule selects: "" = all */
    document.querySelectorAll("select.facet-filter").forEach(function (sel) {
      if (sel.value !== "") { facets.push([sel.getAttribute("data-facet"), sel.value]); }
    });
    document.querySelectorAll("table.lb").forEach(function (table) {
      var shown = 0;
      Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
        var fam = row.getAttribute("data-family");
        var name = (row.getAttribute("data-method") || "").toLowerCase();
        var show = active[fam] !== false && (q === "" || name.indexOf(q) !== -1) && facets.every(function (f) {
          return row.getAttribute("data-" + f[0]) === f[1];
        });
        row.hidden = !show;
        if (show) { shown += 1; }
      });
      var note = table.parentNode.querySelector(".no-match");
      if (note) { note.hidden = shown > 0; }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("table.sortable").forEach(function (table) {
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
        th.tabIndex = 0;
        th.addEventListener("click", function () { sortBy(table, th); });
        th.addEventListener("keydown", function (ev) {
          if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); sortBy(table, th); }
        });
      });
    });
    document.querySelectorAll("input.family-filter, select.facet-filter").forEach(function (el) {
      el.addEventListener("change", applyFilters);
    });
    var box = document.getElementById("search");
    if (box) { box.addEventListener("input", applyFilters); }
    applyFilters();
  });
}());
