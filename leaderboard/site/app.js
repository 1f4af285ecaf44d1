// The leaderboard page: a sortable, filterable table and a per-layer curve viewer, built from the JSON block
// that `subclassbench leaderboard build` embeds in index.html (subclassbench/site.py).
//
// Every string from the data reaches the page through textContent or setAttribute, never innerHTML: a
// submission's name is text, whatever characters it holds. No network: nothing here fetches anything.
(function () {
  "use strict";

  var SVG_NS = "http://www.w3.org/2000/svg";
  var data = JSON.parse(document.getElementById("board-data").textContent);
  var columns = data.columns;
  var body = document.getElementById("board-body");
  var head = document.getElementById("board-head");
  var entries = []; // {row, index, tr, curveTr (null until first opened)}
  var sortState = { col: null, dir: null };

  // ------------------------------------------------------------------ helpers

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    setAttrs(node, attrs);
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function setAttrs(node, attrs) {
    if (!attrs) return;
    Object.keys(attrs).forEach(function (name) {
      node.setAttribute(name, String(attrs[name]));
    });
  }

  function fmt(x, digits) {
    return x === null || x === undefined ? "—" : Number(x).toFixed(digits);
  }

  // ------------------------------------------------------------------ header, table, filters

  function renderMeta() {
    var meta = document.getElementById("board-meta");
    meta.textContent =
      "Leaderboard v" + data.leaderboard_version + " · protocol v" + data.protocol_version +
      " (fingerprint " + data.protocol_fingerprint + ") · content " + data.content_sha256 +
      " · " + data.rows.length + " rows";
  }

  function renderHead() {
    columns.forEach(function (col) {
      var th = el("th", { "data-col": col.id, "data-kind": col.kind, scope: "col", title: col.title, tabindex: 0 });
      th.appendChild(el("span", { class: "th-label" }, col.label));
      th.appendChild(el("span", { class: "sort-mark", "aria-hidden": "true" }));
      th.addEventListener("click", function () { sortBy(col.id); saveView(); });
      th.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sortBy(col.id); saveView(); }
      });
      head.appendChild(th);
    });
    head.appendChild(el("th", { class: "curve-col", scope: "col", title: "Per-layer AMI curve" }, "curve"));
  }

  function renderRows() {
    data.rows.forEach(function (row, index) {
      var tr = el("tr", { "data-key": row.key, "data-model": row.model, "data-task": row.task, class: "board-row" });
      Object.keys(row.filters).forEach(function (name) { tr.setAttribute("data-" + name, row.filters[name]); });
      columns.forEach(function (col) {
        var cell = row.cells[col.id];
        var td = el("td", { "data-col": col.id, "data-value": cell.v === null ? "" : cell.v });
        if (col.kind === "number") td.className = "num";
        if (cell.title) td.setAttribute("title", cell.title);
        else if (col.id === "model") td.setAttribute("title", cell.t); // the name in full, however it is cut
        // "value [low, high]": the interval on its own line, so the numeric columns stay narrow.
        var at = cell.t.indexOf(" [");
        td.appendChild(document.createTextNode(at < 0 ? cell.t : cell.t.slice(0, at)));
        if (at >= 0) td.appendChild(el("span", { class: "ci" }, cell.t.slice(at + 1)));
        tr.appendChild(td);
      });
      var toggle = el("button", { type: "button", class: "curve-toggle", "aria-expanded": "false",
                                  "aria-label": "per-layer curve of " + row.model + " on " + row.task }, "show");
      var pick = el("input", { type: "checkbox", class: "overlay-pick", "data-key": row.key,
                               "aria-label": "overlay the curve of " + row.model + " on " + row.task,
                               title: "overlay this row's curve with others (below the table)" });
      pick.addEventListener("click", function (event) { event.stopPropagation(); });
      pick.addEventListener("change", function () { drawOverlay(); saveView(); });
      var td = el("td", { class: "curve-col" });
      td.appendChild(toggle);
      td.appendChild(pick);
      tr.appendChild(td);
      var entry = { row: row, index: index, tr: tr, curveTr: null, toggle: toggle, pick: pick };
      // The whole row opens the viewer (the button is there for the keyboard; its click bubbles to here).
      tr.addEventListener("click", function () { toggleCurve(entry); });
      entries.push(entry);
      body.appendChild(tr);
    });
  }

  function renderFilters() {
    document.querySelectorAll("select[data-filter]").forEach(function (select) {
      var name = select.getAttribute("data-filter");
      var seen = {};
      data.rows.forEach(function (row) { seen[row.filters[name]] = true; });
      Object.keys(seen).sort(compareText).forEach(function (value) {
        select.appendChild(el("option", { value: value }, value));
      });
      select.addEventListener("change", function () { applyFilters(); saveView(); });
    });
  }

  // ------------------------------------------------------------------ the view in the address

  // "#task=cifar10-5&labels=fine&architecture=…&sort=ami:desc": the view a link opens. Without a task in the
  // address the page opens on data.default_task (one task: ranks compare within a task); "task=" is all tasks.
  function readView() {
    var params = new URLSearchParams(window.location.hash.replace(/^#/, ""));
    document.querySelectorAll("select[data-filter]").forEach(function (select) {
      var name = select.getAttribute("data-filter");
      var wanted = params.has(name) ? params.get(name) : (name === "task" ? data.default_task || "" : "");
      var known = Array.prototype.some.call(select.options, function (o) { return o.value === wanted; });
      select.value = known ? wanted : "";
    });
    var compare = (params.get("compare") || "").split(",");
    entries.forEach(function (e) { e.pick.checked = compare.indexOf(e.row.key) >= 0; });
    drawOverlay();
    var sort = (params.get("sort") || "").split(":");
    var col = columns.filter(function (c) { return c.id === sort[0]; })[0];
    if (col && (sort[1] === "asc" || sort[1] === "desc")) {
      sortState = { col: col.id, dir: sort[1] === "asc" ? "desc" : "asc" }; // sortBy flips it to the wanted one
      sortBy(col.id);
    }
  }

  function saveView() {
    var params = new URLSearchParams();
    document.querySelectorAll("select[data-filter]").forEach(function (select) {
      var name = select.getAttribute("data-filter");
      if (select.value !== "" || name === "task") params.set(name, select.value);
    });
    if (sortState.col) params.set("sort", sortState.col + ":" + sortState.dir);
    var picked = entries.filter(function (e) { return e.pick.checked; }).map(function (e) { return e.row.key; });
    if (picked.length) params.set("compare", picked.join(","));
    try {
      window.history.replaceState(null, "", "#" + params.toString());
    } catch (error) {
      window.location.hash = params.toString(); // some file:// contexts refuse replaceState
    }
  }

  function renderStale() {
    if (!data.stale.length) return;
    var list = document.getElementById("stale-list");
    data.stale.forEach(function (item) {
      var li = el("li");
      li.appendChild(el("code", null, item.submission));
      li.appendChild(document.createTextNode(" on "));
      li.appendChild(el("code", null, item.task));
      li.appendChild(document.createTextNode(": " + item.reason));
      list.appendChild(li);
    });
    document.getElementById("stale").hidden = false;
  }

  // ------------------------------------------------------------------ sorting

  // By code point, the same order as Python's sorted() on these strings (the tests compare the two).
  function compareText(a, b) {
    return a < b ? -1 : a > b ? 1 : 0;
  }

  function sortBy(colId) {
    var col = columns.filter(function (c) { return c.id === colId; })[0];
    var dir = sortState.col === colId ? (sortState.dir === "asc" ? "desc" : "asc") : col.first;
    sortState = { col: colId, dir: dir };
    var sign = dir === "asc" ? 1 : -1;
    entries.sort(function (a, b) {
      var x = a.row.cells[colId].v;
      var y = b.row.cells[colId].v;
      var missingX = x === null || x === undefined;
      var missingY = y === null || y === undefined;
      if (missingX || missingY) {
        // Rows without the number stay at the bottom in both directions.
        if (missingX !== missingY) return missingX ? 1 : -1;
        return a.index - b.index;
      }
      var order = col.kind === "number" ? x - y : compareText(String(x), String(y));
      return sign * order || a.index - b.index; // ties keep the board's order (task, then rank)
    });
    entries.forEach(function (entry) {
      body.appendChild(entry.tr);
      if (entry.curveTr) body.appendChild(entry.curveTr);
    });
    head.querySelectorAll("th[data-col]").forEach(function (th) {
      if (th.getAttribute("data-col") === colId) {
        th.setAttribute("aria-sort", dir === "asc" ? "ascending" : "descending");
      } else {
        th.removeAttribute("aria-sort");
      }
    });
  }

  // ------------------------------------------------------------------ filtering

  function applyFilters() {
    var wanted = {};
    document.querySelectorAll("select[data-filter]").forEach(function (select) {
      if (select.value !== "") wanted[select.getAttribute("data-filter")] = select.value;
    });
    var shown = 0;
    entries.forEach(function (entry) {
      var match = Object.keys(wanted).every(function (name) { return entry.row.filters[name] === wanted[name]; });
      entry.tr.hidden = !match;
      if (entry.curveTr) entry.curveTr.hidden = !match || entry.toggle.getAttribute("aria-expanded") !== "true";
      if (match) shown += 1;
    });
    document.getElementById("row-count").textContent = "showing " + shown + " of " + entries.length + " rows";
    document.getElementById("no-rows").hidden = shown > 0;
  }

  // ------------------------------------------------------------------ the per-layer curve viewer

  function toggleCurve(entry) {
    var open = entry.toggle.getAttribute("aria-expanded") !== "true";
    if (open && !entry.curveTr) {
      entry.curveTr = renderCurveRow(entry.row);
      entry.tr.parentNode.insertBefore(entry.curveTr, entry.tr.nextSibling);
    }
    entry.toggle.setAttribute("aria-expanded", open ? "true" : "false");
    entry.toggle.textContent = open ? "hide" : "show";
    entry.tr.classList.toggle("open", open);
    entry.curveTr.hidden = !open;
  }

  function renderCurveRow(row) {
    var tr = el("tr", { class: "curve-row", "data-for": row.key });
    var td = el("td", { colspan: columns.length + 1 });
    var panel = el("div", { class: "curve-panel" });
    var figure = el("figure", { class: "curve-figure" });
    figure.appendChild(drawCurve(row));
    figure.appendChild(el("figcaption", null,
      "Subclass AMI per layer on the evaluation split (shaded: 95% interval), " + row.model + " on " + row.task +
      "; solid line: committed layer" + (bestApart(row) ? ", dashed: best layer on the evaluation split" : "")));
    panel.appendChild(figure);
    panel.appendChild(renderDetails(row));
    td.appendChild(panel);
    tr.appendChild(td);
    return tr;
  }

  function renderDetails(row) {
    var dl = el("dl", { class: "details" });
    row.details.forEach(function (pair) {
      dl.appendChild(el("dt", null, pair[0]));
      dl.appendChild(el("dd", null, pair[1]));
    });
    var box = el("div", { class: "details-box" });
    box.appendChild(dl);
    if (row.curve.length) {
      var more = el("details", { class: "layer-values" });
      more.appendChild(el("summary", null, "per-layer values"));
      var table = el("table", { class: "layer-table" });
      var hr = el("tr");
      ["layer", "depth", "AMI", "95% interval"].forEach(function (h) { hr.appendChild(el("th", { scope: "col" }, h)); });
      table.appendChild(hr);
      row.curve.forEach(function (p) {
        var r = el("tr");
        r.appendChild(el("td", null, p.layer));
        r.appendChild(el("td", { class: "num" }, fmt(p.depth, 3)));
        r.appendChild(el("td", { class: "num" }, fmt(p.ami, 3)));
        r.appendChild(el("td", { class: "num" }, p.ci95 ? "[" + fmt(p.ci95[0], 3) + ", " + fmt(p.ci95[1], 3) + "]" : "—"));
        table.appendChild(r);
      });
      more.appendChild(table);
      box.appendChild(more);
    }
    return box;
  }

  // Whether the best layer on the evaluation split gets a marker of its own (it is not a committed one).
  function bestApart(row) {
    return Boolean(row.best_layer) && row.committed_layers.indexOf(row.best_layer) < 0;
  }

  // The frame both curve plots share: AMI 0..1 on y with its grid, relative depth 0..1 on x, axis labels.
  function drawAxes(root, left, top, plotW, plotH, y) {
    [0, 0.25, 0.5, 0.75, 1].forEach(function (v) {
      root.appendChild(svg("line", { class: "grid", x1: left, x2: left + plotW, y1: y(v), y2: y(v) }));
      root.appendChild(svg("text", { class: "tick", x: left - 6, y: y(v) + 4, "text-anchor": "end" }, v.toFixed(2)));
      root.appendChild(svg("text", { class: "tick", x: left + v * plotW, y: top + plotH + 16, "text-anchor": "middle" },
        v.toFixed(2)));
    });
    root.appendChild(svg("text", { class: "axis-label", x: left + plotW / 2, y: top + plotH + 36,
                                   "text-anchor": "middle" }, "relative depth (layer depth / deepest layer)"));
    root.appendChild(svg("text", { class: "axis-label", x: 12, y: top + plotH / 2, "text-anchor": "middle",
                                   transform: "rotate(-90 12 " + (top + plotH / 2) + ")" }, "AMI"));
  }

  // A curve's 95% band as an SVG path (upper edge left to right, lower edge back), or null without intervals.
  function bandPath(points, x, y) {
    if (!points.length || !points.every(function (p) { return p.ci95; })) return null;
    function xy(px, py) { return px.toFixed(2) + "," + py.toFixed(2); }
    var upper = points.map(function (p) { return xy(x(p.depth), y(p.ci95[1])); });
    var lower = points.slice().reverse().map(function (p) { return xy(x(p.depth), y(p.ci95[0])); });
    return "M" + upper.concat(lower).join("L") + "Z";
  }

  function drawCurve(row) {
    // The layer markers' labels sit above the plot, one line each, so they never cover the curve.
    var nLabels = row.committed_layers.length + (bestApart(row) ? 1 : 0);
    var W = 640, left = 48, right = 16, top = 14 + 14 * nLabels, bottom = 40, plotH = 220;
    var H = top + plotH + bottom, plotW = W - left - right;
    var root = svg("svg", { class: "curve", viewBox: "0 0 " + W + " " + H, width: W, height: H, role: "img",
                            "aria-label": "per-layer AMI of " + row.model + " on " + row.task });
    var points = row.curve;
    var maxDepth = Math.max.apply(null, points.map(function (p) { return p.depth; }).concat([0])) || 1;
    function x(depth) { return left + (depth / maxDepth) * plotW; }
    function y(ami) { return top + (1 - Math.max(0, Math.min(1, ami))) * plotH; }
    function xy(px, py) { return px.toFixed(2) + "," + py.toFixed(2); }

    drawAxes(root, left, top, plotW, plotH, y);
    if (!points.length) {
      root.appendChild(svg("text", { class: "empty", x: left + plotW / 2, y: top + plotH / 2, "text-anchor": "middle" },
        "no per-layer curve (a transfer-only result)"));
      return root;
    }

    var band = bandPath(points, x, y);
    if (band) root.appendChild(svg("path", { class: "curve-band", d: band }));
    root.appendChild(svg("path", { class: "curve-line",
      d: "M" + points.map(function (p) { return xy(x(p.depth), y(p.ami)); }).join("L") }));

    // A vertical line at a layer, rising into the top margin where its label is (line `slot`, counted from the
    // top), on the side of the line with more room.
    function marker(layerName, cls, label, slot) {
      var p = points.filter(function (q) { return q.layer === layerName; })[0];
      if (!p) return;
      var px = x(p.depth), onLeft = px > left + plotW / 2, baseline = 14 + 14 * slot;
      var g = svg("g", { class: cls, "data-layer": layerName });
      g.appendChild(svg("line", { x1: px, x2: px, y1: baseline - 10, y2: top + plotH }));
      g.appendChild(svg("text", { x: onLeft ? px - 4 : px + 4, y: baseline, "text-anchor": onLeft ? "end" : "start" },
        label + ": " + layerName));
      root.appendChild(g);
    }
    row.committed_layers.forEach(function (name, i) { marker(name, "committed-marker", "committed", i); });
    if (bestApart(row)) {
      marker(row.best_layer, "best-marker", "best", row.committed_layers.length);
    }

    points.forEach(function (p) {
      var committed = row.committed_layers.indexOf(p.layer) >= 0;
      var dot = svg("circle", { class: committed ? "point committed" : "point", cx: x(p.depth), cy: y(p.ami),
                                r: committed ? 5 : 3, "data-layer": p.layer });
      dot.appendChild(svg("title", null, p.layer + ": AMI " + fmt(p.ami, 3) +
        (p.ci95 ? " [" + fmt(p.ci95[0], 3) + ", " + fmt(p.ci95[1], 3) + "]" : "")));
      root.appendChild(dot);
    });
    return root;
  }

  // ------------------------------------------------------------------ overlay of several rows' curves

  // The rows ticked in the curve column, drawn together below the table in their board colours (the same
  // colour as in the leaderboard's figures), each with its 95% band and its committed layer.
  function drawOverlay() {
    var picked = entries.filter(function (e) { return e.pick.checked; }).map(function (e) { return e.row; });
    var section = document.getElementById("overlay");
    var holder = document.getElementById("overlay-plot");
    var legend = document.getElementById("overlay-legend");
    while (holder.firstChild) holder.removeChild(holder.firstChild);
    while (legend.firstChild) legend.removeChild(legend.firstChild);
    section.hidden = picked.length === 0;
    if (!picked.length) return;
    var W = 760, left = 48, right = 16, top = 14, bottom = 40, plotH = 280;
    var H = top + plotH + bottom, plotW = W - left - right;
    var root = svg("svg", { class: "curve overlay", viewBox: "0 0 " + W + " " + H, width: W, height: H, role: "img",
                            "aria-label": "per-layer AMI of " + picked.length + " rows" });
    function y(ami) { return top + (1 - Math.max(0, Math.min(1, ami))) * plotH; }
    function xy(px, py) { return px.toFixed(2) + "," + py.toFixed(2); }
    drawAxes(root, left, top, plotW, plotH, y);
    var seen = {}; // two models may share a palette colour: the later one is dashed
    picked.forEach(function (row) {
      var points = row.curve;
      if (!points.length) return;
      var maxDepth = Math.max.apply(null, points.map(function (p) { return p.depth; }).concat([0])) || 1;
      function x(depth) { return left + (depth / maxDepth) * plotW; }
      var g = svg("g", { class: "overlay-curve", "data-key": row.key });
      var band = bandPath(points, x, y);
      if (band) g.appendChild(svg("path", { class: "overlay-band", fill: row.colour, d: band }));
      var line = { class: "overlay-line", stroke: row.colour,
                   d: "M" + points.map(function (p) { return xy(x(p.depth), y(p.ami)); }).join("L") };
      if (seen[row.colour]) line["stroke-dasharray"] = seen[row.colour] === 1 ? "7 4" : "2 3";
      seen[row.colour] = (seen[row.colour] || 0) + 1;
      g.appendChild(svg("path", line));
      points.forEach(function (p) {
        var committed = row.committed_layers.indexOf(p.layer) >= 0;
        var dot = svg("circle", { class: committed ? "overlay-point committed" : "overlay-point", fill: row.colour,
                                  cx: x(p.depth),
                                  cy: y(p.ami), r: committed ? 5.5 : 2.5, "data-layer": p.layer });
        dot.appendChild(svg("title", null, row.model + " · " + p.layer + ": AMI " + fmt(p.ami, 3)));
        g.appendChild(dot);
      });
      root.appendChild(g);
      var li = el("li", { "data-key": row.key });
      li.appendChild(svg("svg", { width: 14, height: 10, class: "swatch" })).appendChild(
        svg("rect", { width: 14, height: 10, fill: row.colour }));
      li.appendChild(document.createTextNode(" " + row.model + " on " + row.task + ": committed AMI " +
        row.cells.ami.t));
      legend.appendChild(li);
    });
    holder.appendChild(root);
  }

  // ------------------------------------------------------------------ start

  renderMeta();
  renderHead();
  renderRows();
  renderFilters();
  renderStale();
  readView();
  applyFilters();
  window.addEventListener("hashchange", function () { readView(); applyFilters(); });
  document.getElementById("overlay-clear").addEventListener("click", function () {
    entries.forEach(function (e) { e.pick.checked = false; });
    drawOverlay();
    saveView();
  });
  document.body.setAttribute("data-ready", "true"); // tests wait for this
})();
