// Dataset: export the project's labelled images as a zip (COCO, Pascal VOC, YOLO, or one folder
// per tag), or import one; both are jobs on the server, followed here with progress bars.

import { TRAINING, keys, training } from "./api.js";
import { clear, field, formatDate, h, progressBar, showError, spinner } from "./ui.js";

const POLL_MS = 1500;
const DETECTION_FORMATS = [
  ["coco", "COCO JSON", "annotations.json with boxes in pixels, and images/. Keeps metadata."],
  ["voc", "Pascal VOC", "One Annotations/*.xml per photo beside JPEGImages/."],
  ["yolo", "YOLO", "labels/*.txt (class, centre, size as fractions) and classes.txt."],
];
const CLASSIFICATION_FORMATS = [
  ["folders", "One folder per tag", "Each photo in the folder of each of its tags; untagged photos at the top."],
];

/** POST the archive with XMLHttpRequest, which reports the upload's progress (fetch does not). */
function upload(projectId, format, file, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    const query = new URLSearchParams({ format });
    request.open("POST", `${TRAINING}/projects/${projectId}/datasets/import?${query}`);
    request.setRequestHeader("Training-Key", keys.training);
    request.setRequestHeader("Content-Type", "application/zip");
    request.upload.onprogress = (event) => event.lengthComputable && onProgress(event.loaded / event.total);
    request.onerror = () => reject(new Error("The server could not be reached."));
    request.onload = () => {
      let body = null;
      try { body = JSON.parse(request.responseText); } catch { body = null; }
      if (request.status >= 200 && request.status < 300) resolve(body);
      else reject(Object.assign(new Error((body && body.message) || `HTTP ${request.status}`),
        { code: (body && body.code) || `HTTP${request.status}`, status: request.status }));
    };
    request.send(file);
  });
}

function jobSummary(job) {
  const parts = [`${job.processed} of ${job.total || "?"} images`];
  if (job.operation === "Import") {
    parts.push(`${job.imported} added`, `${job.duplicates} duplicates`);
    if (job.failed) parts.push(`${job.failed} failed`);
    if (job.tagsCreated.length) parts.push(`tags created: ${job.tagsCreated.join(", ")}`);
  } else if (job.status === "Done") {
    parts.push(`${(job.sizeBytes / 1048576).toFixed(1)} MB`);
  }
  return parts.join(" · ");
}

function jobRow(job, details) {
  const fraction = job.status === "Done" ? 1 : job.total ? job.processed / job.total : 0;
  const named = [...DETECTION_FORMATS, ...CLASSIFICATION_FORMATS].find(([value]) => value === job.format);
  const label = `${job.operation} · ${named ? named[1] : job.format}`;
  const action = job.operation === "Export" && job.downloadUri
    ? h("a.button.primary", { href: job.downloadUri, download: "", text: "Download" })
    : null;
  return h("tr", { dataset: { job: job.id, status: job.status } },
    h("th", { scope: "row", text: label }),
    h("td", { text: formatDate(job.created) }),
    h("td", {},
      h("span.badge", { role: "status", text: job.status }),
      job.finished ? null : progressBar(fraction, `${label} progress`),
      h("div.hint", { text: jobSummary(job) }),
      job.error ? h("p.alert", { role: "alert", text: job.error }) : null,
      details),
    h("td", {}, action));
}

function reportDetails(job) {
  const lines = [
    ...(job.duplicateNames || []).map((name) => `${name}: already in the project`),
    ...(job.failures || []).map((f) => `${f.name}: ${f.message}`),
  ];
  if (!lines.length) return null;
  return h("details", {}, h("summary", { text: `${lines.length} not added` }),
    h("ul.report", {}, lines.map((line) => h("li", { text: line }))));
}

export async function renderDatasets(view, ctx) {
  const { project, detection } = ctx;
  const formats = detection ? DETECTION_FORMATS : CLASSIFICATION_FORMATS;
  const choice = () => h("select", { name: "format" },
    formats.map(([value, name]) => h("option", { value, text: name })));
  const exportFormat = choice();
  const importFormat = choice();
  const file = h("input", { type: "file", name: "archive", accept: ".zip,application/zip" });
  const message = h("div");
  const uploading = h("div.upload-progress", { "aria-live": "polite" });
  const jobs = h("div.dataset-jobs", { "aria-live": "polite" }, spinner());
  let timer = null;
  ctx.onLeave(() => clearTimeout(timer));

  async function refresh() {
    clearTimeout(timer);
    let listed;
    try {
      listed = await training("GET", `/projects/${project.id}/datasets/jobs`, { signal: ctx.signal });
      // A finished import's report (duplicates and failures by name) is on the job itself.
      listed = await Promise.all(listed.map((job) => job.operation === "Import" && ["Done", "Failed"].includes(job.status)
        ? training("GET", `/projects/${project.id}/datasets/jobs/${job.id}`, { signal: ctx.signal })
        : job));
    } catch (error) {
      if (error.name !== "AbortError") showError(message, error, "Loading the dataset jobs");
      return;
    }
    if (!ctx.active()) return;
    for (const job of listed) job.finished = ["Done", "Failed"].includes(job.status);
    clear(jobs, listed.length
      ? h("table.data", {},
        h("thead", {}, h("tr", {}, h("th", { text: "Job" }), h("th", { text: "Started" }),
          h("th", { text: "Progress" }), h("th", { text: "" }))),
        h("tbody", {}, listed.map((job) => jobRow(job, reportDetails(job)))))
      : h("p.hint", { text: "No dataset exports or imports yet." }));
    if (listed.some((job) => !job.finished)) timer = setTimeout(refresh, POLL_MS);
  }

  async function startExport(event) {
    event.preventDefault();
    clear(message);
    try {
      await training("POST", `/projects/${project.id}/datasets/export`, { query: { format: exportFormat.value } });
    } catch (error) {
      showError(message, error, "Starting the export");
    }
    await refresh();
  }

  async function startImport(event) {
    event.preventDefault();
    clear(message);
    const archive = file.files[0];
    if (!archive) {
      showError(message, new Error("Choose a zip archive first."), "Importing");
      return;
    }
    const show = (fraction) => clear(uploading, h("p", { text: `Uploading ${archive.name}…` }),
      progressBar(fraction, "Upload progress"));
    show(0);
    try {
      await upload(project.id, importFormat.value, archive, show);
      file.value = "";
    } catch (error) {
      showError(message, error, "Importing the dataset");
    }
    clear(uploading);
    await refresh();
  }

  const describe = (select) => {
    const hint = h("p.hint");
    const update = () => { hint.textContent = formats.find(([value]) => value === select.value)[2]; };
    select.addEventListener("change", update);
    update();
    return hint;
  };
  clear(view,
    h("div.two-col", {},
      h("form.card", { onsubmit: startExport },
        h("h2", { text: "Export the dataset" }),
        h("p.hint", { text: "Every image's original file with its tags or boxes, as a zip other tools read." }),
        field("Format", exportFormat), describe(exportFormat),
        h("div.actions", {}, h("button.primary", { type: "submit", text: "Export dataset" }))),
      h("form.card", { onsubmit: startImport },
        h("h2", { text: "Import a dataset" }),
        h("p.hint", { text: "Tags missing from the project are created; photos already in it are reported, not added twice." }),
        field("Format", importFormat), describe(importFormat),
        field("Zip archive", file),
        uploading,
        h("div.actions", {}, h("button.primary", { type: "submit", text: "Import dataset" })))),
    message,
    h("h2", { text: "Dataset jobs" }),
    jobs);
  await refresh();
}
