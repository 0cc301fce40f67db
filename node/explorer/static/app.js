/* medgossip audit explorer: the little JavaScript the pages need.
 *
 * - copy buttons next to shortened hashes;
 * - live updates: polls /api/since every second and inserts new rows (no reload);
 * - charts (uPlot, served from the npm lock file) drawn from the /api/ payloads;
 * - proof verification forms, answered inline;
 * - the patient page: the consent token is hashed HERE (js-sha3 keccak256, as
 *   node.data.consent.commitment_of does over the token's 32 bytes) and never sent.
 *
 * Chain data is untrusted: it only ever enters the page through textContent and
 * attributes set by DOM calls, never through innerHTML.
 */
(function () {
  "use strict";

  var POLL_MS = 1000;
  var CHART_REFRESH_MS = 5000;
  var WHOLE = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];
  var PALETTE = ["#1f5fbf", "#d9730d", "#2f9e5f", "#9b51e0", "#d64532", "#0f9fb5", "#8a6d3b", "#c2185b"];

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $all(selector, root) { return Array.prototype.slice.call((root || document).querySelectorAll(selector)); }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") { node.textContent = attrs[key]; } else { node.setAttribute(key, attrs[key]); }
    });
    (children || []).forEach(function (child) {
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function short(value, keep) {
    var text = String(value == null ? "" : value);
    keep = keep || 6;
    return text.length <= keep + 8 ? text : text.slice(0, 2 + keep) + "\u2026" + text.slice(-4);
  }

  function eps(value) {
    var n = Number(value || 0);
    if (n === 0) { return "0"; }
    return n < 1e-3 ? n.toPrecision(4) : n.toFixed(4).replace(/0+$/, "").replace(/\.$/, "");
  }

  /* A hash as the templates write it: shortened, full value in the title, a copy button. */
  function hashNode(value, href) {
    if (!value) { return el("span", { "class": "muted", text: "\u2013" }); }
    var label = href ? el("a", { href: href, text: short(value) }) : el("code", { text: short(value) });
    var copy = el("button", { type: "button", "class": "copy", "data-copy": value, title: "copy the full value", "aria-label": "copy", text: "\u29c9" });
    return el("span", { "class": "hash", title: value }, [label, copy]);
  }

  /* ---------------------------------------------------------------- copy */

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button.copy") : null;
    if (!button) { return; }
    var value = button.getAttribute("data-copy");
    var done = function () {
      button.classList.add("copied");
      setTimeout(function () { button.classList.remove("copied"); }, 1200);
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(value).then(done, function () { selectText(button.parentNode); });
    } else {
      selectText(button.parentNode);
    }
  });

  function selectText(node) {
    var range = document.createRange();
    range.selectNodeContents(node);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  /* ---------------------------------------------------------------- live updates */

  function contributionRow(c, showNode) {
    var cells = [
      el("td", { "class": "num", text: String(c.block) }),
      showNode ? el("td", {}, [hashNode(c.node, "/node/" + c.node)]) : null,
      el("td", { "class": "num", text: String(c.round) }),
      el("td", {}, [hashNode(c.delta_hash, "/contribution/" + c.delta_hash)]),
      el("td", { "class": "num", text: String(c.sample_count) }),
      el("td", { "class": "num", text: eps(c.epsilon) }),
      el("td", {}, [hashNode(c.data_root)]),
      el("td", {}, [hashNode(c.tx_hash)])
    ].filter(Boolean);
    return el("tr", { "data-testid": "contribution-row", "class": "fresh" }, cells);
  }

  function withdrawalItem(w) {
    var who = w.by_token
      ? el("span", { "class": "who" }, ["by the patient's token, sent by ", hashNode(w.by)])
      : el("span", { "class": "who" }, ["by custodian node ", hashNode(w.by, "/node/" + w.by)]);
    return el("li", { "class": w.by_token ? "token" : "custodian" }, [
      el("span", { "class": "when", text: "block " + w.block }),
      el("span", { "class": "what" }, ["subject ", hashNode(w.subject, "/subject/" + w.subject)]),
      who,
      el("span", { "class": "tx" }, ["tx ", hashNode(w.tx_hash)])
    ]);
  }

  function setText(testid, value) {
    var node = $('[data-testid="' + testid + '"]');
    if (node && node.textContent !== String(value)) {
      node.textContent = String(value);
      node.classList.remove("flash");
      void node.offsetWidth; // restart the highlight
      node.classList.add("flash");
    }
  }

  function startLive(indicator) {
    var seq = parseInt(indicator.getAttribute("data-seq"), 10) || 0;
    var node = indicator.getAttribute("data-node") || "";
    var rowsAllowed = indicator.getAttribute("data-live-rows") !== "no";
    var tbody = $("#live-rows");
    var overview = document.body.getAttribute("data-page") === "overview";
    var lastChart = 0;

    function apply(update) {
      var status = update.status || {};
      setText("head-block", status.head_block);
      setText("index-lag", status.lag_blocks);
      var fresh = (update.contributions || []).filter(function (c) { return !node || c.node === node; });
      if (overview && update.totals) {
        setText("contributions-total", update.totals.contributions);
        setText("withdrawals-total", update.totals.withdrawals);
      } else if (fresh.length) {
        var total = $('[data-testid="contributions-total"]');
        setText("contributions-total", (parseInt(total.textContent, 10) || 0) + fresh.length);
      }
      if (tbody && rowsAllowed && fresh.length) {
        var empty = $(".empty-row", tbody);
        if (empty) { empty.remove(); }
        fresh.forEach(function (c) { tbody.insertBefore(contributionRow(c, !node), tbody.firstChild); });
        var limit = parseInt(tbody.getAttribute("data-limit"), 10) || 50;
        while (tbody.rows.length > limit) { tbody.deleteRow(tbody.rows.length - 1); }
      }
      if (overview) {
        fresh.forEach(function (c) {
          var row = $('tr[data-testid="node-row"][data-address="' + c.node + '"]');
          if (!row) { return; }
          var count = $('[data-field="contributions"]', row);
          count.textContent = String((parseInt(count.textContent, 10) || 0) + 1);
          $('[data-field="last_round"]', row).textContent = String(c.round);
          $('[data-field="last_block"]', row).textContent = String(c.block);
        });
        var timeline = $('[data-testid="withdrawal-timeline"]');
        (update.withdrawals || []).forEach(function (w) {
          var placeholder = $("li.empty", timeline);
          if (placeholder) { placeholder.remove(); }
          timeline.insertBefore(withdrawalItem(w), timeline.firstChild);
        });
      }
      if (fresh.length && Date.now() - lastChart > CHART_REFRESH_MS) {
        lastChart = Date.now();
        drawCharts();
      }
    }

    function poll() {
      fetch("/api/since?seq=" + seq, { headers: { Accept: "application/json" }, cache: "no-store" })
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.json();
        })
        .then(function (update) {
          if (update.reset) { window.location.reload(); return; }
          var more = update.seq > seq && (update.contributions || []).length >= 100;
          seq = update.seq;
          indicator.setAttribute("data-seq", String(seq));
          apply(update);
          indicator.className = "live on";
          indicator.textContent = "live \u00b7 block " + (update.status || {}).head_block;
          setTimeout(poll, more ? 0 : POLL_MS);
        })
        .catch(function () {
          indicator.className = "live off";
          indicator.textContent = "offline \u00b7 retrying";
          setTimeout(poll, POLL_MS * 3);
        });
    }
    poll();
  }

  /* ---------------------------------------------------------------- charts */

  var charts = {};

  function chartWidth(container) { return Math.max(280, container.clientWidth - 4); }

  function replaceChart(container, opts, data) {
    if (charts[container.id]) { charts[container.id].destroy(); }
    while (container.firstChild) { container.removeChild(container.firstChild); }
    opts.width = chartWidth(container);
    opts.height = 260;
    charts[container.id] = new window.uPlot(opts, data, container);
  }

  function perRoundChart(container, payload) {
    var rounds = payload.per_round.rounds;
    var nodes = Object.keys(payload.per_round.series);
    if (!rounds.length || !nodes.length) { return; }
    var raw = nodes.map(function (n) { return payload.per_round.series[n]; });
    // Stacked bars: series k is the sum of nodes 0..k, drawn tallest first.
    var stacked = [];
    raw.forEach(function (counts, k) {
      stacked.push(counts.map(function (v, i) { return v + (k ? stacked[k - 1][i] : 0); }));
    });
    var order = nodes.map(function (_, k) { return k; }).reverse();
    var bars = window.uPlot.paths.bars({ size: [0.7, 40] });
    var series = [{ label: "round" }].concat(order.map(function (k) {
      var color = PALETTE[k % PALETTE.length];
      return {
        label: short(nodes[k], 4), stroke: color, fill: color, width: 0, paths: bars, points: { show: false },
        value: function (u, v, si, idx) { return idx == null ? "\u2013" : String(raw[k][idx]); }
      };
    }));
    replaceChart(container, {
      series: series,
      scales: {
        x: { time: false, range: function (u, min, max) { return [min - 0.5, max + 0.5]; } },
        y: { range: function (u, min, max) { return [0, Math.max(1, max)]; } }
      },
      axes: [{ label: "round", incrs: WHOLE }, { label: "contributions", incrs: WHOLE }],
      legend: { live: true }
    }, [rounds].concat(order.map(function (k) { return stacked[k]; })));
  }

  function epsilonChart(container, payload) {
    var curve = payload.epsilon_curve || [];
    if (!curve.length) { return; }
    var x = curve.map(function (p) { return p[0]; });
    var y = curve.map(function (p) { return p[1]; });
    var data = [x, y];
    var series = [{ label: "block" }, {
      label: "cumulative \u03b5", stroke: PALETTE[0], width: 2, fill: "rgba(31,95,191,0.08)",
      paths: window.uPlot.paths.stepped({ align: 1 }), value: function (u, v) { return v == null ? "\u2013" : eps(v); }
    }];
    var node = payload.node || {};
    if (node.budget_fraction != null) {
      // the budget in force at each block (it may have been changed: budget_history)
      var history = (payload.budget_history || []).slice().sort(function (a, b) { return a.block - b.block; });
      data.push(x.map(function (block) {
        var budget = history.length ? history[0].epsilon_budget : node.epsilon_budget;
        history.forEach(function (change) { if (change.block <= block) { budget = change.epsilon_budget; } });
        return budget;
      }));
      series.push({ label: "budget", stroke: "#d64532", width: 1.5, dash: [6, 4], points: { show: false },
                    paths: window.uPlot.paths.stepped({ align: 1 }) });
    }
    replaceChart(container, {
      series: series,
      scales: { x: { time: false }, y: { range: function (u, min, max) { return [0, Math.max(max * 1.1, 1e-6)]; } } },
      axes: [{ label: "block", incrs: WHOLE }, { label: "\u03b5" }]
    }, data);
  }

  var CHARTS = { "per-round-chart": perRoundChart, "epsilon-chart": epsilonChart };

  function drawCharts() {
    if (!window.uPlot) { return; }
    Object.keys(CHARTS).forEach(function (id) {
      var container = document.getElementById(id);
      if (!container) { return; }
      fetch(container.getAttribute("data-src"), { headers: { Accept: "application/json" }, cache: "no-store" })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (payload) { if (payload) { CHARTS[id](container, payload); } })
        .catch(function () { /* the chart stays as it was; the tables carry the same data */ });
    });
  }

  var resizeTimer = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () {
      Object.keys(charts).forEach(function (id) {
        var container = document.getElementById(id);
        if (container) { charts[id].setSize({ width: chartWidth(container), height: 260 }); }
      });
    }, 150);
  });

  /* ---------------------------------------------------------------- proof verification */

  function showResult(box, verdict, heading, children) {
    box.hidden = false;
    box.className = "verify-result " + (verdict === "valid" ? "ok" : verdict === "pending" ? "pending" : "fail");
    box.setAttribute("data-verdict", verdict);
    while (box.firstChild) { box.removeChild(box.firstChild); }
    box.appendChild(el("span", { "class": "verdict", text: heading }));
    (children || []).forEach(function (child) { box.appendChild(child); });
  }

  function contributionVerdict(box, v) {
    var heading = v.ok ? (v.violation ? "Valid proof \u2013 violation" : "Valid proof") : "Invalid proof";
    var verdict = v.ok && !v.violation ? "valid" : "invalid";
    var parts = [el("span", { text: v.result })];
    if (v.subject) { parts.push(el("div", { "class": "muted" }, ["subject ", hashNode(v.subject, "/subject/" + v.subject), " \u00b7 " + v.kind + " proof \u00b7 file " + v.file])); }
    showResult(box, verdict, heading, parts);
  }

  function subjectVerdict(box, r) {
    var rows = (r.proofs || []).map(function (p) {
      return el("tr", {}, [
        el("td", { text: p.file }),
        el("td", {}, [hashNode(p.delta_hash, p.delta_hash ? "/contribution/" + p.delta_hash : null)]),
        el("td", { "class": "num", text: p.round == null ? "\u2013" : String(p.round) }),
        el("td", { "class": "num", text: p.block == null ? "\u2013" : String(p.block) }),
        el("td", { text: p.kind || "\u2013" }),
        el("td", { "class": p.ok ? "good" : "bad", text: p.result })
      ]);
    }).concat((r.missing || []).map(function (m) {
      return el("tr", {}, [
        el("td", { "class": "bad", text: "(missing)" }),
        el("td", {}, [hashNode(m.delta_hash, "/contribution/" + m.delta_hash)]),
        el("td", { "class": "num", text: String(m.round) }),
        el("td", { "class": "num", text: String(m.block) }),
        el("td", { text: "\u2013" }),
        el("td", { "class": "bad", text: "no exclusion proof for this contribution" })
      ]);
    }));
    var head = el("thead", {}, [el("tr", {}, ["File", "Delta hash", "Round", "Block", "Kind", "Result"].map(function (h) { return el("th", { scope: "col", text: h }); }))]);
    var table = el("div", { "class": "table-wrap" }, [el("table", {}, [head, el("tbody", {}, rows)])]);
    var summary = String(r.summary || "").replace(/^(PASS|FAIL): /, "");
    showResult(box, r.ok ? "valid" : "invalid", r.ok ? "PASS" : "FAIL", [el("span", { text: summary }), table]);
  }

  function setupVerify(form) {
    var box = form.parentNode.querySelector('[data-testid="verify-result"]');
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var data = new FormData();
      var count = 0;
      $all("input[type=file]", form).forEach(function (input) {
        Array.prototype.forEach.call(input.files || [], function (file) {
          data.append(input.name, file, file.name);
          count += 1;
        });
      });
      if (!count) { showResult(box, "error", "No file", [el("span", { text: "Choose the proof file(s) first." })]); return; }
      var button = $("button", form);
      button.disabled = true;
      showResult(box, "pending", "Verifying\u2026", []);
      fetch(form.getAttribute("action"), { method: "POST", body: data, headers: { Accept: "application/json" } })
        .then(function (response) {
          return response.json().catch(function () { return { error: "HTTP " + response.status }; })
            .then(function (body) { return { status: response.status, body: body }; });
        })
        .then(function (answer) {
          if (answer.status !== 200) {
            showResult(box, "error", answer.status === 413 ? "Too large" : "Cannot verify", [el("span", { text: answer.body.error || ("HTTP " + answer.status) })]);
          } else if (form.getAttribute("data-kind") === "subject") {
            subjectVerdict(box, answer.body);
          } else {
            contributionVerdict(box, answer.body);
          }
        })
        .catch(function (error) { showResult(box, "error", "Cannot verify", [el("span", { text: String(error) })]); })
        .then(function () { button.disabled = false; });
    });
  }

  /* ---------------------------------------------------------------- patient page */

  /* node.data.consent.parse_token: 64 hex characters, optional 0x, spaces around ok. */
  function tokenBytes(text) {
    var cleaned = text.trim();
    if (cleaned.slice(0, 2) === "0x" || cleaned.slice(0, 2) === "0X") { cleaned = cleaned.slice(2); }
    if (!/^[0-9a-fA-F]{64}$/.test(cleaned)) { return null; }
    var bytes = new Uint8Array(32);
    for (var i = 0; i < 32; i += 1) { bytes[i] = parseInt(cleaned.substr(2 * i, 2), 16); }
    return bytes;
  }

  /* commitment_of(token) = keccak256(the token's 32 bytes), 0x-prefixed lower-case hex. */
  function commitmentOf(text) {
    var bytes = tokenBytes(text);
    return bytes ? "0x" + window.keccak256(bytes) : null;
  }
  window.medgossipCommitmentOf = commitmentOf; // for the browser test's comparison with Python

  function setupPatient(form) {
    var input = $('[data-testid="token-input"]', form);
    var error = $("#token-error", form);
    form.addEventListener("submit", function (event) {
      event.preventDefault(); // the token is never submitted: its input has no name either
      if (!window.keccak256) {
        error.hidden = false;
        error.textContent = "The hashing library did not load; reload the page.";
        return;
      }
      var commitment = commitmentOf(input.value);
      if (!commitment) {
        error.hidden = false;
        error.textContent = "A consent token is 64 hex characters (0-9, a-f), optionally starting with 0x.";
        return;
      }
      input.value = "";
      window.location.assign("/subject/" + commitment);
    });
  }

  /* ---------------------------------------------------------------- start */

  document.addEventListener("DOMContentLoaded", function () {
    var indicator = $('[data-testid="live-status"]');
    if (indicator) { startLive(indicator); }
    drawCharts();
    $all('form[data-testid="verify-form"]').forEach(setupVerify);
    var tokenForm = $("#token-form");
    if (tokenForm) { setupPatient(tokenForm); }
  });
})();
