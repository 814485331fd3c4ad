(function () {
  "use strict";
  // Every row is built with DOM calls and textContent: a file name is never parsed as HTML.
  var CHUNK = 40;  // rows added at a time, as the end of the list comes near
  var data = window.GBP_DATA;
  var $ = function (id) { return document.getElementById(id); };
  var rowsBox = $("rows"), more = $("more"), moreButton = $("more-button");
  var collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
  var percent = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1,
                                                    minimumFractionDigits: 1 });
  var count = new Intl.NumberFormat();

  if (!data || !Array.isArray(data.rows)) {
    $("status").textContent = "No data: index.data.js is missing or unreadable beside this page.";
    return;
  }

  // Links come percent-encoded from gbp: the raw bytes of a path relative to this page, so a
  // name with #, ?, %, spaces or bytes that are not UTF-8 resolves to that very file. Anything
  // else (a scheme, a quote) is not a link gbp wrote, and is not followed.
  function url(href) {
    return typeof href === "string" && /^[A-Za-z0-9_.~\/%-]*$/.test(href) ? href : null;
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function link(file) {  // [the text shown, the link]
    var href = url(file[1]);
    var node = el(href ? "a" : "span", null, file[0]);
    if (href) node.href = href;
    return node;
  }

  function folderName() {
    var parts = decodeURIComponent(location.pathname).split("/").filter(Boolean);
    return parts.length > 1 ? parts[parts.length - 2] : "";
  }

  // --- header -------------------------------------------------------------------------------
  var runs = data.runs || [];
  var last = runs[runs.length - 1] || {};
  var failed = [], items = [];
  data.rows.forEach(function (row) {
    (row.status === "failed" ? failed : items).push(row);
    row.hay = ((row.label || "") + "\n" + (row.input || "")).toLowerCase();
  });
  var folder = folderName();
  document.title = "gbp gallery" + (folder ? ": " + folder : "");
  $("title").textContent = "gbp " + (last.command || "explain") + (folder ? ": " + folder : "");

  var random = runs.filter(function (r) { return r.random; });
  if (random.length) {
    $("warning").textContent = random[random.length - 1].note ||
      "RANDOM weights (untrained network): labels and maps say nothing about ImageNet";
    $("warning").hidden = false;
  }

  function fact(name, value) {
    if (value === undefined || value === null || value === "") return;
    var pair = $("facts").appendChild(el("div"));
    pair.appendChild(el("dt", null, name));
    pair.appendChild(el("dd", null, value));
  }
  var totals = { explained: 0, kept: 0, failed: 0 };
  data.rows.forEach(function (r) { if (r.status in totals) totals[r.status] += 1; });
  var c = last.counts || {};
  fact("Model", last.model);
  fact("Backend", [last.backend, last.device, last.precision].filter(Boolean).join(", "));
  fact("Weights", last.weights);
  fact("Methods", (last.methods || []).join(", "));
  fact("Formats", (last.formats || []).join(", "));
  var done = last.command === "evaluate" ? " evaluated, " : " explained, ";
  fact("Last run", count.format(c.explained || 0) + done + count.format(c.kept || 0) +
       " kept, " + count.format(c.failed || 0) + " failed" +
       (last.seconds !== undefined ? " in " + last.seconds.toFixed(1) + " s" : ""));
  fact("Finished", last.finished ? new Date(last.finished).toLocaleString() : "");
  if (runs.length > 1) fact("This folder", count.format(data.rows.length) +
       (data.rows.length === 1 ? " input (" : " inputs (") +
       count.format(totals.explained) + " explained, " + count.format(totals.kept) + " kept, " +
       count.format(totals.failed) + " failed) from " + count.format(runs.length) +
       (runs.length === 1 ? " run" : " runs"));
  fact("gbp", last.version || data.version);

  // --- gbp evaluate: the last evaluation's scores over the inputs, and its plot ----------------
  var evaluation = runs.filter(function (r) { return r.command === "evaluate"; }).pop();
  if (evaluation && Array.isArray(evaluation.summary) && evaluation.summary.length) {
    var scores = evaluation.scores || [], baselines = evaluation.baselines || [];
    var cells = {}, maps = [];
    evaluation.summary.forEach(function (s) {
      if (maps.indexOf(s[0]) === -1) maps.push(s[0]);
      cells[s[0] + "\n" + s[1]] = s;
    });
    var table = el("table");
    var headRow = el("tr");
    [["map"]].concat(scores).forEach(function (k) {
      var th = el("th", null, k[0] + (k[1] ? " (" + k[1] + ")" : ""));
      th.scope = "col";
      headRow.appendChild(th);
    });
    table.appendChild(el("thead")).appendChild(headRow);
    var tbody = table.appendChild(el("tbody"));
    maps.forEach(function (m) {
      var tr = tbody.appendChild(el("tr"));
      var th = el("th", null, m + (baselines.indexOf(m) !== -1 ? " (baseline)" : ""));
      th.scope = "row";
      tr.appendChild(th);
      scores.forEach(function (k) {
        var s = cells[m + "\n" + k[0]];
        var td = tr.appendChild(el("td"));
        if (!s) { td.textContent = "–"; return; }
        td.textContent = s[2].toFixed(3) +
          (s.length > 4 ? " [" + s[3].toFixed(3) + ", " + s[4].toFixed(3) + "]" : "");
        if (k[2] === m) {
          td.className = "best";
          td.appendChild(el("span", "tag", " best"));
        }
      });
    });
    $("evaluation-table").appendChild(table);
    var inputs = (evaluation.counts || {}).explained;
    $("evaluation-facts").textContent = [
      evaluation.model + " (" + [evaluation.backend, evaluation.weights].filter(Boolean)
        .join(", weights ") + ")",
      inputs !== undefined ? count.format(inputs) + (inputs === 1 ? " input" : " inputs") : "",
      (evaluation.metrics || []).join(", "),
      evaluation.steps !== undefined ? evaluation.steps + " steps" : "",
      evaluation.seed !== undefined ? "seed " + evaluation.seed : "",
      evaluation.finished ? new Date(evaluation.finished).toLocaleString() : ""
    ].filter(Boolean).join(" · ");
    $("evaluation-legend").textContent = "Mean over the inputs, [low, high]: " +
      (evaluation.interval || "95% interval") + ". A map worth trusting beats both baselines.";
    if (url(evaluation.plot)) {
      $("evaluation-plot").appendChild(
        figure(evaluation.plot, evaluation.plot, "mean curves per metric", true));
    }
    $("evaluation").hidden = false;
  }

  // --- failed inputs ------------------------------------------------------------------------
  if (failed.length) {
    failed.sort(function (a, b) { return collator.compare(a.input, b.input); });
    $("failed-title").textContent = "Failed inputs (" + count.format(failed.length) + ")";
    failed.forEach(function (row) {
      var li = el("li");
      li.appendChild(el("span", "path-text", row.input));
      li.appendChild(document.createTextNode(": "));
      li.appendChild(el("span", "error", row.error || "failed"));
      $("failed-list").appendChild(li);
    });
    $("failed").hidden = false;
  }

  // --- rows ---------------------------------------------------------------------------------
  function figure(path, thumb, caption, wide) {
    var fig = el("figure", wide ? "wide" : null);
    var box = thumb ? el("img") : el("span", "none", "no preview");
    if (thumb) {
      box.loading = "lazy";
      box.decoding = "async";
      box.alt = caption;
      box.src = url(thumb) || "";
    }
    var href = path ? url(path) : null;
    if (href) {
      var a = el("a");
      a.href = href;
      if (!thumb) a.setAttribute("aria-label", caption);
      a.appendChild(box);
      fig.appendChild(a);
    } else {
      fig.appendChild(box);
    }
    fig.appendChild(el("figcaption", null, caption));
    return fig;
  }

  function list(tag, values, each) {
    var box = el(tag);
    values.forEach(function (v) { box.appendChild(each(v)); });
    return box;
  }

  function details(summary, body, open) {
    var d = el("details");
    if (open) d.open = true;
    d.appendChild(el("summary", null, summary));
    d.appendChild(body);
    return d;
  }

  var HEADERS = {
    sanity: ["method", "randomized down to", "Spearman |map|", "Spearman", "SSIM", "HOG Pearson"],
    evaluate: ["map", "score", "value"]
  };

  function numbers(table, kind) {
    var t = el("table");
    var head = el("tr");
    (HEADERS[kind] || HEADERS.sanity)
      .forEach(function (h) { var th = el("th", null, h); th.scope = "col"; head.appendChild(th); });
    t.appendChild(el("thead")).appendChild(head);
    var body = t.appendChild(el("tbody"));
    table.forEach(function (r) {
      var tr = body.appendChild(el("tr"));
      r.forEach(function (v, i) { tr.appendChild(el("td", null, i < 2 ? v : v.toFixed(3))); });
    });
    var wrap = el("div", "table-wrap");
    wrap.appendChild(t);
    return wrap;
  }

  function row(r) {
    var article = el("article", "row" + (r.kind === "sanity" ? " sanity" : ""));
    var pics = article.appendChild(el("div", "pics"));
    pics.appendChild(figure(r.photo, r.thumb, "photo"));
    (r.maps || []).forEach(function (m) {
      var caption = m.method + (m.format ? " · " + m.format : "");
      pics.appendChild(figure(m.file, m.thumb, caption, r.kind === "sanity"));
    });
    var info = article.appendChild(el("div", "info"));
    var h2 = info.appendChild(el("h2", null,
      r.label !== undefined ? r.label : r.input.split("/").pop()));
    if (r.index !== undefined) h2.appendChild(el("span", "index", " (" + r.index + ")"));
    if (r.kind === "sanity") article.insertBefore(h2, pics);  // above its wide figures
    if (r.probability !== undefined) {
      var p = info.appendChild(el("p", "prob"));
      var bar = p.appendChild(el("span", "bar"));
      bar.setAttribute("aria-hidden", "true");
      bar.appendChild(el("span")).style.width = (100 * r.probability).toFixed(1) + "%";
      p.appendChild(el("span", null, percent.format(r.probability)));
      if (r.random) p.appendChild(el("span", "tag", "random weights"));
      if (r.status === "kept") p.appendChild(el("span", "error", "kept from an earlier run"));
    }
    (r.warnings || []).forEach(function (w) { info.appendChild(el("p", "note", w)); });
    if (r.top && r.top.length) {
      info.appendChild(details("Top " + r.top.length, list("ol", r.top, function (t) {
        return el("li", null, t[1] + " (" + t[0] + ") " + percent.format(t[2]));
      })));
    }
    if (r.table && r.table.length) {
      info.appendChild(details("Numbers", numbers(r.table, r.kind), r.kind !== "evaluate"));
    }
    if (r.files && r.files.length) {
      info.appendChild(details("Files (" + r.files.length + ")", list("ul", r.files, function (f) {
        var li = el("li");
        li.appendChild(link(f));
        return li;
      })));
    }
    info.appendChild(el("p", "path", r.input));
    return article;
  }

  // --- filter, sort, and rows added as the reader nears the end -------------------------------
  var shown = [], drawn = 0;

  function order(kind) {
    var p = function (r) { return r.probability === undefined ? -1 : r.probability; };
    var byName = function (a, b) { return collator.compare(a.input, b.input); };
    if (kind === "p-desc") return function (a, b) { return p(b) - p(a) || byName(a, b); };
    if (kind === "p-asc") return function (a, b) { return p(a) - p(b) || byName(a, b); };
    return byName;
  }

  function drawMore() {
    var end = Math.min(shown.length, drawn + CHUNK);
    var fragment = document.createDocumentFragment();
    for (var i = drawn; i < end; i++) fragment.appendChild(row(shown[i]));
    rowsBox.appendChild(fragment);
    drawn = end;
    moreButton.hidden = drawn >= shown.length;
    if (!window.GBP_RENDERED) window.GBP_RENDERED = performance.now();
    if (observer && drawn < shown.length) {  // still near the end? a fresh look adds more
      observer.unobserve(more);
      observer.observe(more);
    }
  }

  function apply() {
    var words = $("filter").value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    shown = items.filter(function (r) {
      return words.every(function (w) { return r.hay.indexOf(w) !== -1; });
    });
    shown.sort(order($("sort").value));
    rowsBox.textContent = "";
    drawn = 0;
    $("shown").textContent = "Showing " + count.format(shown.length) + " of " +
      count.format(items.length) + (items.length === 1 ? " input" : " inputs");
    drawMore();
  }

  var observer = "IntersectionObserver" in window ? new IntersectionObserver(function (entries) {
    if (entries.some(function (e) { return e.isIntersecting; }) && drawn < shown.length) drawMore();
  }, { rootMargin: "1500px 0px" }) : null;
  if (observer) observer.observe(more);
  moreButton.addEventListener("click", drawMore);

  var timer = null;
  $("filter").addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(apply, items.length > 2000 ? 150 : 30);
  });
  $("sort").addEventListener("change", apply);
  $("controls").addEventListener("submit", function (e) { e.preventDefault(); apply(); });
  apply();
})();
