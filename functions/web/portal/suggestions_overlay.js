// The smart labeler inside the labeler: for a photo without boxes, the latest trained iteration's
// suggested boxes (tagsandregions/suggestions), dashed, with tag and probability, at or above a
// threshold. The labeler accepts one (a region with its tag) or rejects it (it hides).

import { training } from "./api.js";
import { boxesAbove, percentSlider } from "./detections.js";
import { boxStyle, tagColour } from "./labeler.js";
import { clear, h, percent } from "./ui.js";

/** Suggestions for the labeler's photos. `onChange()` when what to draw changed, `onError(error)`
 * when asking failed, `onAccept(n)` / `onReject(n)` for the buttons of suggestion `n`. */
export function suggestionsOverlay(project, tags, signal, { onChange, onError, onAccept, onReject }) {
  let iteration; // the latest completed iteration: undefined until asked, null when there is none
  let wanted = null; // the image whose suggestions are awaited or shown
  let current = []; // that image's suggestions still open: {n, tagId, tagName, probability, boundingBox}
  const remaining = new Map(); // image id -> its suggestions still open: stepping back keeps a rejection
  const slider = percentSlider("Suggestions at least", { value: 50, onInput: () => { drawList(); onChange(); } });
  const list = h("div.suggestion-list", { "aria-live": "polite" });
  const panel = h("section.suggestions-panel", { "aria-label": "Suggested boxes", hidden: true },
    h("h3", { text: "Suggested boxes" }), slider.element, list,
    h("p.hint", { text: "Click a dashed box (or A) to accept it, with its tag; × (or X) rejects it. " +
      "An accepted box is a box like any other: move, resize or delete it." }));

  async function latestIteration() {
    if (iteration === undefined) {
      const all = await training("GET", `/projects/${project.id}/iterations`, { signal });
      const done = all.filter((i) => i.status === "Completed").sort((a, b) => b.created.localeCompare(a.created));
      iteration = done[0] || null;
    }
    return iteration;
  }

  /** The suggestions for `image` when it has no box yet (none otherwise). */
  async function load(image) {
    wanted = image.id;
    current = remaining.get(image.id) || [];
    drawList();
    if (remaining.has(image.id)) return;
    if (image.regions.length) return;
    try {
      const it = await latestIteration();
      if (!it || wanted !== image.id) return;
      const [answer] = await training("POST", `/projects/${project.id}/tagsandregions/suggestions`,
        { query: { iterationId: it.id, imageIds: [image.id] }, signal });
      if (wanted !== image.id) return; // the labeler moved on meanwhile
      current = (answer ? answer.predictions : []).filter((p) => p.boundingBox).map((p, n) => ({ ...p, n }));
      remaining.set(image.id, current);
      panel.querySelector("h3").textContent = `Suggested boxes (${it.name})`;
      drawList();
      onChange();
    } catch (error) {
      if (error.name !== "AbortError") onError(error);
    }
  }

  const shown = () => boxesAbove(current, slider.value());
  const get = (n) => current.find((s) => s.n === n);
  const drop = (n) => {
    current = current.filter((s) => s.n !== n);
    remaining.set(wanted, current);
    drawList();
  };

  function drawList() {
    panel.hidden = !current.length;
    const open = shown();
    const label = (s) => `${s.tagName} ${percent(s.probability)}`;
    clear(list, open.length
      ? h("ul.box-list.suggested", {}, open.map((s) => h("li", {},
        h("span.swatch", { style: `background: ${tagColour(s.tagId, tags)}` }),
        h("span.score-name", { text: label(s) }),
        h("button.small", { type: "button", text: "Accept", "aria-label": `Accept ${label(s)}`, onclick: () => onAccept(s.n) }),
        h("button.small", { type: "button", text: "×", "aria-label": `Reject ${label(s)}`, onclick: () => onReject(s.n) }))))
      : h("p.hint", { text: `No suggestion at ${percent(slider.value())} or more.` }));
  }

  /** The dashed boxes on the stage; the smaller on top, so that one inside another can be clicked. */
  function boxes() {
    const area = (s) => s.boundingBox.width * s.boundingBox.height;
    return shown().sort((a, b) => area(b) - area(a)).map((s) => h("div.box.suggestion", {
      dataset: { suggestion: String(s.n) }, title: `Suggested ${s.tagName} (${percent(s.probability)}): click to accept it`,
      style: boxStyle(s.boundingBox) + `--box: ${tagColour(s.tagId, tags)};`,
    },
    h("span.box-label", { text: `${s.tagName} ${percent(s.probability)}` }),
    h("span.suggestion-reject", { dataset: { reject: String(s.n) }, title: "Reject this suggestion", "aria-hidden": "true", text: "×" })));
  }

  return { panel, load, boxes, get, drop, top: () => shown()[0] || null };
}
