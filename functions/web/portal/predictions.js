// Stored predictions: filter by iteration, tag and threshold; newest or most uncertain first;
// tag and add to the training images (a detector's with the boxes shown), or delete.

import { chunks, training } from "./api.js";
import { boxesAbove, detectionResult, percentSlider, regionsOf } from "./detections.js";
import { addToTraining, scoreList } from "./quicktest.js";
import {
  clear, confirmDialog, dialog, disabledReason, emptyState, field, formatDate, h, percent, showError,
  spinner, toast,
} from "./ui.js";

const PAGE = 24;

export async function renderPredictions(view, ctx) {
  const { project } = ctx;
  view.append(spinner());
  const [iterations, tags] = await Promise.all([
    training("GET", `/projects/${project.id}/iterations`, { signal: ctx.signal }),
    training("GET", `/projects/${project.id}/tags`, { signal: ctx.signal }),
  ]);
  const names = new Map(iterations.map((i) => [i.id, i.name]));
  const state = { results: [], continuation: null, selected: new Set() };

  const iteration = h("select", { name: "iteration" }, h("option", { value: "", text: "All iterations" }),
    iterations.filter((i) => i.status === "Completed").map((i) => h("option", { value: i.id, text: i.name })));
  const tag = h("select", { name: "tag" }, h("option", { value: "", text: "Any tag" }),
    tags.map((t) => h("option", { value: t.id, text: t.name })));
  const min = h("input", { type: "range", min: "0", max: "100", value: "0", name: "minThreshold", id: "pred-min" });
  const minOut = h("output", { for: "pred-min", text: "0%" });
  const minWhy = disabledReason(min);
  const order = h("select", { name: "orderBy" },
    h("option", { value: "Newest", text: "Newest first" }),
    h("option", { value: "Suggested", text: "Most uncertain first" }));
  const message = h("div");
  const toolbar = h("div.toolbar", { role: "toolbar", "aria-label": "Selected predictions" });
  const grid = h("div.image-grid", { "aria-live": "polite" });
  const more = h("div.pager");
  // Detection: the boxes at least this probable are the ones shown and the ones added as regions.
  const boxes = ctx.detection ? percentSlider("Show boxes at least", { value: 50, onInput: () => draw(),
    hint: "Stored predictions keep every box down to 1%: those at least this probable are counted, shown and added as regions." }) : null;

  clear(view,
    h("form.filters-bar", { onsubmit: (e) => { e.preventDefault(); load(false); } },
      field("Iteration", iteration), field("Tag", tag),
      h("div.field", {}, h("label", { for: "pred-min", text: "Tag probability at least" }),
        h("div.inline", {}, min, minOut), minWhy.note),
      field("Order", order)),
    boxes ? boxes.element : null,
    message, toolbar, grid, more);
  for (const control of [iteration, tag, order]) control.addEventListener("change", () => load(false));
  const syncThreshold = () => minWhy.because(tag.value ? null : "Choose a tag to filter by its probability.");
  tag.addEventListener("change", syncThreshold);
  syncThreshold();
  min.addEventListener("input", () => { minOut.textContent = `${min.value}%`; });
  min.addEventListener("change", () => load(false));

  async function load(append) {
    clear(message);
    const token = { orderBy: order.value, maxCount: PAGE, iterationId: iteration.value || undefined,
      continuation: append ? state.continuation : undefined,
      tags: tag.value ? [{ id: tag.value, minThreshold: Number(min.value) / 100, maxThreshold: 1 }] : undefined };
    if (!append) clear(grid, spinner());
    try {
      const page = await training("POST", `/projects/${project.id}/predictions/query`, { json: token, signal: ctx.signal });
      state.results = append ? [...state.results, ...page.results] : page.results;
      state.continuation = page.token.continuation || null;
      if (!append) state.selected.clear();
    } catch (error) {
      if (error.name === "AbortError") return;
      showError(message, error, "Loading the predictions");
      clear(grid);
    }
    draw();
  }

  const score = (p) => {
    if (tag.value) return p.predictions.find((x) => x.tagId === tag.value) || p.predictions[0];
    return p.predictions[0];
  };

  function draw() {
    drawToolbar();
    if (!state.results.length) {
      clear(grid, emptyState("No stored predictions",
        "Predictions made with store=true (the prediction API without /nostore, and quick tests) " +
        "appear here, so you can review them and add them to the training images."));
      clear(more);
      return;
    }
    clear(grid, state.results.map((p, i) => {
      const top = score(p);
      const picked = state.selected.has(p.id);
      return h("div.thumb", { class: picked ? "picked" : "", dataset: { predictionId: p.id } },
        h("input.pick", { type: "checkbox", checked: picked, "aria-label": `Select prediction ${i + 1} (${top?.tagName || "no tag"})`,
          onchange: (e) => { if (e.target.checked) state.selected.add(p.id); else state.selected.delete(p.id);
            e.target.parentElement.classList.toggle("picked", e.target.checked); drawToolbar(); } }),
        h("button.thumb-open", { type: "button", "aria-label": `Open prediction ${i + 1}`, onclick: () => open(p) },
          h("img", { src: p.thumbnailUri, alt: "", loading: "lazy" })),
        h("span.thumb-tags", {}, h("strong", { text: top?.tagName || "–" }), ` ${percent(top?.probability)}`),
        boxes ? h("span.hint.tiny", { text: boxCount(p) }) : null,
        h("span.hint.tiny", { text: `${names.get(p.iteration) || "deleted iteration"} · ${formatDate(p.created)}` }));
    }));
    clear(more, state.continuation
      ? h("button", { type: "button", text: "Load more", onclick: () => load(true) })
      : h("span.hint", { text: `${state.results.length} shown` }));
  }

  const shownBoxes = (p) => boxesAbove(p.predictions, boxes.value());
  const boxCount = (p) => {
    const n = shownBoxes(p).length;
    return `${n} box${n === 1 ? "" : "es"} at ${percent(boxes.value())} or more`;
  };

  function drawToolbar() {
    const count = state.selected.size;
    if (!state.results.length) {
      clear(toolbar);
      return;
    }
    const pick = boxes ? null : h("select", { "aria-label": "Tag for the selected predictions" },
      tags.map((t) => h("option", { value: t.id, text: t.name })));
    const add = h("button.primary", { type: "button",
      text: boxes ? "Add to training images with their boxes" : "Add to training images",
      onclick: () => promote([...state.selected], pick ? pick.value : null) });
    const drop = h("button.danger-outline", { type: "button", text: "Delete", onclick: remove });
    const needsSelection = disabledReason(add, drop);
    const needsTag = disabledReason(add);
    if (!count) needsSelection.because("Select predictions to add them to the training images or delete them.");
    else if (!tags.length && !boxes) needsTag.because("The project has no tags: create one on Training images first.");
    clear(toolbar,
      h("button", { type: "button", text: "Select all", onclick: () => {
        state.results.forEach((p) => state.selected.add(p.id)); draw(); } }),
      h("span.group", {}, pick, add, needsTag.note),
      drop,
      count ? h("span.selected-count", { text: `${count} selected` }) : needsSelection.note);
  }

  async function forget(ids) {
    for (const batch of chunks(ids, 64)) {
      await training("DELETE", `/projects/${project.id}/predictions`, { query: { ids: batch } });
    }
    state.results = state.results.filter((p) => !ids.includes(p.id));
    for (const id of ids) state.selected.delete(id);
  }

  /** Make training images of stored predictions, with the tag `tagId` (or, when detecting, with
   * each one's boxes shown as its regions); those added leave this list. */
  async function promote(ids, tagId) {
    const byId = new Map(state.results.map((p) => [p.id, p]));
    const entry = (id) => (boxes ? { id, regions: regionsOf(shownBoxes(byId.get(id))) } : { id, tagIds: [tagId] });
    try {
      const added = [];
      const failed = [];
      for (const batch of chunks(ids, 64)) {
        const summary = await training("POST", `/projects/${project.id}/images/predictions`,
          { json: { images: batch.map(entry) } });
        summary.images.forEach((r, i) => ((r.status === "OK" || r.status === "OKDuplicate") ? added : failed)
          .push({ id: batch[i], ...r }));
      }
      await forget(added.map((r) => r.id));
      const name = tags.find((t) => t.id === tagId)?.name || "the chosen tag";
      toast(`Added ${added.length} image${added.length === 1 ? "" : "s"} to the training images` +
        (boxes ? " with their boxes." : ` as ${name}.`));
      if (failed.length) {
        clear(message, h("div.alert", { role: "alert" }, h("strong", { text: `${failed.length} not added` }),
          h("ul.failures", {}, failed.map((f) => h("li", {}, h("code.code", { text: f.status }), ` ${f.message || ""}`)))));
      }
      draw();
    } catch (error) { showError(message, error, "Adding to the training images"); }
  }

  async function remove() {
    const ids = [...state.selected];
    const ok = await confirmDialog(`Delete ${ids.length} prediction${ids.length === 1 ? "" : "s"}?`,
      "The stored images and results are deleted; the training images are not affected.");
    if (!ok) return;
    try {
      await forget(ids);
      toast(`Deleted ${ids.length} prediction${ids.length === 1 ? "" : "s"}.`);
      draw();
    } catch (error) { showError(message, error, "Deleting"); }
  }

  const added = (close, p) => async () => {
    await forget([p.id]);
    draw();
    setTimeout(() => close(), 800);
  };

  function open(p) {
    if (boxes) {
      return dialog("Prediction", (body, close) => body.append(
        h("p.hint", { text: `${names.get(p.iteration) || "deleted iteration"} · ${formatDate(p.created)}` }),
        detectionResult(project, tags, p, p.originalImageUri, { threshold: boxes.value(), onAdded: added(close, p) })),
      { wide: true });
    }
    return dialog("Prediction", (body, close) => body.append(h("div.image-view", {},
      h("img.full", { src: p.originalImageUri, alt: p.predictions.length ? `Predicted ${p.predictions[0].tagName}` : "A stored prediction" }),
      h("div.image-info", {},
        h("p.hint", { text: `${names.get(p.iteration) || "deleted iteration"} · ${formatDate(p.created)}` }),
        scoreList(p.predictions),
        h("h3", { text: "Add to the training images" }),
        addToTraining(project, tags, p, added(close, p))))), { wide: true });
  }

  await load(false);
}
