// Export: request an iteration's model in each format, follow the export, download the zip.

import { training } from "./api.js";
import { clear, emptyState, field, h, showError, spinner } from "./ui.js";

const POLL_MS = 2000;

// What the export API offers (functions/domain/exports.py): platform, flavor, description.
const FORMATS = [
  ["ONNX", "", "ONNX, float32", "onnxruntime on any platform; the reference model."],
  ["ONNX", "ONNXFloat16", "ONNX, float16", "Half the size; float16 weights, float32 input and output."],
  ["ONNX", "ONNXInt8", "ONNX, int8", "A quarter of the size; quantised, calibrated on training images."],
  ["OpenVino", "", "OpenVINO", "Intel CPUs, GPUs and NPUs (IR .xml + .bin)."],
  ["TensorFlow", "TensorFlowNormal", "TensorFlow SavedModel", "TensorFlow and TF Serving."],
  ["TensorFlow", "TensorFlowLite", "TensorFlow Lite", "Android and embedded (.tflite)."],
  ["CoreML", "", "Core ML", "iOS and macOS (.mlpackage)."],
  ["DockerFile", "Linux", "Docker, Linux", "A container that serves the model over HTTP (x86-64)."],
  ["DockerFile", "ARM", "Docker, ARM", "The same container for arm64 (Raspberry Pi, Graviton)."],
];

function statusCell(record, start) {
  if (!record) return h("button", { type: "button", text: "Export", onclick: start });
  if (record.status === "Exporting") return h("span.badge", { role: "status", text: "Exporting…" });
  if (record.status === "Failed") {
    return h("div", {},
      h("p.alert", { role: "alert" }, h("strong", { text: "Failed" }), ` — ${record.error || "no reason given"}`),
      h("button", { type: "button", text: "Try again", onclick: start }));
  }
  return h("div.inline", {},
    h("a.button.primary", { href: record.downloadUri, download: "", text: "Download" }),
    record.newerVersionAvailable
      ? h("button", { type: "button", text: "Re-export (newer exporter)", onclick: start })
      : null);
}

export async function renderExports(view, ctx) {
  const { project } = ctx;
  view.append(spinner());
  const iterations = await training("GET", `/projects/${project.id}/iterations`, { signal: ctx.signal });
  const completed = iterations.filter((i) => i.status === "Completed").sort((a, b) => b.created.localeCompare(a.created));
  if (!completed.length) {
    clear(view, emptyState("Nothing to export yet", "Exports are made from a trained iteration. Train the project first.",
      h("a.button.primary", { href: `#/projects/${project.id}/train`, text: "Train" })));
    return;
  }
  const iteration = h("select", { name: "iteration" }, completed.map((i) =>
    h("option", { value: i.id, text: `${i.name}${i.publishName ? ` (published: ${i.publishName})` : ""}` })));
  const table = h("div.export-list", { "aria-live": "polite" });
  const message = h("div");
  let timer = null;
  ctx.onLeave(() => clearTimeout(timer));

  async function refresh() {
    clearTimeout(timer);
    const chosen = iteration.value;
    let records;
    try {
      records = await training("GET", `/projects/${project.id}/iterations/${chosen}/export`, { signal: ctx.signal });
    } catch (error) {
      if (error.name !== "AbortError") showError(message, error, "Loading the exports");
      return;
    }
    if (!ctx.active() || chosen !== iteration.value) return;
    const find = (platform, flavor) => records.find((r) => r.platform === platform && (r.flavor || "") === flavor);
    clear(table, h("table.data", {},
      h("thead", {}, h("tr", {}, h("th", { text: "Format" }), h("th", { text: "For" }), h("th", { text: "Export" }))),
      h("tbody", {}, FORMATS.map(([platform, flavor, name, use]) => h("tr", { dataset: { format: name } },
        h("th", { scope: "row", text: name }),
        h("td", { text: use }),
        h("td", {}, statusCell(find(platform, flavor), () => start(platform, flavor))))))));
    if (records.some((r) => r.status === "Exporting")) timer = setTimeout(refresh, POLL_MS);
  }

  async function start(platform, flavor) {
    clear(message);
    try {
      await training("POST", `/projects/${project.id}/iterations/${iteration.value}/export`,
        { query: { platform, flavor } });
    } catch (error) {
      showError(message, error, "Starting the export");
    }
    await refresh();
  }

  iteration.addEventListener("change", refresh);
  clear(view,
    h("div.card", {},
      h("h2", { text: "Export" }),
      h("p.hint", { text: "Each export is a zip with the model, labels.txt, the preprocessing it expects, a model card and a sample script." }),
      field("Iteration", iteration)),
    message, table);
  await refresh();
}
