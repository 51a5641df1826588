/* Library page (4/9): registering a folder root (admin), with the folder picker. */
(function () {
  "use strict";
  const SO = window.SO;
  const { h, $, $$, fmt } = SO;
  const L = SO.library;
  const { API, ALLOWED_ROOTS, roots, plural } = L;

  const rootForm = $("#root-form");
  const rootNew = $("#root-new");

  function openRootForm() {
    if (!rootForm) return;
    rootForm.hidden = false;
    if (rootNew) rootNew.setAttribute("aria-expanded", "true");
    rootForm.elements.name.focus();
    rootForm.scrollIntoView({ block: "nearest", behavior: "smooth" });
  }
  function closeRootForm() {
    rootForm.hidden = true;
    SO.clearFieldErrors(rootForm);
    rootNew.setAttribute("aria-expanded", "false");
    rootNew.focus();
  }

  const patternList = (textarea) =>
    textarea.value
      .split(/\r?\n/)
      .map((line) => line.trim())
      .filter(Boolean);

  if (rootForm) {
    rootNew.addEventListener("click", () => (rootForm.hidden ? openRootForm() : closeRootForm()));
    $("#root-cancel").addEventListener("click", closeRootForm);
    rootForm.addEventListener("keydown", (event) => {
      if (event.key === "Escape") closeRootForm();
    });
    rootForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      SO.clearFieldErrors(rootForm);
      const f = rootForm.elements;
      const payload = { name: f.name.value.trim(), path: f.path.value.trim(), recursive: f.recursive.checked };
      const missing = {};
      if (!payload.name) missing.name = ["Give the root a name."];
      if (!payload.path) missing.path = ["Which folder? Type its path or browse."];
      if (Object.keys(missing).length) {
        SO.showFieldErrors(rootForm, { details: missing });
        return;
      }
      // Unchanged pattern lists are left to the server's defaults.
      for (const name of ["include_patterns", "exclude_patterns"]) {
        if (f[name].value !== f[name].defaultValue) payload[name] = patternList(f[name]);
      }
      const submit = $("[type=submit]", rootForm);
      submit.disabled = true;
      submit.classList.add("busy");
      try {
        const root = await SO.api("POST", `${API}/folder-roots`, payload);
        SO.toast(`Registered ${root.name}.`, { kind: "success" });
        const scanNow = f.scan_now.checked;
        rootForm.reset();
        closeRootForm();
        await L.loadRoots();
        L.loadStats();
        if (scanNow) {
          const li = $(`#roots-list [data-root-id="${CSS.escape(String(root.id))}"]`);
          const button = li && $("[data-action=scan]", li);
          if (button) {
            await L.startScan(roots.byId.get(String(root.id)) || root, button);
            button.focus();
          }
        }
      } catch (err) {
        SO.showFieldErrors(rootForm, err);
      } finally {
        submit.disabled = false;
        submit.classList.remove("busy");
      }
    });
  }

  const picker = $("#folder-picker");
  const pickerState = { path: null, parent: null, opener: null };

  /** List a folder in the picker (the allowed roots without a path). ``fallback``: on an
   * error, list the allowed roots instead (the typed path may not exist). */
  async function browse(path, { fallback = false } = {}) {
    const list = SO.clear($("#picker-list"));
    const error = $("#picker-error");
    error.hidden = true;
    list.append(h("li.loading-row", null, h("span.spinner"), " Loading…"));
    let data;
    try {
      data = await SO.api("GET", path ? `/api/browse?path=${encodeURIComponent(path)}` : "/api/browse");
    } catch (err) {
      SO.clear(list);
      if (fallback && path) await browse(null);
      error.textContent = err.message;
      error.hidden = false;
      return;
    }
    pickerState.path = data.path || null;
    pickerState.parent = data.parent || null;
    $("#picker-current").textContent = data.path || "Allowed roots";
    $("#picker-up").disabled = !data.path;
    $("#picker-choose").disabled = !data.path;
    SO.clear(list);
    const items = data.items || [];
    const folders = items.filter((i) => i.type === "folder");
    const files = items.filter((i) => i.type !== "folder");
    for (const folder of folders) {
      list.append(
        h(
          "li",
          null,
          h(
            "button.picker-item",
            { type: "button", dataset: { path: folder.path }, title: folder.path, onclick: () => browse(folder.path) },
            h("span.picker-icon.picker-folder", { "aria-hidden": "true" }),
            h("span.picker-name", null, data.path ? folder.name : folder.path),
            h("span.picker-go", { "aria-hidden": "true" }, "›"),
          ),
        ),
      );
    }
    const shownFiles = files.slice(0, 200);
    for (const file of shownFiles) {
      list.append(
        h(
          "li.picker-file",
          null,
          h("span.picker-icon.picker-doc", { "aria-hidden": "true" }),
          h("span.picker-name", null, file.name),
          h("span.muted.small", null, fmt.bytes(file.size)),
        ),
      );
    }
    if (files.length > shownFiles.length) list.append(h("li.picker-file.muted", null, `…and ${fmt.number(files.length - shownFiles.length)} more files`));
    if (!items.length) list.append(h("li.picker-file.muted", null, "This folder is empty."));
    $("#picker-note").textContent = data.path ? `${plural(folders.length, "folder")}, ${plural(files.length, "file")}` : "";
    const first = $(".picker-item", list);
    (first || ($("#picker-choose").disabled ? $("#picker-up") : $("#picker-choose"))).focus();
  }

  if (picker) {
    $("#root-browse").addEventListener("click", () => {
      pickerState.opener = $("#root-browse");
      pickerState.path = null;
      picker.showModal();
      browse(rootForm.elements.path.value.trim() || null, { fallback: true });
    });
    $("#picker-up").addEventListener("click", () => {
      const atAllowedRoot = ALLOWED_ROOTS.includes(pickerState.path);
      browse(atAllowedRoot || !pickerState.parent ? null : pickerState.parent);
    });
    $("#picker-choose").addEventListener("click", () => {
      if (!pickerState.path) return;
      const f = rootForm.elements;
      f.path.value = pickerState.path;
      if (!f.name.value.trim()) f.name.value = fmt.basename(pickerState.path.replace(/\/+$/, ""));
      picker.close();
    });
    for (const close of $$("[data-close]", picker)) close.addEventListener("click", () => picker.close());
    picker.addEventListener("close", () => {
      if (pickerState.opener) pickerState.opener.focus();
    });
  }

  Object.assign(L, { openRootForm });
})();
