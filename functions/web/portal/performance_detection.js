// A detection iteration's performance: mAP, precision and recall at a probability and an overlap
// threshold (the API's figures, asked again as either slider moves), per tag, and the held-out
// photos with the predicted boxes drawn against the labelled ones.

import { training } from "./api.js";
import { boxesAbove, boxLegend, percentSlider, photoWithBoxes } from "./detections.js";
import { clear, emptyState, h, percent, showError, spinner } from "./ui.js";

const DEBOUNCE_MS = 150;
const PAGE = 24; // held-out photos drawn at a time

const stat = (label, value, hint) => h("div.stat", {},
  h("span.stat-label", { text: label }), h("span.stat-value", { text: percent(value) }),
  hint ? h("span.hint", { text: hint }) : null);

/** Draw the figures of `it` into `main`; `loadImages()` resolves with its held-out photos. */
export async function renderDetectionPerformance(main, ctx, it, loadImages) {
  const { project } = ctx;
  let request = 0;
  let debounce = null;
  const later = () => { clearTimeout(debounce); debounce = setTimeout(ask, DEBOUNCE_MS); };
  ctx.onLeave(() => clearTimeout(debounce));
  const probability = percentSlider("Probability threshold", { value: 50, onInput: () => { later(); drawPhotos(); },
    hint: "A predicted box counts when its probability is at least this." });
  const overlap = percentSlider("Overlap threshold", { value: 30, onInput: later,
    hint: "A predicted box finds a labelled box of its tag when they overlap at least this much (intersection over union)." });
  const figures = h("div.figures", { "aria-live": "polite" }, spinner());
  const photos = h("div.held-out", {}, spinner("Loading the held-out photos…"));
  main.append(
    h("div.detection-thresholds", {}, probability.element, overlap.element),
    h("p.hint", { text: "The figures come from held-out photos: a first detector was trained without them and " +
      "scored them. mAP is the mean of the tags' average precision (AP); a detector has no precision-recall " +
      "curves here, mAP stands for them." }),
    figures,
    h("h3", { text: "Held-out photos" }), photos);

  let perTag = [];
  let shownPerf = null;
  let images = [];
  async function ask() {
    const mine = ++request;
    try {
      const perf = await training("GET", `/projects/${project.id}/iterations/${it.id}/performance`,
        { query: { threshold: probability.value(), overlapThreshold: overlap.value() }, signal: ctx.signal });
      if (mine !== request) return;
      perTag = perf.perTagPerformance;
      shownPerf = perf;
      drawFigures(perf);
    } catch (error) { if (mine === request) showError(figures, error, "Loading the performance"); }
  }

  function drawFigures(perf) {
    const heldOut = (tagId) => images.filter((i) => i.tags.some((t) => t.tagId === tagId)).length;
    const at = `at ${percent(probability.value())} probability, ${percent(overlap.value())} overlap`;
    clear(figures,
      h("div.stats", { "aria-label": `Figures ${at}`, role: "group" },
        stat("mAP", perf.averagePrecision, `at ${percent(overlap.value())} overlap`),
        stat("Precision", perf.precision, at), stat("Recall", perf.recall, at)),
      h("table.data.per-tag", {},
        h("caption.visually-hidden", { text: "Performance per tag" }),
        h("thead", {}, h("tr", {}, ["Tag", "Precision", "Recall", "AP", "Held-out photos"].map((t, i) =>
          h("th", { scope: "col", class: i ? "num" : "", text: t })))),
        h("tbody", {}, perTag.map((t) => h("tr", { dataset: { tagId: t.id } },
          h("th", { scope: "row", text: t.name }),
          h("td.num", { text: percent(t.precision) }), h("td.num", { text: percent(t.recall) }),
          h("td.num", { text: percent(t.averagePrecision) }),
          h("td.num", { text: images.length ? String(heldOut(t.id)) : "–" }))))));
  }

  let showing = PAGE;
  function drawPhotos() {
    if (!images.length) return;
    const threshold = probability.value();
    const tags = perTag.map((t) => ({ id: t.id, name: t.name }));
    const page = images.slice(0, showing);
    clear(photos, boxLegend(true),
      h("div.held-out-grid", {}, page.map((image, n) => {
        const shown = boxesAbove(image.predictions, threshold);
        const labelled = image.regions || [];
        return h("figure", { dataset: { imageId: image.id } },
          photoWithBoxes(image.imageUri, `Held-out photo ${n + 1}: ${shown.length} predicted, ${labelled.length} labelled`,
            shown, tags, labelled),
          h("figcaption", { text: `${shown.length} predicted at ${percent(threshold)} or more · ${labelled.length} labelled` }));
      })),
      images.length > showing
        ? h("div.pager", {}, h("button", { type: "button", text: `Show more (${images.length - showing} left)`,
          onclick: () => { showing += PAGE; drawPhotos(); } }))
        : null);
  }

  const loading = loadImages().then((found) => {
    images = found;
    if (!images.length) clear(photos, emptyState("No held-out photos", "This iteration kept no photo out of training."));
  }, (error) => showError(photos, error, "Loading the held-out photos"));
  await Promise.all([loading, ask()]);
  if (shownPerf) drawFigures(shownPerf); // the held-out counts per tag need the photos
  drawPhotos();
}
