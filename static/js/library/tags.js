/* Library page (5/9): the tags card — create, edit, delete, and filter the scripts by a tag. */
(function () {
  "use strict";
  const SO = window.SO;
  const { h, $ } = SO;
  const L = SO.library;
  const { can, API, TAG_PALETTE, tags, sheet, confirmDialog, emptyBlock, errorBlock, listOf, plural, safeColor, tagChip } = L;

  async function loadTags() {
    const list = $("#tags-list");
    try {
      tags.list = listOf(await SO.api("GET", `${API}/tags?page_size=500`));
    } catch (err) {
      SO.clear(list).append(h("li", null, errorBlock("Could not load the tags", err)));
      return;
    }
    tags.byId = new Map(tags.list.map((t) => [String(t.id), t]));
    renderTags();
    L.fillTagFilter();
    if (sheet.script) L.renderSheetTags();
  }

  function renderTags() {
    const list = SO.clear($("#tags-list"));
    $("#tags-count").textContent = tags.list.length ? plural(tags.list.length, "tag") : "";
    if (!tags.list.length) {
      list.append(
        h(
          "li.tag-empty",
          null,
          emptyBlock(
            "No tags yet",
            can.edit ? "Create one above, then attach it to scripts from their details." : "Tags group scripts by purpose; a user or admin can create them.",
          ),
        ),
      );
      return;
    }
    for (const tag of tags.list) list.append(tagItem(tag));
  }

  function tagItem(tag) {
    const li = h("li.tag-item", { dataset: { tagId: tag.id, testid: "tag" } });
    const active = L.list.state.tag === String(tag.id);
    li.append(
      tagChip(tag, { onClick: () => L.filterBy({ tag: active ? "" : String(tag.id) }, { scroll: !active }), pressed: active }),
      h("span.tag-count.muted.small", null, plural(tag.script_count || 0, "script")),
    );
    if (tag.description) li.append(h("span.tag-desc.muted.small", { title: tag.description }, tag.description));
    if (can.edit) {
      const edit = h("button.btn.btn-sm.btn-link", { type: "button", dataset: { action: "edit-tag" }, "aria-label": `Edit the tag ${tag.name}` }, "Edit");
      const del = h("button.btn.btn-sm.btn-danger-ghost", { type: "button", dataset: { action: "delete-tag" }, "aria-label": `Delete the tag ${tag.name}` }, "Delete");
      edit.addEventListener("click", () => editTag(li, tag));
      del.addEventListener("click", () => deleteTag(tag));
      li.append(h("span.actions.tag-actions", null, edit, del));
    }
    return li;
  }

  function tagFields(tag) {
    return [
      h(
        "label.field.tag-form-name",
        null,
        h("span.field-label", null, "Name"),
        h("input", { type: "text", name: "name", required: true, maxlength: "64", value: tag.name }),
        h("span.field-error", { dataset: { errorFor: "name" } }),
      ),
      h(
        "label.field.tag-form-color",
        null,
        h("span.field-label", null, "Colour"),
        h("input", { type: "color", name: "color", value: safeColor(tag.color) }),
        h("span.field-error", { dataset: { errorFor: "color" } }),
      ),
      h(
        "label.field.tag-form-desc",
        null,
        h("span.field-label", null, "Description"),
        h("input", { type: "text", name: "description", maxlength: "500", value: tag.description || "" }),
        h("span.field-error", { dataset: { errorFor: "description" } }),
      ),
    ];
  }

  function editTag(li, tag) {
    const form = h(
      "form.tag-form.tag-edit",
      { novalidate: true, "aria-label": `Edit the tag ${tag.name}` },
      h("div.alert.alert-error", { dataset: { errorFor: "non_field_errors" }, hidden: true }),
      ...tagFields(tag),
      h(
        "span.actions",
        null,
        h("button.btn.btn-sm.btn-primary", { type: "submit" }, "Save"),
        h("button.btn.btn-sm.btn-ghost", { type: "button", dataset: { action: "cancel" } }, "Cancel"),
      ),
    );
    const cancel = () => {
      const fresh = tagItem(tag);
      form.replaceWith(fresh);
      $("[data-action=edit-tag]", fresh).focus();
    };
    $("[data-action=cancel]", form).addEventListener("click", cancel);
    form.addEventListener("keydown", (e) => {
      if (e.key === "Escape") cancel();
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const f = form.elements;
      const changes = {};
      if (f.name.value.trim() !== tag.name) changes.name = f.name.value.trim();
      if (f.color.value.toLowerCase() !== safeColor(tag.color).toLowerCase()) changes.color = f.color.value;
      if (f.description.value !== (tag.description || "")) changes.description = f.description.value;
      if (!Object.keys(changes).length) return cancel();
      try {
        await SO.api("PATCH", `${API}/tags/${tag.id}`, changes);
        SO.toast(`Tag ${changes.name || tag.name} saved.`, { kind: "success" });
        await loadTags();
        L.loadScripts();
        const again = $(`#tags-list [data-tag-id="${CSS.escape(String(tag.id))}"] [data-action=edit-tag]`);
        if (again) again.focus();
      } catch (err) {
        SO.showFieldErrors(form, err);
      }
    });
    li.replaceWith(h("li.tag-item.tag-item-editing", { dataset: { tagId: tag.id } }, form));
    form.elements.name.focus();
  }

  async function deleteTag(tag) {
    const sure = await confirmDialog({
      title: `Delete the tag “${tag.name}”?`,
      text: tag.script_count
        ? `It is detached from ${plural(tag.script_count, "script")}; the scripts themselves stay.`
        : "No script carries it.",
      ok: "Delete tag",
    });
    if (!sure) return;
    try {
      await SO.api("DELETE", `${API}/tags/${tag.id}`);
      SO.toast(`Tag ${tag.name} deleted.`, { kind: "success" });
      if (L.list.state.tag === String(tag.id)) L.filterBy({ tag: "" });
      await loadTags();
      L.loadScripts();
      L.loadStats();
      $("#tags-title").focus();
    } catch (err) {
      SO.toast(`Could not delete the tag ${tag.name}: ${err.message}`, { kind: "error" });
    }
  }

  const tagForm = $("#tag-form");
  if (tagForm) {
    tagForm.elements.color.value = TAG_PALETTE[0];
    tagForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      SO.clearFieldErrors(tagForm);
      const f = tagForm.elements;
      const payload = { name: f.name.value.trim(), color: f.color.value, description: f.description.value.trim() };
      if (!payload.name) {
        SO.showFieldErrors(tagForm, { details: { name: ["Name the tag."] } });
        return;
      }
      const submit = $("[type=submit]", tagForm);
      submit.disabled = true;
      try {
        const tag = await SO.api("POST", `${API}/tags`, payload);
        SO.toast(`Tag ${tag.name} created.`, { kind: "success" });
        f.name.value = "";
        f.description.value = "";
        await loadTags();
        f.color.value = TAG_PALETTE[tags.list.length % TAG_PALETTE.length];
        f.name.focus();
      } catch (err) {
        SO.showFieldErrors(tagForm, err);
      } finally {
        submit.disabled = false;
      }
    });
  }

  Object.assign(L, { loadTags, renderTags });
})();
