// Quick test: classify a file or URL with an iteration (or detect its objects), then add it to
// the training set.

import { training } from "./api.js";
import { addPrediction, detectionResult } from "./detections.js";
import { clear, disabledReason, emptyState, field, h, percent, showError, spinner } from "./ui.js";

/** Probabilities as labelled bars, highest first. */
export function scoreList(predictions) {
  return h("ol.scores", {}, predictions.map((p) => h("li", {},
    h("span.score-name", { text: p.tagName }),
    h("span.score-bar", { "aria-hidden": "true" }, h("span", { style: `width: ${(p.probability * 100).toFixed(1)}%` })),
    h("strong.score-value", { text: percent(p.probability) }))));
}

/** "Add to training set": choose tags and make a training image of a stored prediction. */
export function addToTraining(project, tags, prediction, onDone) {
  const predictionId = prediction.id;
  const top = prediction.predictions[0]?.tagId;
  const multiclass = project.settings.classificationType === "Multiclass";
  const choose = multiclass
    ? h("select", { "aria-label": "Tag", name: "tag" }, tags.map((t) =>
      h("option", { value: t.id, text: t.name, selected: t.id === top })))
    : h("div.checks", {}, tags.map((t) => h("label.check", {},
      h("input", { type: "checkbox", value: t.id }), h("span", { text: t.name }))));
  const status = h("div");
  const button = h("button.primary", { type: "button", text: "Add to training images", onclick: async () => {
    const tagIds = multiclass ? [choose.value] : [...choose.querySelectorAll("input:checked")].map((i) => i.value);
    if (!tagIds.length) { clear(status, h("p.alert", { role: "alert", text: "Choose at least one tag." })); return; }
    const names = tagIds.map((id) => tags.find((t) => t.id === id)?.name).join(", ");
    await addPrediction(project, { id: predictionId, tagIds }, status, busy,
      `Added to the training images as ${names}.`, (result) => {
        chooser.remove(); // done: a disabled button would only repeat what the status says
        if (onDone) onDone(result);
      });
  } });
  const busy = disabledReason(button);
  const chooser = tags.length ? h("div.inline", {}, choose, button, busy.note) : h("p.hint", { text: "The project has no tags." });
  return h("div.add-training", {}, chooser, status);
}

export async function renderQuickTest(view, ctx) {
  const { project } = ctx;
  view.append(spinner());
  const [iterations, tags] = await Promise.all([
    training("GET", `/projects/${project.id}/iterations`, { signal: ctx.signal }),
    training("GET", `/projects/${project.id}/tags`, { signal: ctx.signal }),
  ]);
  const completed = iterations.filter((i) => i.status === "Completed").sort((a, b) => b.created.localeCompare(a.created));
  if (!completed.length) {
    clear(view, emptyState("Nothing to test yet", "Quick test needs a trained iteration. Train the project first.",
      h("a.button.primary", { href: `#/projects/${project.id}/train`, text: "Train" })));
    return;
  }
  const iteration = h("select", { name: "iteration" }, completed.map((i) =>
    h("option", { value: i.id, text: `${i.name}${i.publishName ? ` (published: ${i.publishName})` : ""}` })));
  const file = h("input", { type: "file", accept: "image/*", name: "quicktestFile" });
  const url = h("input", { type: "url", name: "quicktestUrl", placeholder: "https://…" });
  const result = h("div.quicktest-result", { "aria-live": "polite" });

  async function run(call, preview) {
    clear(result, spinner(ctx.detection ? "Detecting…" : "Classifying…"));
    try {
      const prediction = await call();
      if (ctx.detection) {
        clear(result, detectionResult(project, tags, prediction, preview));
        return;
      }
      clear(result, h("div.two-col", {},
        h("figure.preview", {}, h("img", { src: preview, alt: "The tested image" })),
        h("div", {},
          h("h2", { text: "Predicted tags" }),
          h("p.top-tag", {}, "Most likely: ", h("strong", { text: prediction.predictions[0]?.tagName || "–" })),
          scoreList(prediction.predictions),
          h("h3", { text: "Add to the training set" }),
          h("p.hint", { text: "It was kept as a stored prediction; tag it to make it a training image." }),
          addToTraining(project, tags, prediction))));
    } catch (error) {
      showError(result, error, "The quick test");
    }
  }

  file.addEventListener("change", () => {
    const chosen = file.files[0];
    if (!chosen) return;
    const form = new FormData();
    form.append("imageData", chosen, chosen.name);
    run(() => training("POST", `/projects/${project.id}/quicktest/image`,
      { query: { iterationId: iteration.value }, form }), URL.createObjectURL(chosen));
  });
  const urlForm = h("form.inline", { onsubmit: (e) => {
    e.preventDefault();
    if (!url.value) return;
    run(() => training("POST", `/projects/${project.id}/quicktest/url`,
      { query: { iterationId: iteration.value }, json: { url: url.value } }), url.value);
  } }, url, h("button", { type: "submit", text: "Test URL" }));
  clear(view,
    h("div.card", {},
      h("h2", { text: "Quick test" }),
      field("Iteration", iteration),
      h("div.two-col", {},
        field("Image file", file, "JPEG, PNG, BMP, GIF or WebP, up to 4 MB."),
        h("div.field", {}, h("label", { for: "qt-url", text: "Or an image URL" }), urlForm))),
    result);
  url.id = "qt-url";
}
