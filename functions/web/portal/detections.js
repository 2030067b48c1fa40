// A detector's answer on a photo: predicted boxes at or above a probability threshold (tag and
// percent), labelled boxes in another style, the legend, the slider and the list beside them.

import { training } from "./api.js";
import { clear, disabledReason, h, percent, showError, uniqueId } from "./ui.js";
import { boxStyle, tagColour } from "./labeler.js";

/** The predictions with a box whose probability is at least `threshold` (highest first). */
export const boxesAbove = (predictions, threshold) =>
  predictions.filter((p) => p.boundingBox && p.probability >= threshold)
    .sort((a, b) => b.probability - a.probability);

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "es"}`;

/** A labelled range slider in percent; `onInput(fraction)` on each move. */
export function percentSlider(label, { value = 50, hint, onInput } = {}) {
  const id = uniqueId("slider");
  const input = h("input", { type: "range", min: "0", max: "100", step: "1", value: String(value), id });
  const output = h("output", { for: id, text: `${value}%` });
  input.addEventListener("input", () => {
    output.textContent = `${input.value}%`;
    if (onInput) onInput(Number(input.value) / 100);
  });
  const element = h("div.threshold", {}, h("label", { for: id, text: label }), input, output,
    hint ? h("p.hint", { text: hint }) : null);
  return { element, input, value: () => Number(input.value) / 100 };
}

/** What the two box styles mean. */
export function boxLegend(withLabelled) {
  return h("ul.box-legend", { "aria-label": "Legend" },
    h("li", {}, h("span.legend-swatch.predicted", { "aria-hidden": "true" }), "Predicted box (tag and probability)"),
    withLabelled ? h("li", {}, h("span.legend-swatch.labelled", { "aria-hidden": "true" }), "Labelled box") : null);
}

/** The photo with `shown` predicted boxes and, when given, its `labelled` boxes (regions). */
export function photoWithBoxes(src, alt, shown, tags, labelled = []) {
  return h("div.detect-photo", {},
    h("img", { src, alt, draggable: false }),
    labelled.map((r) => h("span.detect-box.labelled", { style: boxStyle(r), title: `Labelled: ${r.tagName}` },
      h("span.detect-label", { text: r.tagName }))),
    shown.map((p) => h("span.detect-box.predicted", {
      style: boxStyle(p.boundingBox) + `--box: ${tagColour(p.tagId, tags)};`,
      title: `${p.tagName} ${percent(p.probability)}`,
    }, h("span.detect-label", { text: `${p.tagName} ${percent(p.probability)}` }))));
}

/** The boxes shown, as a list a screen reader can read. */
export function boxList(shown, tags, threshold) {
  if (!shown.length) return h("p.hint.box-count", { text: `No box at ${percent(threshold)} or more.` });
  return h("div", {},
    h("p.box-count", { text: `${plural(shown.length, "box")} at ${percent(threshold)} or more` }),
    h("ol.box-list.detected", {}, shown.map((p) => h("li", {},
      h("span.swatch", { style: `background: ${tagColour(p.tagId, tags)}` }),
      h("span.score-name", { text: p.tagName }), h("strong", { text: percent(p.probability) })))));
}

/** The regions a stored prediction's shown boxes make, as POST images/predictions takes them. */
export const regionsOf = (shown) => shown.map((p) => {
  const { left, top, width, height } = p.boundingBox;
  return { tagId: p.tagId, left, top, width, height };
});

/** A stored prediction (quick test, or Predictions) as a detector saw it: the photo with its
 * boxes above a slider (50 % at first), their list, and "add to the training images" with the
 * boxes shown as its regions. `onAdded(result)` when it became a training image. */
/** Makes a stored prediction a training image (`entry`: its id with tagIds or regions),
 * says in `status` how it went, and calls `onAdded(result)` once it is one. */
export async function addPrediction(project, entry, status, busy, addedText, onAdded) {
  clear(status);
  busy.because("Adding…");
  try {
    const summary = await training("POST", `/projects/${project.id}/images/predictions`,
      { json: { images: [entry] } });
    const result = summary.images[0];
    if (result.status === "OK" || result.status === "OKDuplicate") {
      clear(status, h("p.ok", { role: "status", text: result.status === "OK"
        ? addedText : "This image is already a training image." }));
      onAdded(result);
    } else {
      clear(status, h("div.alert", { role: "alert" }, h("strong", { text: "Not added" }),
        ` — ${result.message || ""}`, h("code.code", { text: result.status })));
    }
  } catch (error) {
    showError(status, error, "Adding to the training images");
  } finally {
    busy.because(null);
  }
}

export function detectionResult(project, tags, prediction, src, { onAdded, threshold = 0.5 } = {}) {
  const photo = h("figure.preview.detect-figure");
  const list = h("div.detect-list", { "aria-live": "polite" });
  const slider = percentSlider("Show boxes at least", { value: Math.round(threshold * 100), onInput: () => draw() });
  const status = h("div");
  const add = h("button.primary", { type: "button" });
  const busy = disabledReason(add);
  const chooser = h("div.inline", {}, add, busy.note);
  const shown = () => boxesAbove(prediction.predictions, slider.value());
  function draw() {
    const boxes = shown();
    clear(photo, photoWithBoxes(src, boxes.length
      ? `The photo with ${plural(boxes.length, "box")}: ${boxes.map((b) => b.tagName).join(", ")}`
      : "The photo, no box at this threshold", boxes, tags), boxLegend(false));
    clear(list, boxList(boxes, tags, slider.value()));
    add.textContent = boxes.length ? `Add to training images with ${plural(boxes.length, "box")}`
      : "Add to training images without boxes";
  }
  add.addEventListener("click", () => {
    const regions = regionsOf(shown());
    addPrediction(project, { id: prediction.id, regions }, status, busy,
      `Added to the training images with ${plural(regions.length, "box")}.`, (result) => {
        chooser.remove();
        if (onAdded) onAdded(result);
      });
  });
  draw();
  return h("div.two-col.detect-result", {}, photo,
    h("div", {},
      h("h2", { text: "Detected objects" }),
      slider.element, list,
      h("h3", { text: "Add to the training images" }),
      h("p.hint", { text: "It was kept as a stored prediction; the boxes shown become its regions, to adjust in the labeler." }),
      chooser, status));
}
