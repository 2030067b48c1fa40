// Training images: tag sidebar with counts, filters, paged grid, selection, upload, image view.

import { chunks, training } from "./api.js";
import {
  clear, confirmDialog, dialog, disabledReason, emptyState, field, formatDate, h, icon, progressBar,
  showError, spinner, toast, uniqueId,
} from "./ui.js";
import { labelImages, thumbnailWithBoxes } from "./labeler.js";

const PAGE_SIZE = 48;
const BATCH = 64; // images per upload request, the API's limit

/** Tag names -> ids, creating the tags that do not exist yet. */
export async function ensureTags(projectId, tags, names, signal) {
  const ids = [];
  for (const name of names) {
    const found = tags.find((t) => t.name.toLowerCase() === name.toLowerCase());
    if (found) ids.push(found.id);
    else {
      const created = await training("POST", `/projects/${projectId}/tags`, { query: { name }, signal });
      tags.push({ ...created, imageCount: 0 });
      ids.push(created.id);
    }
  }
  return ids;
}

/** The upload dialog: files by picker or drop, tags to apply, batches of 64 with progress.
 * Closing it (also by leaving the page) aborts the upload: no later batch is sent. */
function uploadDialog(project, tags, droppedFiles, detection) {
  return dialog("Add images", (body, close, signal) => {
    let files = [...(droppedFiles || [])];
    let uploaded = 0;
    const input = h("input", { type: "file", multiple: true, accept: "image/*", name: "imageData" });
    const chosen = h("p.hint", { "aria-live": "polite" });
    const showChosen = () => {
      chosen.textContent = files.length
        ? `${files.length} file${files.length === 1 ? "" : "s"} chosen (${(files.reduce((s, f) => s + f.size, 0) / 1e6).toFixed(1)} MB).`
        : "No files chosen yet.";
    };
    input.addEventListener("change", () => { files = [...input.files]; showChosen(); });
    const zone = h("div.dropzone", {},
      h("p", { text: "Drop photos here, or" }),
      h("label.button", { text: "Choose files", for: "upload-input" }),
      chosen);
    input.id = "upload-input";
    input.className = "visually-hidden";
    zone.prepend(input);
    zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      zone.classList.remove("over");
      files = [...e.dataTransfer.files].filter((f) => f.type.startsWith("image/") || !f.type);
      showChosen();
    });
    showChosen();

    const tagBoxes = tags.map((t) => h("label.check", {},
      h("input", { type: "checkbox", value: t.id, name: "uploadTag" }), h("span", { text: t.name })));
    const newTags = h("input", { name: "newTags", placeholder: "e.g. daisy" });
    const progress = h("div.upload-progress", { "aria-live": "polite" });
    const results = h("div.upload-results");
    const start = h("button.primary", { type: "submit", text: "Upload" });
    const busy = disabledReason(start);
    const done = h("button", { type: "button", text: "Close", onclick: () => close(uploaded) });

    const form = h("form", {
      onsubmit: async (event) => {
        event.preventDefault();
        clear(results);
        if (!files.length) {
          clear(results, h("p.alert", { role: "alert", text: "Choose at least one photo first." }));
          return;
        }
        busy.because("Uploading: wait for it to finish.");
        const names = newTags.value.split(",").map((s) => s.trim()).filter(Boolean);
        let tagIds = [];
        try {
          tagIds = tagBoxes.filter((b) => b.firstChild.checked).map((b) => b.firstChild.value);
          tagIds.push(...await ensureTags(project.id, tags, names, signal));
        } catch (error) {
          if (error.name === "AbortError") return;
          showError(results, error, "Creating the tags");
          busy.because(null);
          return;
        }
        const failures = [];
        let duplicates = 0;
        let processed = 0;
        const total = files.length;
        const show = () => clear(progress,
          h("p", { text: `Uploading: ${processed} of ${total} processed` }),
          progressBar(processed / total, "Upload progress"));
        show();
        for (const batch of chunks(files, BATCH)) {
          if (signal.aborted) return;
          const form = new FormData();
          for (const file of batch) form.append("imageData", file, file.name);
          try {
            const summary = await training("POST", `/projects/${project.id}/images`,
              { query: { tagIds }, form, signal });
            summary.images.forEach((result, i) => {
              if (result.status === "OK") uploaded += 1;
              else if (result.status === "OKDuplicate") duplicates += 1;
              else failures.push({ name: result.sourceUrl || batch[i].name,
                status: result.status, message: result.message || "" });
            });
          } catch (error) {
            if (error.name === "AbortError") return;
            for (const file of batch) {
              failures.push({ name: file.name, status: error.code, message: error.message });
            }
          }
          processed += batch.length;
          show();
        }
        clear(progress,
          h("p.summary", { text: `Done: ${uploaded} added` +
            (duplicates ? `, ${duplicates} already in the project` : "") +
            (failures.length ? `, ${failures.length} failed.` : ".") }),
          progressBar(1, "Upload progress"));
        if (failures.length) {
          clear(results, h("div.alert", { role: "alert" },
            h("strong", { text: `${failures.length} file${failures.length === 1 ? "" : "s"} could not be added` }),
            h("ul.failures", {}, failures.map((f) => h("li", {},
              h("span.file", { text: f.name }), " ", h("code.code", { text: f.status }),
              f.message ? ` — ${f.message}` : "")))));
        }
        files = [];
        showChosen();
        busy.because(null);
        done.focus();
      },
    },
    zone,
    // In a detection project a photo's tags are its boxes' tags: boxes are drawn after the upload.
    detection ? h("p.hint", { text: "After the upload, open each photo to draw boxes around the things in it." })
      : h("fieldset", {}, h("legend", { text: "Tags to apply" }),
        tagBoxes.length ? h("div.checks", {}, tagBoxes) : null,
        field("New tags (comma-separated)", newTags)),
    progress, results,
    h("div.actions", {}, busy.note, done, start));
    body.append(form);
  }, { wide: true });
}

/** The image view: the full-size photo, its tags (add/remove) and metadata. */
function imageDialog(project, tags, image) {
  return dialog("Image", (body, close) => {
    let changed = false;
    const tagList = h("ul.chips");
    const status = h("div");
    const drawTags = () => clear(tagList, image.tags.length ? image.tags.map((t) => h("li.chip", {},
      h("span", { text: t.tagName }),
      h("button.icon", { type: "button", "aria-label": `Remove tag ${t.tagName}`, text: "×",
        onclick: async () => {
          try {
            await training("DELETE", `/projects/${project.id}/images/tags`,
              { query: { imageIds: image.id, tagIds: t.tagId } });
            image.tags = image.tags.filter((x) => x.tagId !== t.tagId);
            changed = true;
            drawTags();
          } catch (error) { showError(status, error, "Removing the tag"); }
        } }))) : h("li.hint", { text: "No tags yet." }));
    drawTags();
    const pick = h("select", { "aria-label": "Tag to add" },
      tags.map((t) => h("option", { value: t.id, text: t.name })));
    const add = h("button", { type: "button", text: "Add tag", onclick: async () => {
      const tag = tags.find((t) => t.id === pick.value);
      if (!tag || image.tags.some((t) => t.tagId === tag.id)) return;
      try {
        await training("POST", `/projects/${project.id}/images/tags`,
          { json: { tags: [{ imageId: image.id, tagId: tag.id }] } });
        image.tags.push({ tagId: tag.id, tagName: tag.name });
        changed = true;
        drawTags();
      } catch (error) { showError(status, error, "Adding the tag"); }
    } });
    const metadata = Object.entries(image.metadata || {});
    body.append(h("div.image-view", {},
      h("img.full", { src: image.originalImageUri, alt: image.tags.map((t) => t.tagName).join(", ") || "Untagged image" }),
      h("div.image-info", {},
        h("h3", { text: "Tags" }), tagList,
        tags.length ? h("div.inline", {}, pick, add) : h("p.hint", { text: "Create a tag in the sidebar first." }),
        status,
        h("h3", { text: "Details" }),
        h("dl.details", {},
          h("dt", { text: "Size" }), h("dd", { text: `${image.width} × ${image.height} px` }),
          h("dt", { text: "Added" }), h("dd", { text: formatDate(image.created) }),
          h("dt", { text: "Id" }), h("dd", {}, h("code", { text: image.id })),
          metadata.map(([k, v]) => [h("dt", { text: k }), h("dd", { text: v })])),
        metadata.length ? null : h("p.hint", { text: "No metadata." }),
        h("div.actions", {}, h("button", { type: "button", text: "Done", onclick: () => close(changed) })))));
  }, { wide: true });
}

export async function renderImages(view, ctx) {
  const { project } = ctx;
  const state = { tags: [], status: "all", tagFilter: new Set(), skip: 0, images: [], total: 0,
    selected: new Set(), counts: { all: 0, tagged: 0, untagged: 0 } };
  const sidebar = h("aside.sidebar", { "aria-label": "Tags" });
  const toolbar = h("div.toolbar", { role: "toolbar", "aria-label": "Images" });
  const message = h("div");
  const grid = h("div.image-grid", { "aria-live": "polite" });
  const pager = h("nav.pager", { "aria-label": "Pages" });
  const content = h("div.content", {}, toolbar, message, grid, pager);
  view.append(h("div.with-sidebar", {}, sidebar, content));

  content.addEventListener("dragover", (e) => { e.preventDefault(); content.classList.add("drop-target"); });
  content.addEventListener("dragleave", (e) => {
    if (!content.contains(e.relatedTarget)) content.classList.remove("drop-target");
  });
  content.addEventListener("drop", (e) => {
    e.preventDefault();
    content.classList.remove("drop-target");
    const files = [...e.dataTransfer.files];
    if (files.length) openUpload(files);
  });

  async function openUpload(files) {
    await uploadDialog(project, state.tags, files, ctx.detection);
    if (ctx.active()) await reload(); // not after leaving the page, which closed the dialog
  }

  async function loadTags() {
    const [tags, all, tagged, untagged] = await Promise.all([
      training("GET", `/projects/${project.id}/tags`, { signal: ctx.signal }),
      training("GET", `/projects/${project.id}/images/count`, { signal: ctx.signal }),
      training("GET", `/projects/${project.id}/images/tagged/count`, { signal: ctx.signal }),
      training("GET", `/projects/${project.id}/images/untagged/count`, { signal: ctx.signal }),
    ]);
    state.tags = tags.sort((a, b) => a.name.localeCompare(b.name));
    state.counts = { all, tagged, untagged };
    for (const id of [...state.tagFilter]) if (!tags.some((t) => t.id === id)) state.tagFilter.delete(id);
  }

  function query() {
    const q = { taggingStatus: state.status === "all" ? undefined : state.status === "tagged" ? "Tagged" : "Untagged" };
    if (state.tagFilter.size && state.status !== "untagged") q.tagIds = [...state.tagFilter];
    return q;
  }

  async function loadImages() {
    const q = query();
    const [images, total] = await Promise.all([
      training("GET", `/projects/${project.id}/images`, { query: { ...q, take: PAGE_SIZE, skip: state.skip }, signal: ctx.signal }),
      training("GET", `/projects/${project.id}/images/count`, { query: q, signal: ctx.signal }),
    ]);
    state.images = images;
    state.total = total;
  }

  async function reload({ tags = true } = {}) {
    clear(message);
    try {
      if (tags) await loadTags();
      await loadImages();
      if (state.skip && state.skip >= state.total) {
        state.skip = Math.max(0, Math.floor((state.total - 1) / PAGE_SIZE) * PAGE_SIZE);
        await loadImages();
      }
    } catch (error) {
      if (error.name === "AbortError") return;
      showError(message, error, "Loading the images");
    }
    drawSidebar();
    drawToolbar();
    drawGrid();
  }

  function filterButton(status, label, count) {
    return h("button.filter", { type: "button", "aria-pressed": String(state.status === status),
      onclick: () => { state.status = status; if (status === "untagged") state.tagFilter.clear();
        state.skip = 0; reload({ tags: false }); } },
    h("span", { text: label }), h("span.count", { text: String(count) }));
  }

  function drawSidebar() {
    const newTag = h("input", { name: "tagName", placeholder: "New tag name", "aria-label": "New tag name" });
    const tagStatus = h("div");
    clear(sidebar,
      h("h2", { text: "Show" }),
      h("div.filters", {},
        filterButton("all", "All images", state.counts.all),
        filterButton("tagged", "Tagged", state.counts.tagged),
        filterButton("untagged", "Untagged", state.counts.untagged)),
      h("h2", { text: "Tags" }),
      h("form.inline", { onsubmit: async (e) => {
        e.preventDefault();
        const name = newTag.value.trim();
        if (!name) return;
        try {
          await training("POST", `/projects/${project.id}/tags`, { query: { name } });
          toast(`Created tag ${name}.`);
          await reload();
        } catch (error) { showError(tagStatus, error, "Creating the tag"); }
      } }, newTag, h("button.small", { type: "submit", text: "Add" })),
      tagStatus,
      state.tags.length ? h("ul.tag-list", {}, state.tags.map((tag) => h("li", {},
        h("label.check", {},
          h("input", { type: "checkbox", checked: state.tagFilter.has(tag.id),
            "aria-label": `Filter by ${tag.name}`,
            onchange: (e) => {
              if (e.target.checked) state.tagFilter.add(tag.id); else state.tagFilter.delete(tag.id);
              if (state.status === "untagged") state.status = "all";
              state.skip = 0;
              reload({ tags: false });
            } }),
          h("span.tag-name", { text: tag.name }),
          tag.type === "Negative" ? h("span.badge", { text: "Negative" }) : null),
        h("span.count", { text: String(tag.imageCount), title: "images" }),
        h("button.icon", { type: "button", "aria-label": `Rename ${tag.name}`, title: "Rename", onclick: () => renameTag(tag) }, icon("edit")),
        h("button.icon", { type: "button", "aria-label": `Delete ${tag.name}`, title: "Delete", onclick: () => deleteTag(tag) }, icon("trash")),
      ))) : h("p.hint", { text: "No tags yet. Add one above, or while uploading." }));
  }

  async function renameTag(tag) {
    const saved = await dialog(`Rename ${tag.name}`, (body, close) => {
      const name = h("input", { value: tag.name, required: true });
      const status = h("div");
      body.append(h("form", { onsubmit: async (e) => {
        e.preventDefault();
        try {
          close(await training("PATCH", `/projects/${project.id}/tags/${tag.id}`, { json: { name: name.value.trim() } }));
        } catch (error) { showError(status, error, "Renaming the tag"); }
      } }, field("Name", name), status, h("div.actions", {},
        h("button", { type: "button", text: "Cancel", onclick: () => close() }),
        h("button.primary", { type: "submit", text: "Rename" }))));
    });
    if (saved) { toast(`Renamed to ${saved.name}.`); await reload(); }
  }

  async function deleteTag(tag) {
    const ok = await confirmDialog(`Delete tag ${tag.name}?`,
      `The tag is removed from its ${tag.imageCount} images; the images stay.`);
    if (!ok) return;
    try {
      await training("DELETE", `/projects/${project.id}/tags/${tag.id}`);
      state.tagFilter.delete(tag.id);
      toast(`Deleted tag ${tag.name}.`);
      await reload();
    } catch (error) { showError(message, error, "Deleting the tag"); }
  }

  function drawToolbar() {
    const count = state.selected.size;
    const add = h("button.primary", { type: "button", text: "Add images", onclick: () => openUpload([]) });
    if (!state.images.length) {
      clear(toolbar, add);
      return;
    }
    const pick = h("select", { "aria-label": "Tag for the selected images" },
      state.tags.map((t) => h("option", { value: t.id, text: t.name })));
    const clearSelection = h("button", { type: "button", text: "Clear selection", onclick: () => {
      state.selected.clear(); drawToolbar(); drawGrid();
    } });
    const tag = h("button", { type: "button", text: "Tag", onclick: () => tagSelection(pick.value, true) });
    const untag = h("button", { type: "button", text: "Untag", onclick: () => tagSelection(pick.value, false) });
    const remove = h("button.danger-outline", { type: "button", text: "Delete", onclick: deleteSelection });
    const needsSelection = disabledReason(clearSelection, tag, untag, remove);
    needsSelection.because(count ? null
      : ctx.detection ? "Select images to delete them." : "Select images to tag, untag or delete them.");
    clear(toolbar,
      add,
      h("span.sep"),
      h("button", { type: "button", text: "Select page", onclick: () => {
        state.images.forEach((i) => state.selected.add(i.id)); drawToolbar(); drawGrid();
      } }),
      clearSelection,
      state.tags.length && !ctx.detection ? h("span.group", {}, pick, tag, untag) : null,
      remove,
      count ? h("span.selected-count", { text: `${count} selected` }) : needsSelection.note);
  }

  async function tagSelection(tagId, add) {
    const ids = [...state.selected];
    try {
      if (add) {
        for (const batch of chunks(ids, 128)) {
          await training("POST", `/projects/${project.id}/images/tags`,
            { json: { tags: batch.map((imageId) => ({ imageId, tagId })) } });
        }
      } else {
        for (const batch of chunks(ids, 64)) {
          await training("DELETE", `/projects/${project.id}/images/tags`, { query: { imageIds: batch, tagIds: tagId } });
        }
      }
      const name = state.tags.find((t) => t.id === tagId)?.name || "the chosen tag";
      toast(`${add ? "Tagged" : "Untagged"} ${ids.length} image${ids.length === 1 ? "" : "s"} ${add ? "with" : "from"} ${name}.`);
      state.selected.clear();
      await reload();
    } catch (error) { showError(message, error, add ? "Tagging" : "Untagging"); }
  }

  async function deleteSelection() {
    const ids = [...state.selected];
    const ok = await confirmDialog(`Delete ${ids.length} image${ids.length === 1 ? "" : "s"}?`,
      "They are removed from the project for good.");
    if (!ok) return;
    try {
      for (const batch of chunks(ids, 256)) {
        await training("DELETE", `/projects/${project.id}/images`, { query: { imageIds: batch } });
      }
      toast(`Deleted ${ids.length} image${ids.length === 1 ? "" : "s"}.`);
      state.selected.clear();
      await reload();
    } catch (error) { showError(message, error, "Deleting"); }
  }

  function drawGrid() {
    if (!state.images.length) {
      const filtered = state.status !== "all" || state.tagFilter.size;
      clear(grid, filtered
        ? emptyState("No images match", "Change the filter in the sidebar to see other images.")
        : emptyState("No images yet", ctx.detection
          ? "Add photos of the things to detect, then open each one and draw a box around each thing. " +
            "Drop them here or choose files."
          : "Add photos of each thing to recognise, at least 5 per tag (15 or more works better). " +
          "Drop them here or choose files.",
          h("button.primary", { type: "button", text: "Add images", onclick: () => openUpload([]) })));
      clear(pager);
      return;
    }
    clear(grid, state.images.map((image, i) => {
      // A detection image's tags are its boxes' tags (each named once).
      const names = ctx.detection ? [...new Set(image.regions.map((r) => r.tagName))] : image.tags.map((t) => t.tagName);
      const label = names.length ? names.join(", ") : "untagged";
      const picked = state.selected.has(image.id);
      return h("div.thumb", { class: picked ? "picked" : "" },
        h("input.pick", { type: "checkbox", checked: picked,
          "aria-label": `Select image ${state.skip + i + 1} (${label})`,
          onchange: (e) => {
            if (e.target.checked) state.selected.add(image.id); else state.selected.delete(image.id);
            e.target.parentElement.classList.toggle("picked", e.target.checked);
            drawToolbar();
          } }),
        h("button.thumb-open", { type: "button", "aria-label": `Open image ${state.skip + i + 1} (${label})`,
          onclick: () => open(i) },
        ctx.detection ? thumbnailWithBoxes(image, state.tags) : h("img", { src: image.thumbnailUri, alt: "", loading: "lazy" })),
        h("span.thumb-tags", { text: label, class: names.length ? "" : "muted" }));
    }));
    const pages = Math.max(1, Math.ceil(state.total / PAGE_SIZE));
    const page = Math.floor(state.skip / PAGE_SIZE) + 1;
    // The page count between the buttons says why one is disabled (first or last page).
    const where = h("span", { id: uniqueId("page"), text: `Page ${page} of ${pages} · ${state.total} images` });
    const turn = (text, disabled, step) => h("button", { type: "button", text, disabled,
      "aria-describedby": disabled ? where.id : false,
      onclick: () => { state.skip += step; reload({ tags: false }); } });
    clear(pager, turn("← Previous", page <= 1, -PAGE_SIZE), where, turn("Next →", page >= pages, PAGE_SIZE));
  }

  async function open(i) {
    if (ctx.detection) {
      await labelImages(project, state.tags, state.images, i);
      if (ctx.active()) await reload(); // boxes are saved as they are drawn
    } else if (await imageDialog(project, state.tags, state.images[i])) await reload();
  }

  clear(grid, spinner());
  await reload();
}
