// Performance: iterations, precision/recall/AP at a threshold, PR curves, confusion matrix,
// publish/unpublish and delete (a detector's figures: performance_detection.js).

import { training } from "./api.js";
import { renderDetectionPerformance } from "./performance_detection.js";
import { predictionUrlPanel } from "./settings.js";
import {
  clear, confirmDialog, dialog, disabledReason, emptyState, field, formatDate, h, percent, showError,
  spinner, svg, toast,
} from "./ui.js";

const TAKE = 256; // the most performance images per request

async function allImagePerformances(projectId, iterationId, signal) {
  const images = [];
  for (let skip = 0; ; skip += TAKE) {
    const page = await training("GET", `/projects/${projectId}/iterations/${iterationId}/performance/images`,
      { query: { take: TAKE, skip }, signal });
    images.push(...page);
    if (page.length < TAKE) return images;
  }
}

const probability = (image, tagId) => {
  const found = image.predictions.find((p) => p.tagId === tagId);
  return found ? found.probability : 0;
};
const hasTag = (image, tagId) => image.tags.some((t) => t.tagId === tagId);

/** Each tag's precision-recall curve, as the server computes it (points by threshold). */
async function curvesOf(projectId, iterationId, signal) {
  const curves = await training("GET", `/portal/projects/${projectId}/iterations/${iterationId}/curves`, { signal });
  return new Map(curves.map((c) => [c.id, c]));
}

// The curve is the server's, point for point; the dot is the performance answer's precision and
// recall at the threshold (a point of that curve), so the chart and the table cannot disagree.
function curveChart(tag, curve, threshold, color) {
  const W = 220; const H = 170; const L = 34; const B = 26; const T = 8; const R = 16;
  const x = (r) => L + r * (W - L - R);
  const y = (p) => T + (1 - p) * (H - T - B);
  const path = curve.recall.map((r, i) => `${i ? "L" : "M"}${x(r).toFixed(1)},${y(curve.precision[i]).toFixed(1)}`).join(" ");
  const here = { precision: tag.precision, recall: tag.recall };
  const grid = [0, 0.5, 1];
  return svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "pr-chart", role: "img",
    "aria-label": `Precision-recall curve of ${tag.name}; at the threshold, precision ${percent(here.precision)}, recall ${percent(here.recall)}` },
  ...grid.map((g) => svg("line", { x1: x(0), x2: x(1), y1: y(g), y2: y(g), class: "gridline" })),
  ...grid.map((g) => svg("line", { x1: x(g), x2: x(g), y1: y(0), y2: y(1), class: "gridline" })),
  ...grid.map((g) => svg("text", { x: L - 4, y: y(g) + 4, "text-anchor": "end", class: "axis" }, `${g * 100}%`)),
  ...grid.map((g) => svg("text", { x: x(g), y: H - 12, "text-anchor": "middle", class: "axis" }, `${g * 100}%`)),
  svg("text", { x: x(0.5), y: H - 1, "text-anchor": "middle", class: "axis-title" }, "recall"),
  svg("text", { x: 9, y: y(0.5), "text-anchor": "middle", class: "axis-title", transform: `rotate(-90 9 ${y(0.5)})` }, "precision"),
  svg("path", { d: path, fill: "none", stroke: color, "stroke-width": "2" }),
  svg("circle", { cx: x(here.recall), cy: y(here.precision), r: "4.5", fill: color, stroke: "#fff", "stroke-width": "1.5",
    class: "pr-dot", "data-tag-id": tag.id, "data-threshold": String(threshold),
    "data-precision": String(here.precision), "data-recall": String(here.recall) }));
}

const NO_CURVE = { thresholds: [], precision: [], recall: [] };
const COLORS = ["#2563eb", "#d97706", "#059669", "#db2777", "#7c3aed", "#0891b2", "#65a30d", "#dc2626"];

function confusion(images, tags, multiclass, threshold) {
  const columns = multiclass ? tags : [...tags, { id: "", name: "nothing" }];
  const cells = new Map(); // "true|predicted" -> images
  for (const image of images) {
    const predicted = multiclass
      ? [image.predictions[0]?.tagId]
      : tags.filter((t) => probability(image, t.id) >= threshold).map((t) => t.id);
    if (!predicted.length) predicted.push("");
    for (const actual of image.tags) {
      for (const p of predicted) {
        const key = `${actual.tagId}|${p}`;
        if (!cells.has(key)) cells.set(key, []);
        cells.get(key).push(image);
      }
    }
  }
  return { columns, cells };
}

function matrixView(images, tags, multiclass, threshold, onOpen) {
  const { columns, cells } = confusion(images, tags, multiclass, threshold);
  const max = Math.max(1, ...[...cells.values()].map((c) => c.length));
  return h("div.matrix-wrap", {}, h("table.matrix", {},
    h("caption", { text: multiclass
      ? "Rows: the image's tag. Columns: the most probable tag (out-of-sample). Select a cell to see its images."
      : "Rows: the image's tags. Columns: tags predicted at the threshold. Select a cell to see its images." }),
    h("thead", {}, h("tr", {}, h("th", { scope: "col", text: "tag \\ predicted" }),
      columns.map((c) => h("th", { scope: "col", text: c.name })))),
    h("tbody", {}, tags.map((row) => h("tr", {},
      h("th", { scope: "row", text: row.name }),
      columns.map((col) => {
        const found = cells.get(`${row.id}|${col.id}`) || [];
        const right = row.id === col.id;
        const strength = found.length / max;
        const style = found.length
          ? `background: ${right ? `rgba(5,150,105,${0.15 + 0.6 * strength})` : `rgba(220,38,38,${0.12 + 0.5 * strength})`}`
          : "";
        return h("td", { style }, found.length
          ? h("button.cell", { type: "button", text: String(found.length),
            "aria-label": `${found.length} images tagged ${row.name}, predicted ${col.name}`,
            onclick: () => onOpen(row, col, found) })
          : h("span.zero", { text: "0" }));
      }))))));
}

function cellImages(row, col, images) {
  return h("div.cell-images", {},
    h("h3", { text: `Tagged ${row.name}, predicted ${col.name}: ${images.length} image${images.length === 1 ? "" : "s"}` }),
    h("div.image-grid.small", {}, images.map((image) => h("figure.thumb", {},
      h("a", { href: image.imageUri, target: "_blank", rel: "noopener",
        "aria-label": `Open the image (tagged ${row.name}) in a new tab` },
      h("img", { src: image.thumbnailUri, alt: "", loading: "lazy" })),
      h("figcaption", {}, image.predictions.slice(0, 2).map((p) =>
        h("span.score", { text: `${p.tagName} ${percent(p.probability)}` })))))));
}

async function publishDialog(project, it) {
  return dialog(`Publish ${it.name}`, (body, close) => {
    const name = h("input", { name: "publishName", required: true,
      value: it.name.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") });
    const resource = h("input", { name: "predictionId", required: true, value: "local-prediction-resource" });
    const status = h("div");
    body.append(h("form", { onsubmit: async (e) => {
      e.preventDefault();
      try {
        await training("POST", `/projects/${project.id}/iterations/${it.id}/publish`,
          { query: { publishName: name.value.trim(), predictionId: resource.value.trim() } });
        close(name.value.trim());
      } catch (error) { showError(status, error, "Publishing"); }
    } },
    field("Published name", name, "Apps call the prediction URL with this name."),
    field("Prediction resource", resource, "Custom Vision's prediction resource id; here, any label for it."),
    status,
    h("div.actions", {},
      h("button", { type: "button", text: "Cancel", onclick: () => close() }),
      h("button.primary", { type: "submit", text: "Publish" }))));
  });
}

function showPredictionUrl(project, it) {
  return dialog("Prediction URL", (body) => body.append(predictionUrlPanel(project.id, it.publishName)), { wide: true });
}

export async function renderPerformance(view, ctx) {
  const { project } = ctx;
  const multiclass = project.settings.classificationType === "Multiclass";
  view.append(spinner());
  const iterations = (await training("GET", `/projects/${project.id}/iterations`, { signal: ctx.signal }))
    .sort((a, b) => b.created.localeCompare(a.created));
  if (!iterations.length) {
    clear(view, emptyState("No iterations yet",
      "Train the project; each training makes an iteration whose performance shows here.",
      h("a.button.primary", { href: `#/projects/${project.id}/train`, text: "Train" })));
    return;
  }
  const chosenId = ctx.params[0];
  const it = iterations.find((i) => i.id === chosenId) || iterations.find((i) => i.status === "Completed") || iterations[0];
  const list = h("nav.sidebar", { "aria-label": "Iterations" },
    h("h2", { text: "Iterations" }),
    h("ul.iteration-list", {}, iterations.map((i) => h("li", {},
      h("a", { href: `#/projects/${project.id}/performance/${i.id}`, "aria-current": i.id === it.id ? "page" : false },
        h("strong", { text: i.name }),
        h("span.hint", { text: i.status === "Completed" ? formatDate(i.trainedAt) : i.status }),
        i.publishName ? h("span.badge.ok", { text: `published: ${i.publishName}` }) : null)))));
  const main = h("div.content");
  clear(view, h("div.with-sidebar", {}, list, main));

  const status = h("div");
  const reload = () => {
    const target = `#/projects/${project.id}/performance/${it.id}`;
    if (location.hash === target) window.dispatchEvent(new HashChangeEvent("hashchange"));
    else location.hash = target;
  };
  const publish = it.status === "Completed" && !it.publishName ? h("button.primary", { type: "button", text: "Publish", onclick: async () => {
    const name = await publishDialog(project, it);
    if (name) { toast(`Published as ${name}.`); reload(); }
  } }) : null;
  const predictionUrl = it.publishName
    ? h("button", { type: "button", text: "Prediction URL", onclick: () => showPredictionUrl(project, it) }) : null;
  const unpublish = it.publishName ? h("button", { type: "button", text: "Unpublish", onclick: async () => {
    const ok = await confirmDialog(`Unpublish ${it.name}?`,
      `Apps calling the name ${it.publishName} will get errors until you publish again.`, "Unpublish");
    if (!ok) return;
    busy.because("Unpublishing…");
    try {
      await training("DELETE", `/projects/${project.id}/iterations/${it.id}/publish`);
      toast("Unpublished."); reload(); // the page is drawn again: its actions stay disabled till then
    } catch (error) { showError(status, error, "Unpublishing"); busy.because(null); }
  } }) : null;
  const remove = h("button.danger-outline", { type: "button", text: "Delete iteration", onclick: async () => {
    const ok = await confirmDialog(`Delete ${it.name}?`, "Its model and its performance figures are deleted.");
    if (!ok) return;
    ctx.stop(); // its figures may still be loading: they would ask for a deleted iteration
    busy.because("Deleting…");
    try {
      await training("DELETE", `/projects/${project.id}/iterations/${it.id}`);
      toast(`Deleted ${it.name}.`);
      location.hash = `#/projects/${project.id}/performance`;
    } catch (error) { showError(status, error, "Deleting the iteration"); busy.because(null); }
  } });
  // While one action on the iteration runs, the others wait (and say so).
  const buttons = [publish, predictionUrl, unpublish, remove].filter(Boolean);
  const busy = disabledReason(...buttons);
  const actions = h("div.actions.left", {}, buttons, busy.note);
  main.append(h("div.page-head", {},
    h("div", {}, h("h2", { text: it.name }),
      h("p.hint", { text: `${it.trainingType} · ${it.status}${it.trainedAt ? ` · trained ${formatDate(it.trainedAt)}` : ""}` +
        `${it.publishName ? ` · published as ${it.publishName}` : ""}` })),
    actions), status);

  if (it.status === "Training") {
    main.append(emptyState("Still training", "The figures appear when the training completes.",
      h("a.button", { href: `#/projects/${project.id}/train`, text: "Watch the progress" })));
    return;
  }
  if (it.status !== "Completed") {
    main.append(h("div.alert", { role: "alert" }, h("strong", { text: "This training failed" }),
      h("span", { text: ` — ${it.trainingErrorDetails || "no reason was recorded."}` })));
    return;
  }

  if (ctx.detection) {
    await renderDetectionPerformance(main, ctx, it, () => allImagePerformances(project.id, it.id, ctx.signal));
    return;
  }
  const slider = h("input", { type: "range", min: "0", max: "100", step: "1", value: "50", id: "threshold" });
  const sliderValue = h("output", { for: "threshold", text: "50%" });
  const figures = h("div.figures", {}, spinner());
  const curves = h("div.curves");
  const matrix = h("div.matrix-slot");
  const behind = h("div", { "aria-live": "polite" });
  main.append(
    h("div.threshold", {}, h("label", { for: "threshold", text: "Probability threshold" }), slider, sliderValue,
      h("p.hint", { text: "A tag counts as predicted when its probability is at least the threshold. The figures come from cross-validation: every image is scored by a model trained without it." })),
    figures,
    h("h3", { text: "Precision-recall curves" }), curves,
    h("h3", { text: multiclass ? "Confusion matrix" : "Predicted tags" }), matrix, behind);

  let images = [];
  let curvesByTag = new Map();
  let perTag = [];
  let request = 0;
  const draw = async () => {
    const threshold = Number(slider.value) / 100;
    sliderValue.textContent = `${slider.value}%`;
    const mine = ++request;
    try {
      const perf = await training("GET", `/projects/${project.id}/iterations/${it.id}/performance`,
        { query: { threshold }, signal: ctx.signal });
      if (mine !== request) return;
      perTag = perf.perTagPerformance;
      const stat = (label, value, std) => h("div.stat", {},
        h("span.stat-label", { text: label }), h("span.stat-value", { text: percent(value) }),
        std !== undefined ? h("span.hint", { text: `± ${percent(std)}` }) : null);
      clear(figures,
        h("div.stats", {}, stat("Precision", perf.precision, perf.precisionStdDeviation),
          stat("Recall", perf.recall, perf.recallStdDeviation), stat("AP", perf.averagePrecision)),
        h("table.data.per-tag", {},
          h("caption.visually-hidden", { text: "Performance per tag" }),
          h("thead", {}, h("tr", {}, ["Tag", "Precision", "Recall", "AP", "Images"].map((t, i) =>
            h("th", { scope: "col", class: i ? "num" : "", text: t })))),
          h("tbody", {}, perTag.map((t) => h("tr", {},
            h("th", { scope: "row", text: t.name }),
            h("td.num", { text: percent(t.precision) }), h("td.num", { text: percent(t.recall) }),
            h("td.num", { text: percent(t.averagePrecision) }),
            h("td.num", { text: String(images.filter((i) => hasTag(i, t.id)).length) }))))));
      drawCharts(threshold);
    } catch (error) { showError(figures, error, "Loading the performance"); }
  };
  const drawCharts = (threshold) => {
    if (curvesByTag.size) {
      clear(curves, perTag.map((t, i) => h("figure.curve", {},
        curveChart(t, curvesByTag.get(t.id) || NO_CURVE, threshold, COLORS[i % COLORS.length]),
        h("figcaption", {}, h("strong", { text: t.name }), ` AP ${percent(t.averagePrecision)}`))));
    }
    if (!images.length) return;
    clear(matrix, matrixView(images, perTag, multiclass, threshold,
      (row, col, found) => { clear(behind, cellImages(row, col, found)); behind.querySelector("a")?.focus(); }));
  };
  let debounce = null;
  slider.addEventListener("input", () => {
    sliderValue.textContent = `${slider.value}%`;
    clearTimeout(debounce);
    debounce = setTimeout(draw, 150);
  });
  ctx.onLeave(() => clearTimeout(debounce));
  clear(curves, spinner("Scoring the training images…"));
  const loading = [
    curvesOf(project.id, it.id, ctx.signal).then((found) => { curvesByTag = found; },
      (error) => showError(curves, error, "Loading the precision-recall curves")),
    allImagePerformances(project.id, it.id, ctx.signal).then((found) => { images = found; },
      (error) => showError(matrix, error, "Loading the image predictions")),
  ];
  await Promise.all(loading);
  await draw();
}
