/* Library page: pre-run checks (issue 13) — the badge of a script's latest check in the
 * list, and in the sheet its findings with a "Check now" action polled until done.
 *
 * Loaded after helpers.js and before scripts.js (scripts.js uses L.checkBadge). Findings come
 * from GET /api/library/scripts/{id}/check; secrets there are already masked by the tools, and
 * every text from the server is inserted as text, never as markup.
 */
(function () {
  "use strict";
  const SO = window.SO;
  const { h, $ } = SO;
  const L = SO.library;

  /** The list's/sheet's badge: "secret found", "2 high", "clean", "error: bandit", "not checked". */
  function checkBadge(badge) {
    const text = badge || "not checked";
    let kind = "findings";
    if (text === "clean") kind = "clean";
    else if (text === "not checked") kind = "none";
    else if (text === "secret found" || /\b(high|critical)$/.test(text)) kind = "bad";
    else if (text.startsWith("error")) kind = "error";
    return h(`span.badge.badge-check.badge-check-${kind}`, { dataset: { badge: "check", value: text }, title: `Pre-run check: ${text}` }, text);
  }

  function findingsTable(findings) {
    const rows = findings.map((f) =>
      h(
        "tr",
        { dataset: { kind: f.kind, severity: f.severity } },
        h("td", null, h("div.mono", null, f.rule_id), h("div.small.muted", null, f.tool)),
        h("td", null, h(`span.badge.badge-sev-${f.severity}`, null, f.severity)),
        h("td", null, h("div.mono", null, `${f.file}${f.line ? `:${f.line}` : ""}`), h("div.small", null, f.message)),
      ),
    );
    // Three columns: the sheet is narrow (the tool under the rule, the message under the place).
    return h(
      "div.table-wrap",
      null,
      h("table.table.findings-table", { dataset: { testid: "check-findings" } }, h("thead", null, h("tr", null, ...["Rule / tool", "Severity", "Where / message"].map((t) => h("th", null, t)))), h("tbody", null, ...rows)),
    );
  }

  function renderLatest(box, latest) {
    SO.clear(box);
    if (!latest.checked) {
      box.append(h("p.muted", { dataset: { testid: "check-none" } }, "Not checked yet."));
      return;
    }
    box.append(h("p.small.muted", null, "Checked ", latest.checked_at ? SO.relTime(latest.checked_at) : "", ` for ${latest.kinds.join(", ")} — `, h("strong", null, latest.status)));
    for (const e of latest.errors || []) {
      box.append(h("div.alert.alert-error", { role: "note" }, `${e.tool} gave no answer: ${e.message}`));
    }
    if (latest.findings && latest.findings.length) box.append(findingsTable(latest.findings));
    else if (latest.status === "clean") box.append(h("p", { dataset: { testid: "check-clean" } }, "Nothing found."));
  }

  async function loadLatest(box, script) {
    try {
      renderLatest(box, await SO.api("GET", `${L.API}/scripts/${script.id}/check`));
    } catch (err) {
      SO.clear(box).append(h("div.alert.alert-error", { role: "alert" }, `Could not load the checks: ${err.message}`));
    }
  }

  /** Poll an on-demand check until it is done (or failed), showing its progress. */
  async function follow(job, progress, stillOpen) {
    const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
    while (stillOpen()) {
      progress.textContent = `Checking… ${job.checked}/${job.total || 1} (${job.state})`;
      if (job.state === "done" || job.state === "failed") return job;
      await wait(500);
      job = await SO.api("GET", `${L.API}/checks/${job.id}`);
    }
    return job;
  }

  /** The sheet's "Pre-run checks" section for ``script`` (called by renderOverview). */
  function renderChecks(section, script, stillOpen) {
    const box = h("div.check-latest", { dataset: { testid: "check-latest" } });
    const progress = h("span.small.muted.check-progress", { role: "status", "aria-live": "polite", dataset: { testid: "check-progress" } });
    const head = h("div.check-head", null, checkBadge(script.check));
    if (L.can.edit) {
      const button = h("button.btn.btn-secondary.btn-sm", { type: "button", dataset: { testid: "check-now" } }, "Check now");
      button.addEventListener("click", async () => {
        button.disabled = true;
        try {
          const queued = await SO.api("POST", `${L.API}/scripts/${script.id}/check`, {});
          const job = await follow(queued, progress, stillOpen);
          progress.textContent = job.state === "done" ? `Done: ${job.checked}/${job.total} checked, ${job.with_findings} with findings.` : `Check ${job.state}: ${job.message || ""}`;
          if (stillOpen()) {
            const fresh = await SO.api("GET", `${L.API}/scripts/${script.id}`);
            head.replaceChild(checkBadge(fresh.check), head.firstChild);
            await loadLatest(box, script);
            if (L.loadScripts) L.loadScripts(); // the list's badge too
          }
        } catch (err) {
          progress.textContent = `Could not check: ${err.message}`;
        } finally {
          button.disabled = false;
        }
      });
      head.append(button);
    }
    head.append(progress);
    SO.clear(section).append(head, box);
    loadLatest(box, script);
  }

  Object.assign(L, { checkBadge, renderChecks });
})();
