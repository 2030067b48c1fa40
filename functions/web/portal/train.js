// Training: readiness of the tags, Quick (Regular) or Advanced, then live progress until done.

import { training } from "./api.js";
import { DETECTION, projectKind } from "./projects.js";
import {
  clear, disabledReason, emptyState, field, formatDate, h, progressBar, showError, spinner,
} from "./ui.js";

// What the API checks before it trains (functions/services/training.py): classification needs
// 2 tags (the Negative tag counting once it has images enough) on 5 images or more each; object
// detection 1 tag or more, each on 15 images with its boxes, and no Negative tag.
const RULES = {
  Classification: { perTag: 5, tags: 2 },
  [DETECTION]: { perTag: 15, tags: 1 },
};
const POLL_MS = 1000;
// The trainer writes readable stages ("Loading images", "Computing features (12 new images)").
const stageText = (stage) => (!stage || stage === "Queued" ? "Queued: waiting for a trainer" : stage);

/** Poll one iteration until it is Completed or Failed, drawing into `slot`. */
export function watchIteration(project, iterationId, slot, ctx, onFinished = () => {}) {
  let timer = null;
  ctx.onLeave(() => clearTimeout(timer));
  const tick = async () => {
    try {
      const it = await training("GET", `/projects/${project.id}/iterations/${iterationId}`, { signal: ctx.signal });
      if (!ctx.active()) return;
      drawIteration(project, it, slot);
      if (it.status === "Training") timer = setTimeout(tick, POLL_MS);
      else onFinished(it);
    } catch (error) {
      if (!ctx.active()) return;
      showError(slot, error, "Checking the training");
      timer = setTimeout(tick, POLL_MS * 3);
    }
  };
  tick();
}

function drawIteration(project, it, slot) {
  const progress = it.progress || { stage: "", fraction: 0, attempt: 0 };
  if (it.status === "Training") {
    clear(slot, h("div.card.training", { "aria-busy": "true" },
      h("h2", { text: `Training ${it.name}…` }),
      h("p", {}, h("strong.stage", { text: stageText(progress.stage) }),
        ` · ${Math.round(progress.fraction * 100)}%`,
        progress.attempt > 1 ? h("span.badge.warn", { text: ` attempt ${progress.attempt}` }) : null),
      progressBar(progress.fraction, "Training progress"),
      h("p.hint", { text: `${it.trainingType} training started ${formatDate(it.created)}. ` +
        "You can leave this page; training goes on." })));
  } else if (it.status === "Completed") {
    clear(slot, h("div.card.success", { role: "status" },
      h("h2", { text: `${it.name} is trained` }),
      h("p", { text: `Finished ${formatDate(it.trainedAt)} (${it.trainingType}).` +
        (it.trainingErrorDetails ? ` Note: ${it.trainingErrorDetails}` : "") }),
      h("div.actions.left", {},
        h("a.button.primary", { href: `#/projects/${project.id}/performance/${it.id}`, text: "See performance" }),
        h("a.button", { href: `#/projects/${project.id}/quicktest`, text: "Quick test" }))));
  } else {
    clear(slot, h("div.alert", { role: "alert" },
      h("strong", { text: `${it.name} failed` }),
      h("span", { text: ` — ${it.trainingErrorDetails || "The trainer gave no reason."}` }),
      h("code.code", { text: it.status })));
  }
}

export async function renderTrain(view, ctx) {
  const { project } = ctx;
  view.append(spinner());
  const [tags, iterations, untagged, kind] = await Promise.all([
    training("GET", `/projects/${project.id}/tags`, { signal: ctx.signal }),
    training("GET", `/projects/${project.id}/iterations`, { signal: ctx.signal }),
    training("GET", `/projects/${project.id}/images/untagged/count`, { signal: ctx.signal }),
    projectKind(project, ctx.signal),
  ]);
  const rules = RULES[kind] || RULES.Classification;
  const minImages = rules.perTag;
  const regular = tags.filter((t) => t.type !== "Negative");
  const negativeImages = tags.filter((t) => t.type === "Negative").reduce((n, t) => n + t.imageCount, 0);
  const counted = regular.length + (negativeImages >= minImages ? 1 : 0);
  const short = regular.filter((t) => t.imageCount < minImages);
  const notReady = counted < rules.tags
    ? `Training needs at least ${rules.tags === 1 ? "1 tag" : `${rules.tags} tags`} with ` +
      `${minImages} images or more; this project has ${counted === 1 ? "1" : "none"}.`
    : short.length
      ? `Each tag needs at least ${minImages} images; too few for: ` +
        `${short.map((t) => `${t.name} (${t.imageCount})`).join(", ")}.`
      : null;
  const running = iterations.find((it) => it.status === "Training");
  const latest = iterations.slice().sort((a, b) => b.created.localeCompare(a.created))[0];
  const progress = h("div.train-status");
  const status = h("div");

  const readiness = h("section.card", { "aria-labelledby": "ready-h" },
    h("h2#ready-h", { text: "Your data" }),
    tags.length ? h("table.data", {},
      h("thead", {}, h("tr", {}, h("th", { text: "Tag" }), h("th.num", { text: "Images" }), h("th", { text: "" }))),
      h("tbody", {}, tags.map((t) => h("tr", {},
        h("td", { text: t.name }), h("td.num", { text: String(t.imageCount) }),
        h("td", {}, short.includes(t)
          ? h("span.badge.warn", { text: `needs ${minImages - t.imageCount} more` })
          : h("span.badge.ok", { text: t.type === "Negative" ? "Negative" : "ready" }))))))
      : emptyState("No tags yet", "Add images with at least two tags before training.",
        h("a.button", { href: `#/projects/${project.id}/images`, text: "Go to training images" })),
    untagged ? h("p.hint", {}, `${untagged} untagged images are not used. `,
      h("a", { href: `#/projects/${project.id}/suggested`, text: "Tag them with suggestions" })) : null);

  const budget = h("input", { type: "number", min: "1", max: "24", value: "1", name: "budget" });
  const budgetWhy = disabledReason(budget);
  const force = h("input", { type: "checkbox", name: "force" });
  const radio = (value, label, hint, checked) => h("label.radio", {},
    h("input", { type: "radio", name: "trainingType", value, checked }),
    h("span", {}, h("strong", { text: label }), h("span.hint", { text: ` ${hint}` })));
  const submit = h("button.primary", { type: "submit", text: "Train" });
  const submitWhy = disabledReason(submit);
  const state = { starting: false, running: Boolean(running), unchangedType: null };
  const chosenType = () => form.querySelector("input[name=trainingType]:checked").value;
  // Why Train is disabled, beside it; the API's own answer (nothing changed) is shown the same way.
  const sync = () => {
    const type = chosenType();
    submitWhy.because(
      state.starting ? "Starting the training…"
        : state.running ? "A training is running; wait for it to finish."
          : notReady
            || (state.unchangedType === type && !force.checked
              ? "Nothing changed since the last iteration; tick “Train even if nothing changed” to train again."
              : null));
    budgetWhy.because(type === "Advanced" ? null : "Only Advanced training uses a time budget.");
  };
  const finished = () => { state.running = false; sync(); };
  const form = h("form.card", { "aria-labelledby": "train-h", onsubmit: async (e) => {
    e.preventDefault();
    const type = chosenType();
    state.starting = true;
    sync();
    clear(status);
    try {
      const it = await training("POST", `/projects/${project.id}/train`, { query: {
        trainingType: type, reservedBudgetInHours: type === "Advanced" ? budget.value : undefined,
        forceTrain: force.checked ? "true" : undefined,
      } });
      state.running = true;
      watchIteration(project, it.id, progress, ctx, finished);
    } catch (error) {
      if (error.code === "BadRequestTrainingNotNeeded") state.unchangedType = type;
      else showError(status, error, "Starting the training");
    } finally {
      state.starting = false;
      if (ctx.active()) sync();
    }
  } },
  h("h2#train-h", { text: "Train" }),
  h("fieldset", {}, h("legend", { text: "Training type" }),
    radio("Regular", "Quick training", "a few seconds to minutes: a classifier on frozen features.", true),
    radio("Advanced", "Advanced training", "also fine-tunes the network within a time budget; kept only if it does better.", false)),
  h("div", {}, field("Time budget for Advanced training (hours)", budget), budgetWhy.note),
  h("label.check", {}, force, h("span", { text: "Train even if nothing changed since the last iteration" })),
  status,
  h("div.actions.left", {}, submit, submitWhy.note));

  form.addEventListener("change", sync);
  sync();
  clear(view, h("div.two-col", {}, readiness, form), progress);
  if (running) watchIteration(project, running.id, progress, ctx, finished);
  else if (latest) {
    const summary = h("p.hint", {}, `Latest: ${latest.name}, ${latest.status.toLowerCase()} ` +
      `${formatDate(latest.trainedAt || latest.created)}. `,
    h("a", { href: `#/projects/${project.id}/performance/${latest.id}`, text: "See its performance" }));
    if (latest.status === "Completed") clear(progress, summary);
    else {
      // A failed latest training keeps showing why it failed, not only that it did.
      drawIteration(project, latest, progress);
      progress.append(summary);
    }
  }
}
