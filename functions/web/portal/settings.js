// Sign-in (the keys, kept in sessionStorage) and settings: endpoint, keys, prediction URLs.

import { ApiError, PREDICTION, keys, prediction, training } from "./api.js";
import {
  clear, copyText, disabledReason, emptyState, errorBanner, field, h, percent, showError, spinner,
} from "./ui.js";

const TRAINING_KEY_HELP =
  "The Training-Key header: projects, tags, images, training, performance and quick tests. " +
  "It is the CV_TRAINING_KEY the service was started with (locally: local-training-key).";
const PREDICTION_KEY_HELP =
  "The Prediction-Key header: what your apps send to classify images with a published " +
  "iteration (CV_PREDICTION_KEY; locally: local-prediction-key). The portal needs it only " +
  "to try the prediction endpoint.";

function keyForm(onDone, submitLabel, look = "card narrow") {
  const trainingInput = h("input", {
    type: "password", name: "trainingKey", autocomplete: "off", required: true,
    value: keys.training,
  });
  const predictionInput = h("input", {
    type: "password", name: "predictionKey", autocomplete: "off", value: keys.prediction,
  });
  const status = h("div.form-status");
  const submit = h("button.primary", { type: "submit", text: submitLabel });
  const busy = disabledReason(submit);
  const form = h("form", { class: look,
    onsubmit: async (event) => {
      event.preventDefault();
      const trainingKey = trainingInput.value.trim();
      const predictionKey = predictionInput.value.trim();
      const before = [keys.training, keys.prediction];
      keys.set(trainingKey, predictionKey);
      clear(status);
      busy.because("Checking the training key…");
      try {
        await training("GET", "/projects");
        clear(status);
        onDone();
      } catch (error) {
        keys.set(...before);
        const shown = error instanceof ApiError && error.status === 401
          ? new ApiError(401, error.code, "The server refused this training key. " + error.message)
          : error;
        showError(status, shown, "Signing in");
      } finally {
        busy.because(null);
      }
    },
  },
  field("Training key", trainingInput, TRAINING_KEY_HELP),
  field("Prediction key (optional)", predictionInput, PREDICTION_KEY_HELP),
  status,
  h("div.actions", {}, busy.note, submit));
  return form;
}

export async function renderStart(main) {
  const notice = sessionStorage.getItem("ocv.notice");
  sessionStorage.removeItem("ocv.notice");
  clear(main,
    h("div.hero", {},
      h("h1", { text: "Open Custom Vision" }),
      h("p.lead", {
        text: "Train image classifiers on your own photos, test them, and publish them for " +
          "your apps. Enter your keys to start; they stay in this browser tab only.",
      })),
    notice ? errorBanner(new ApiError(401, "Unauthorized", notice), "Your session") : null,
    keyForm(() => {
      const next = sessionStorage.getItem("ocv.next");
      sessionStorage.removeItem("ocv.next");
      location.hash = next || "#/projects";
    }, "Sign in"));
}

function copyRow(label, value) {
  return h("div.copy-row", {},
    h("span.copy-label", { text: label }),
    h("code.copy-value", { text: value }),
    h("button.small", { type: "button", text: "Copy", "aria-label": `Copy ${label}`,
      onclick: () => copyText(value) }));
}

function codeBlock(label, text) {
  return h("div.code-block", {},
    h("div.code-head", {}, h("span", { text: label }),
      h("button.small", { type: "button", text: "Copy", "aria-label": `Copy ${label}`,
        onclick: () => copyText(text) })),
    h("pre", {}, h("code", { text })));
}

/** Custom Vision's "Prediction URL" dialog: the URLs and curl examples of a published name. */
export function predictionUrlPanel(projectId, publishName) {
  const base = `${location.origin}${PREDICTION}/${projectId}/classify/iterations/` +
    encodeURIComponent(publishName);
  const key = keys.prediction || "<your prediction key>";
  const fileCurl = `curl -X POST "${base}/image" \\\n  -H "Prediction-Key: ${key}" \\\n` +
    `  -H "Content-Type: application/octet-stream" \\\n  --data-binary @photo.jpg`;
  const urlCurl = `curl -X POST "${base}/url" \\\n  -H "Prediction-Key: ${key}" \\\n` +
    `  -H "Content-Type: application/json" \\\n  -d '{"Url": "https://example.com/photo.jpg"}'`;
  return h("div.prediction-url", {},
    h("h3", { text: "If you have an image file" }),
    copyRow("URL", `${base}/image`),
    codeBlock("curl, image file", fileCurl),
    h("h3", { text: "If you have an image URL" }),
    copyRow("URL", `${base}/url`),
    codeBlock("curl, image URL", urlCurl),
    h("p.hint", {
      text: "Add /nostore to either URL to classify without keeping the image in Predictions.",
    }),
    tryIt(projectId, publishName));
}

function tryIt(projectId, publishName) {
  const out = h("div.try-out", { "aria-live": "polite" });
  const input = h("input", { type: "file", accept: "image/*" });
  input.addEventListener("change", async () => {
    const file = input.files[0];
    if (!file) return;
    if (!keys.prediction) {
      clear(out, h("p.hint", { text: "Enter a prediction key in the settings to try it." }));
      return;
    }
    clear(out, spinner("Classifying…"));
    try {
      const path = `/${projectId}/classify/iterations/${encodeURIComponent(publishName)}/image`;
      const result = await prediction("POST", path, { raw: file });
      clear(out, h("ol.scores", {}, result.predictions.map((p) =>
        h("li", {}, h("span", { text: p.tagName }), h("strong", { text: percent(p.probability) })))));
    } catch (error) {
      showError(out, error, "Classifying");
    }
  });
  return h("div.try", {}, field("Try it with a photo (uses the prediction key)", input), out);
}

export async function renderSettings(main, ctx) {
  const published = h("div", {}, spinner("Looking for published iterations…"));
  const shown = (value) => (value ? "•".repeat(Math.min(value.length, 12)) : "not set");
  main.append(
    h("h1", { text: "Settings" }),
    h("section.card", { "aria-labelledby": "endpoint-h" },
      h("h2#endpoint-h", { text: "Endpoint and keys" }),
      copyRow("Endpoint", location.origin),
      h("dl.keys", {},
        h("dt", { text: "Training key" }), h("dd", {}, h("code", { text: shown(keys.training) }),
          h("p.hint", { text: TRAINING_KEY_HELP })),
        h("dt", { text: "Prediction key" }), h("dd", {}, h("code", { text: shown(keys.prediction) }),
          h("p.hint", { text: PREDICTION_KEY_HELP })))),
    h("section.card", { "aria-labelledby": "keys-h" },
      h("h2#keys-h", { text: "Change keys" }),
      keyForm(() => { location.reload(); }, "Save keys", "plain")),
    h("section.card", { "aria-labelledby": "published-h" },
      h("h2#published-h", { text: "Prediction URLs" }),
      h("p.hint", { text: "Every published iteration, with the URL your apps call." }),
      published));
  try {
    const projects = await training("GET", "/projects", { signal: ctx.signal });
    const lists = await Promise.all(projects.map((p) =>
      training("GET", `/projects/${p.id}/iterations`, { signal: ctx.signal })));
    const items = [];
    projects.forEach((project, i) => {
      for (const iteration of lists[i].filter((it) => it.publishName)) {
        items.push(h("details.published", {},
          h("summary", {}, h("strong", { text: project.name }), ` · ${iteration.name} · `,
            h("span.badge.ok", { text: `published as ${iteration.publishName}` })),
          predictionUrlPanel(project.id, iteration.publishName)));
      }
    });
    clear(published, items.length ? items : emptyState("Nothing published yet",
      "Train a project, then publish an iteration on its Performance page; its prediction URL " +
      "appears here.", h("a.button", { href: "#/projects", text: "Go to projects" })));
  } catch (error) {
    showError(published, error, "Loading the published iterations");
  }
}
