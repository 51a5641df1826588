/* API keys page: create (the key is shown once), list, revoke. */
(function () {
  "use strict";
  const SO = window.SO;
  const { h, $, fmt } = SO;
  const isAdmin = $("#keys-table").dataset.admin === "1";
  const cols = isAdmin ? 9 : 8;
  let keys = [];

  function stateOf(key) {
    if (key.revoked_at) return ["revoked", "Revoked"];
    if (!key.is_active) return ["expired", "Expired"];
    return ["active", "Active"];
  }

  function row(key) {
    const [state, label] = stateOf(key);
    const revoke = h("button.btn.btn-sm.btn-danger-ghost", { type: "button", dataset: { action: "revoke" } }, "Revoke");
    SO.confirmButton(revoke, "Really revoke?", async () => {
      revoke.disabled = true;
      try {
        const updated = await SO.api("DELETE", `/api/keys/${key.id}`);
        keys = keys.map((k) => (k.id === key.id ? updated : k));
        render();
        SO.toast(`Key “${key.name}” revoked. Clients using it are refused from now on.`, { kind: "success" });
      } catch (err) {
        revoke.disabled = false;
        SO.toast(`Could not revoke the key: ${err.message}`, { kind: "error" });
      }
    });
    return h(
      `tr.key-${state}`,
      { dataset: { id: key.id, name: key.name } },
      h("td", null, h("strong", null, key.name)),
      isAdmin ? h("td", null, key.user || "–") : null,
      h("td", null, h(`span.role-badge.role-${key.role}`, null, key.role)),
      h("td", null, h("code", null, `${key.prefix}…`)),
      h("td", null, SO.relTime(key.created_at)),
      h("td", null, key.expires_at ? h("span", { title: fmt.dateTime(key.expires_at) }, fmt.dateTime(key.expires_at).slice(0, 16)) : h("span.muted", null, "never")),
      h("td", null, key.last_used_at ? SO.relTime(key.last_used_at) : h("span.muted", null, "never")),
      h("td", null, h(`span.badge.badge-key-${state}`, { "data-testid": "key-state" }, label)),
      h("td.col-actions-sm", null, state === "active" ? revoke : null),
    );
  }

  function render() {
    const body = SO.clear($("#keys-body"));
    const showInactive = $("#show-inactive").checked;
    const shown = keys.filter((k) => showInactive || stateOf(k)[0] === "active");
    if (!shown.length) {
      body.append(
        h(
          "tr.empty-row",
          null,
          h(
            "td.empty",
            { colspan: String(cols) },
            h("div.empty-title", null, keys.length ? "No active keys" : "No API keys yet"),
            h("div.muted", null, "Create one above to call the API from scripts, CI or the command line."),
          ),
        ),
      );
      return;
    }
    for (const key of shown) body.append(row(key));
  }

  async function load() {
    try {
      const data = await SO.api("GET", "/api/keys?page_size=1000");
      keys = Array.isArray(data) ? data : data.results;
      render();
    } catch (err) {
      SO.clear($("#keys-body")).append(h("tr", null, h("td.empty", { colspan: String(cols) }, `Could not load the keys: ${err.message}`)));
    }
  }

  const form = $("#key-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    SO.clearFieldErrors(form);
    const f = form.elements;
    const payload = { name: f.name.value.trim(), role: f.role.value };
    if (!payload.name) {
      SO.showFieldErrors(form, { details: { name: ["Give the key a name, e.g. where it is used."] } });
      return;
    }
    if (f.expires_days.value !== "") payload.expires_days = Number(f.expires_days.value);
    const button = $("button[type=submit]", form);
    button.disabled = true;
    try {
      const created = await SO.api("POST", "/api/keys", payload);
      const { key, message, ...record } = created;
      keys = [record, ...keys];
      render();
      $("#new-key-name").textContent = `“${record.name}”`;
      $("#new-key-value").value = key;
      $("#new-key").hidden = false;
      $("#new-key-value").focus();
      $("#new-key-value").select();
      form.reset();
    } catch (err) {
      SO.showFieldErrors(form, err);
    } finally {
      button.disabled = false;
    }
  });

  $("#copy-key").addEventListener("click", async () => {
    const input = $("#new-key-value");
    const ok = await SO.copy(input.value, input);
    const button = $("#copy-key");
    button.textContent = ok ? "Copied ✓" : "Select and copy";
    setTimeout(() => (button.textContent = "Copy"), 1600);
  });
  $("#dismiss-key").addEventListener("click", () => {
    // Forget the key: it is not shown again.
    $("#new-key-value").value = "";
    $("#new-key").hidden = true;
  });
  $("#show-inactive").addEventListener("change", render);

  load();
})();
