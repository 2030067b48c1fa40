// Suggested tags: the smart labeler's suggestions for untagged images, confirmed in bulk (for a
// detector: its suggested boxes counted per tag, accepted one by one in the labeler).

import { training } from "./api.js";
import { clear, disabledReason, emptyState, h, percent, showError, spinner, toast } from "./ui.js";

const BATCH = 64; // images per suggestions request

export async function renderSuggested(view, ctx) {
  const { project } = ctx;
  const multiclass = project.settings.classificationType === "Multiclass";
  view.append(spinner());
  const [iterations, untaggedCount] = await Promise.all([
    training("GET", `/projects/${project.id}/iterations`, { signal: ctx.signal }),
    training("GET", `/projects/${project.id}/images/untagged/count`, { signal: ctx.signal }),
  ]);
  const completed = iterations.filter((i) => i.status === "Completed").sort((a, b) => b.created.localeCompare(a.created));
  if (!untaggedCount) {
    clear(view, emptyState("No untagged images",
      "Upload photos without tags; once the project is trained, suggestions for them appear here.",
      h("a.button", { href: `#/projects/${project.id}/images`, text: "Go to training images" })));
    return;
  }
  if (!completed.length) {
    clear(view, emptyState("Train first",
      `There are ${untaggedCount} untagged images. Suggestions come from a trained iteration: tag a few images per tag and train.`,
      h("a.button.primary", { href: `#/projects/${project.id}/train`, text: "Train" })));
    return;
  }
  const iteration = h("select", { id: "sg-iteration" }, completed.map((i) => h("option", { value: i.id, text: i.name })));
  const threshold = h("input", { type: "range", min: "0", max: "100", value: "50", id: "sg-threshold" });
  const thresholdOut = h("output", { for: "sg-threshold", text: "50%" });
  const message = h("div");
  const grid = h("div.image-grid.suggestions", { "aria-live": "polite" });
  const confirm = h("button.primary", { type: "button", text: "Confirm suggestions" });
  const confirmWhy = disabledReason(confirm);
  let cards = []; // {image, suggestion, chosen: Set}

  clear(view,
    h("div.filters-bar", {},
      h("div.field", {}, h("label", { for: "sg-iteration", text: "Suggestions from" }), iteration),
      h("div.field", {}, h("label", { for: "sg-threshold",
        text: ctx.detection ? "Count boxes at least" : "Preselect suggestions at least" }),
        h("div.inline", {}, threshold, thresholdOut)),
      ctx.detection ? null : h("div.field.end", {}, confirm, confirmWhy.note)), // a detector's boxes: in the labeler
    ctx.detection
      ? h("p.hint", {}, "Each untagged photo with the boxes the model suggests, counted per tag. Accept or reject " +
        "them one by one in the labeler: open an untagged photo on ",
      h("a", { href: `#/projects/${project.id}/images`, text: "Training images" }), ".")
      : h("p.hint", { text: "Each untagged image with the tags the model suggests. Toggle a tag to accept or " +
        "reject it; Confirm applies the accepted tags. Images with none accepted stay untagged." }),
    untaggedCount > BATCH
      ? h("p.hint", { text: `${untaggedCount} untagged images: ${BATCH} at a time, the next ones after you confirm.` })
      : null,
    message, grid);

  const preselect = () => {
    const t = Number(threshold.value) / 100;
    for (const card of cards) {
      const top = card.suggestion.predictions;
      card.chosen = new Set((multiclass ? top.slice(0, 1) : top).filter((p) => p.probability >= t).map((p) => p.tagId));
    }
  };

  async function load() {
    clear(message);
    clear(grid, spinner("Scoring the untagged images…"));
    try {
      const images = await training("GET", `/projects/${project.id}/images/untagged`,
        { query: { take: BATCH }, signal: ctx.signal });
      const suggestions = images.length ? await training("POST", `/projects/${project.id}/tagsandregions/suggestions`,
        { query: { iterationId: iteration.value, imageIds: images.map((i) => i.id) }, signal: ctx.signal }) : [];
      const byId = new Map(suggestions.map((s) => [s.id, s]));
      cards = images.filter((i) => byId.has(i.id)).map((image) => ({ image, suggestion: byId.get(image.id), chosen: new Set() }));
      preselect();
      draw();
    } catch (error) {
      if (error.name === "AbortError") return;
      clear(grid);
      showError(message, error, "Getting suggestions");
      confirmWhy.because("No suggestions to confirm: getting them failed.");
    }
  }

  /** A detector's suggestion: how many boxes of each tag are at least as probable as the slider. */
  function boxCounts(card) {
    const t = Number(threshold.value) / 100;
    const counts = new Map();
    for (const p of card.suggestion.predictions) {
      if (p.probability >= t) counts.set(p.tagName, (counts.get(p.tagName) || 0) + 1);
    }
    if (!counts.size) return h("span.hint", { text: `No box at ${threshold.value}% or more` });
    return [...counts].map(([name, n]) => h("span.chip", { text: `${name} × ${n}` }));
  }

  function draw() {
    if (ctx.detection) {
      clear(grid, cards.length
        ? cards.map((card, i) => h("div.thumb.suggestion", {},
          h("img", { src: card.image.thumbnailUri, alt: `Untagged image ${i + 1}` }),
          h("div.chips", { role: "group", "aria-label": `Suggested boxes for image ${i + 1}` }, boxCounts(card))))
        : emptyState("All images have boxes", "Nothing left to label."));
      return;
    }
    if (!cards.length) {
      clear(grid, emptyState("All images are tagged", "Nothing left to confirm."));
      confirmWhy.because("No suggestions left to confirm.");
      return;
    }
    confirmWhy.because(null);
    clear(grid, cards.map((card, i) => h("div.thumb.suggestion", {},
      h("img", { src: card.image.thumbnailUri, alt: `Untagged image ${i + 1}` }),
      h("div.chips", { role: "group", "aria-label": `Suggested tags for image ${i + 1}` },
        card.suggestion.predictions.slice(0, 3).map((p) => h("button.chip-toggle", {
          type: "button", "aria-pressed": String(card.chosen.has(p.tagId)),
          text: `${p.tagName} ${percent(p.probability)}`,
          onclick: (e) => {
            if (card.chosen.has(p.tagId)) card.chosen.delete(p.tagId);
            else { if (multiclass) card.chosen.clear(); card.chosen.add(p.tagId); }
            draw();
            grid.querySelectorAll(".thumb")[i]?.querySelectorAll("button")[[...e.target.parentElement.children].indexOf(e.target)]?.focus();
          } }))))));
  }

  confirm.addEventListener("click", async () => {
    const pairs = cards.flatMap((c) => [...c.chosen].map((tagId) => ({ imageId: c.image.id, tagId })));
    if (!pairs.length) { toast("No suggestion is accepted.", "warn"); return; }
    confirmWhy.because("Applying the tags…");
    try {
      for (let i = 0; i < pairs.length; i += 128) {
        await training("POST", `/projects/${project.id}/images/tags`, { json: { tags: pairs.slice(i, i + 128) } });
      }
      const images = new Set(pairs.map((p) => p.imageId)).size;
      toast(`Tagged ${images} image${images === 1 ? "" : "s"}.`);
      await load();
    } catch (error) {
      showError(message, error, "Applying the tags");
      confirmWhy.because(null);
    }
  });
  iteration.addEventListener("change", load);
  threshold.addEventListener("input", () => { thresholdOut.textContent = `${threshold.value}%`; preselect(); draw(); });
  await load();
}
