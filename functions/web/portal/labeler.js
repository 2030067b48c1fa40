// The labelling view of an object-detection project: one photo with its boxes (regions); draw,
// move, resize and delete boxes, zoom, region proposals, the trained model's suggested boxes
// (suggestions_overlay.js), and stepping from image to image.

import { regions as regionApi, training } from "./api.js";
import { clear, dialog, disabledReason, h, showError, toast, uniqueId } from "./ui.js";
import { ensureTags } from "./images.js";
import { suggestionsOverlay } from "./suggestions_overlay.js";

const MIN_DRAG_PX = 4; // a shorter drag is a click, not a box
const ZOOM_STEP = 1.25;
const MAX_ZOOM = 8;
const HANDLES = ["nw", "n", "ne", "e", "se", "s", "sw", "w"];
const clamp = (x, low, high) => Math.min(high, Math.max(low, x));
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "es"}`;

// Distinct colours for the first tags (by name), then again from the start.
const PALETTE = ["#e6194b", "#1d5fd1", "#f58231", "#0f9d58", "#911eb4", "#c98700", "#0891b2", "#d6336c", "#5f6b7a", "#6b8e23"];

/** A tag's colour, the same wherever its boxes are drawn (the grid too). */
export function tagColour(tagId, tags) {
  const at = tags.findIndex((t) => t.id === tagId);
  return PALETTE[Math.max(0, at) % PALETTE.length];
}

/** Position style of a box given in fractions of the photo. */
export const boxStyle = (b) =>
  `left: ${b.left * 100}%; top: ${b.top * 100}%; width: ${b.width * 100}%; height: ${b.height * 100}%;`;

/** A detection image's thumbnail with its boxes over it (boxes are fractions of the photo). */
export function thumbnailWithBoxes(image, tags) {
  const shape = `aspect-ratio: ${image.width} / ${image.height}; ${image.width >= image.height ? "width" : "height"}: 100%;`;
  return h("span.thumb-frame", {}, h("span.thumb-photo", { style: shape },
    h("img", { src: image.thumbnailUri, alt: "", loading: "lazy" }),
    image.regions.map((r) => h("span.thumb-box", { style: boxStyle(r) + `--box: ${tagColour(r.tagId, tags)};` }))));
}

/** Edges (fractions) of a box moved or resized by `dx`, `dy` through handle `grip` ("move" moves). */
function dragged(box, grip, dx, dy) {
  if (grip === "move") {
    return { ...box, left: clamp(box.left + dx, 0, 1 - box.width), top: clamp(box.top + dy, 0, 1 - box.height) };
  }
  let [l, t, r, b] = [box.left, box.top, box.left + box.width, box.top + box.height];
  if (grip.includes("w")) l = clamp(l + dx, 0, 1);
  if (grip.includes("e")) r = clamp(r + dx, 0, 1);
  if (grip.includes("n")) t = clamp(t + dy, 0, 1);
  if (grip.includes("s")) b = clamp(b + dy, 0, 1);
  return { ...box, left: Math.min(l, r), top: Math.min(t, b), width: Math.abs(r - l), height: Math.abs(b - t) };
}

/** Open the labeler on images[index]; resolves with true when a region changed. `tags` is the
 * project's tag list, kept up to date here (new tags are pushed onto it). */
export function labelImages(project, tags, images, index) {
  return dialog("Label image", (body, close, signal) => {
    body.parentElement.classList.add("labeler-dialog");
    const list = [...images];
    let image = list[index];
    let selected = null; // regionId
    let pending = null; // a box waiting for its tag
    let proposals = null; // shown proposals, or null
    let zoom = 1;
    let busy = false;
    let changed = false;
    let lastTagId = null;

    const photo = h("img.labeler-photo", { alt: "", draggable: false });
    const stage = h("div.stage", { onpointerdown: startPointer });
    const canvas = h("div.labeler-canvas", {}, stage);
    const position = h("span.position", { id: uniqueId("pos") });
    const turn = (text, label, onclick) => h("button.small", { type: "button", text, "aria-label": label, onclick });
    const prev = turn("←", "Previous image", () => step(-1));
    const next = turn("→", "Next image", () => step(1));
    const nextUntagged = h("button.small", { type: "button", text: "Next untagged", title: "N", onclick: () => stepUntagged() });
    const zoomText = h("output.zoom", { "aria-live": "polite" });
    const proposeButton = h("button.small", { type: "button", title: "P", onclick: () => toggleProposals() });
    const removeButton = h("button.small.danger-outline", { type: "button", text: "Delete box", onclick: () => removeSelected() });
    const removeWhy = disabledReason(removeButton);
    const status = h("div.labeler-status", { "aria-live": "polite" });
    const suggestions = suggestionsOverlay(project, tags, signal, {
      onChange: () => drawStage(), onError: (error) => showError(status, error, "Getting suggestions"),
      onAccept: (n) => acceptSuggestion(n), onReject: (n) => rejectSuggestion(n),
    });
    const sideBody = h("div");
    const side = h("aside.labeler-side", { "aria-label": "Boxes" }, suggestions.panel, sideBody);
    body.append(h("div.labeler", {},
      h("div.labeler-bar", { role: "toolbar", "aria-label": "Labeler" },
        h("span.group", {}, prev, position, next, nextUntagged),
        h("span.group", {},
          h("button.small", { type: "button", text: "−", "aria-label": "Zoom out", onclick: () => zoomBy(1 / ZOOM_STEP) }),
          zoomText,
          h("button.small", { type: "button", text: "+", "aria-label": "Zoom in", onclick: () => zoomBy(ZOOM_STEP) }),
          h("button.small", { type: "button", text: "Fit", onclick: () => zoomTo(1) })),
        h("span.group", {}, proposeButton, removeButton, removeWhy.note),
        h("button.small.primary", { type: "button", text: "Done", onclick: () => close(changed) })),
      status,
      h("div.labeler-main", {}, canvas, side)));

    // The stage is the photo's displayed size: boxes are placed in percent of it, so zooming
    // and scrolling never move a box off its pixels.
    const layout = () => {
      const fit = Math.min((canvas.clientWidth - 16) / image.width, (canvas.clientHeight - 16) / image.height);
      stage.style.width = `${Math.max(1, image.width * fit * zoom)}px`;
      stage.style.height = `${Math.max(1, image.height * fit * zoom)}px`;
      zoomText.textContent = `${Math.round(zoom * 100)}%`;
    };
    const observer = new ResizeObserver(layout);
    observer.observe(canvas);
    signal.addEventListener("abort", () => observer.disconnect());

    function zoomTo(value, clientX, clientY) {
      const before = stage.getBoundingClientRect();
      const area = canvas.getBoundingClientRect();
      const x = clientX === undefined ? area.left + area.width / 2 : clientX;
      const y = clientY === undefined ? area.top + area.height / 2 : clientY;
      const fx = (x - before.left) / before.width;
      const fy = (y - before.top) / before.height;
      zoom = clamp(value, 1, MAX_ZOOM);
      layout();
      // Keep the point under the cursor (or the middle) where it was.
      const after = stage.getBoundingClientRect();
      canvas.scrollLeft += after.left + fx * after.width - x;
      canvas.scrollTop += after.top + fy * after.height - y;
    }
    const zoomBy = (factor, x, y) => zoomTo(zoom * factor, x, y);
    canvas.addEventListener("wheel", (e) => {
      if (!e.ctrlKey && !e.metaKey) return;
      e.preventDefault();
      zoomBy(e.deltaY < 0 ? ZOOM_STEP : 1 / ZOOM_STEP, e.clientX, e.clientY);
    }, { passive: false, signal });

    /** The pointer's place on the photo, in fractions of its width and height. */
    function at(event) {
      const r = stage.getBoundingClientRect();
      return { x: clamp((event.clientX - r.left) / r.width, 0, 1), y: clamp((event.clientY - r.top) / r.height, 0, 1) };
    }

    function startPointer(event) {
      if (busy || event.button !== 0) return;
      event.preventDefault();
      const start = at(event);
      const r = stage.getBoundingClientRect();
      const target = event.target.closest("[data-handle], [data-region-id], [data-proposal], [data-suggestion]");
      if (event.target.dataset.reject !== undefined) return rejectSuggestion(Number(event.target.dataset.reject));
      const moved = (e) => Math.hypot(e.clientX - event.clientX, e.clientY - event.clientY) >= MIN_DRAG_PX;
      let onMove;
      let onUp;
      const proposal = target && target.dataset.proposal !== undefined;
      const suggested = target && target.dataset.suggestion !== undefined;
      if (proposal || suggested || !target) { // a drag draws a box; a click on a proposal or suggestion accepts it
        const band = h("div.box.drawing");
        let shape = null;
        onMove = (e) => {
          if (!moved(e)) return;
          const p = at(e);
          shape = { left: Math.min(start.x, p.x), top: Math.min(start.y, p.y),
            width: Math.abs(p.x - start.x), height: Math.abs(p.y - start.y) };
          band.style.cssText = boxStyle(shape);
          if (!band.isConnected) stage.append(band);
        };
        onUp = () => {
          band.remove();
          if (shape && shape.width * r.width >= MIN_DRAG_PX && shape.height * r.height >= MIN_DRAG_PX) ask(shape);
          else if (proposal) ask(proposals[Number(target.dataset.proposal)].boundingBox);
          else if (suggested) acceptSuggestion(Number(target.dataset.suggestion));
          else { selected = null; pending = null; draw(); }
        };
      } else {
        const regionId = target.dataset.regionId || target.closest("[data-region-id]").dataset.regionId;
        const box = image.regions.find((b) => b.regionId === regionId);
        const grip = target.dataset.handle || "move";
        selected = regionId;
        pending = null;
        draw();
        const el = stage.querySelector(`[data-region-id="${regionId}"]`);
        let shape = box;
        onMove = (e) => {
          if (!moved(e)) return;
          const p = at(e);
          shape = dragged(box, grip, p.x - start.x, p.y - start.y);
          el.style.cssText = boxStyle(shape) + `--box: ${tagColour(box.tagId, tags)};`;
        };
        onUp = (e) => {
          if (moved(e) && shape.width * r.width >= 1 && shape.height * r.height >= 1) replace(box, shape);
          else draw();
        };
      }
      const up = (e) => {
        window.removeEventListener("pointermove", move);
        window.removeEventListener("pointerup", up);
        onUp(e);
      };
      const move = (e) => onMove && onMove(e);
      window.addEventListener("pointermove", move, { signal });
      window.addEventListener("pointerup", up, { signal });
    }

    /** A new box (drawn, or an accepted proposal) waits for its tag in the side panel. */
    function ask(box) {
      const { left, top, width, height } = box;
      pending = { left, top, width, height };
      selected = null;
      draw();
    }

    /** Run one change through the API; the view shows the answer, or the error. */
    async function save(what, work) {
      busy = true;
      clear(status, h("p.hint", { text: "Saving…" }));
      try {
        await work();
        changed = true;
        clear(status);
      } catch (error) {
        if (error.name !== "AbortError") showError(status, error, what);
      } finally {
        busy = false;
        if (!signal.aborted) draw();
      }
    }

    async function createRegion(box, tagId) {
      const { left, top, width, height } = box;
      const answer = await regionApi.create(project.id, [{ imageId: image.id, tagId, left, top, width, height }], signal);
      if (!answer.created.length) {
        throw Object.assign(new Error(answer.duplicated.length
          ? "The image has this box with this tag already." : "The image has as many boxes as it can hold."),
        { code: answer.duplicated.length ? "Duplicated" : "Exceeded" });
      }
      const made = answer.created[0];
      return { regionId: made.regionId, tagId: made.tagId, tagName: made.tagName, created: made.created,
        left: made.left, top: made.top, width: made.width, height: made.height };
    }

    function tagPending(tagId) {
      const box = pending;
      return save("Saving the box", async () => {
        const region = await createRegion(box, tagId);
        image.regions = [...image.regions, region];
        pending = null;
        selected = region.regionId;
        lastTagId = tagId;
        const same = (p) => ["left", "top", "width", "height"].every((k) => p.boundingBox[k] === box[k]);
        if (proposals) proposals = proposals.filter((p) => !same(p));
      });
    }

    /** A suggested box becomes a region with its tag (selected: it can be adjusted at once). */
    function acceptSuggestion(n) {
      const suggestion = suggestions.get(n);
      if (!suggestion || busy) return;
      pending = null;
      save("Saving the suggested box", async () => {
        const region = await createRegion(suggestion.boundingBox, suggestion.tagId);
        image.regions = [...image.regions, region];
        selected = region.regionId;
        lastTagId = suggestion.tagId;
        suggestions.drop(n);
      });
    }
    const rejectSuggestion = (n) => { suggestions.drop(n); drawStage(); };
    const topSuggestion = (act) => () => {
      const top = suggestions.top();
      if (top) act(top.n);
    };

    // The API has no region update: a moved or resized box is a new region, then the old one goes.
    const replace = (old, shape) => save("Saving the box", async () => {
      const region = await createRegion(shape, old.tagId);
      image.regions = image.regions.map((b) => (b.regionId === old.regionId ? region : b));
      selected = region.regionId;
      try {
        await regionApi.remove(project.id, [old.regionId], signal);
      } catch (error) { // both are stored now: show both, as the API has them
        image.regions = [...image.regions, old];
        throw error;
      }
    });

    const removeSelected = () => {
      const regionId = selected;
      if (!regionId || busy) return;
      save("Deleting the box", async () => {
        await regionApi.remove(project.id, [regionId], signal);
        image.regions = image.regions.filter((b) => b.regionId !== regionId);
        selected = null;
      });
    };

    async function toggleProposals() {
      if (proposals) { proposals = null; draw(); return; }
      proposeButton.textContent = "Finding proposals…";
      try {
        const answer = await regionApi.proposals(project.id, image.id, signal);
        // Smaller on top, so that a box inside a bigger one can be clicked.
        const area = (p) => p.boundingBox.width * p.boundingBox.height;
        proposals = answer.proposals.sort((a, b) => area(b) - area(a));
        if (!proposals.length) toast("No proposals for this image.");
      } catch (error) {
        if (error.name !== "AbortError") showError(status, error, "Finding proposals");
      }
      if (!signal.aborted) draw();
    }

    function show(i) {
      index = i;
      image = list[i];
      selected = null;
      pending = null;
      proposals = null;
      zoom = 1;
      clear(status);
      suggestions.load(image);
      photo.src = image.resizedImageUri;
      stage.dataset.imageId = image.id;
      layout();
      draw();
    }
    const step = (delta) => {
      if (!busy && list[index + delta]) show(index + delta);
    };
    async function stepUntagged() {
      if (busy) return;
      const later = list.findIndex((img, i) => i > index && !img.regions.length);
      if (later >= 0) return show(later);
      try { // past the images the grid had loaded: ask the API
        const untagged = await training("GET", `/projects/${project.id}/images/untagged`, { query: { take: 2 }, signal });
        const found = untagged.find((img) => img.id !== image.id);
        if (!found) { clear(status, h("p.hint", { text: "Every image has boxes: none is untagged." })); return; }
        const known = list.findIndex((img) => img.id === found.id);
        if (known >= 0) return show(known);
        list.push(found);
        show(list.length - 1);
      } catch (error) {
        if (error.name !== "AbortError") showError(status, error, "Finding an untagged image");
      }
    }

    function boxElement(box) {
      const picked = box.regionId === selected;
      return h("div.box", { class: picked ? "selected" : "", dataset: { regionId: box.regionId },
        style: boxStyle(box) + `--box: ${tagColour(box.tagId, tags)};`, title: box.tagName },
      h("span.box-label", { text: box.tagName }),
      picked ? HANDLES.map((grip) => h("span.handle", { dataset: { handle: grip } })) : null);
    }

    function draw() {
      position.textContent = `Image ${index + 1} of ${list.length}`;
      prev.disabled = index === 0;
      next.disabled = index === list.length - 1;
      for (const b of [prev, next]) b.setAttribute("aria-describedby", position.id);
      proposeButton.textContent = proposals ? "Hide proposals" : "Show proposals";
      removeWhy.because(selected ? null : "Select a box to delete it.");
      drawStage();
      drawSide();
    }

    function drawStage() {
      photo.alt = image.regions.length ? `Boxes: ${image.regions.map((b) => b.tagName).join(", ")}` : "Image without boxes";
      clear(stage, photo,
        (proposals || []).map((p, i) => h("div.box.proposal", { dataset: { proposal: String(i) },
          style: boxStyle(p.boundingBox), title: `Proposal (${Math.round(p.confidence * 100)}%): click to add it` })),
        suggestions.boxes(),
        image.regions.map(boxElement),
        pending ? h("div.box.pending", { style: boxStyle(pending) }) : null);
    }

    function drawSide() {
      const boxes = h("ul.box-list", {}, image.regions.map((b) => h("li", { class: b.regionId === selected ? "selected" : "" },
        h("span.swatch", { style: `background: ${tagColour(b.tagId, tags)}` }),
        h("button.link-button", { type: "button", text: b.tagName, "aria-label": `Select box ${b.tagName}`,
          onclick: () => { selected = b.regionId; pending = null; draw(); } }))));
      clear(sideBody,
        pending ? picker() : null,
        h("h3", { text: image.regions.length ? plural(image.regions.length, "box") : "No boxes yet" }),
        image.regions.length ? boxes : h("p.hint", { text: "Drag on the photo to draw a box around a thing." }),
        h("p.hint.key-help", { text: "Keys: N next untagged · ←/→ or [/] previous/next · P proposals · " +
          "A / X accept / reject the most probable suggestion · " +
          "Delete removes the selected box · +/− zoom (or Ctrl+wheel) · Esc closes" }));
      const input = sideBody.querySelector(".picker input");
      if (input) { input.focus(); input.select(); }
    }

    function picker() {
      const last = tags.find((t) => t.id === lastTagId);
      const name = h("input", { name: "regionTag", "aria-label": "Tag name", placeholder: "Tag name",
        autocomplete: "off", value: last ? last.name : "" });
      const choices = h("div.tag-choices");
      // Every tag until the user types: the name filled in is only the one used last.
      const showChoices = (event) => {
        const typed = event ? name.value.trim().toLowerCase() : "";
        clear(choices, tags.filter((t) => t.type !== "Negative" && (!typed || t.id === lastTagId || t.name.toLowerCase().includes(typed)))
          .map((t) => h("button.chip-toggle", { type: "button", text: t.name, "aria-pressed": String(t.id === lastTagId),
            onclick: () => tagPending(t.id) })));
      };
      name.addEventListener("input", showChoices);
      showChoices();
      const pickStatus = h("div");
      return h("form.picker", { "aria-label": "Tag for the new box", onsubmit: async (e) => {
        e.preventDefault();
        const typed = name.value.trim();
        if (!typed || busy) return;
        try {
          const [tagId] = await ensureTags(project.id, tags, [typed], signal);
          await tagPending(tagId);
        } catch (error) {
          if (error.name !== "AbortError") showError(pickStatus, error, "Creating the tag");
        }
      } },
      h("h3", { text: "Tag for the new box" }),
      name, choices, pickStatus,
      h("div.actions", {},
        h("button.small", { type: "button", text: "Cancel", onclick: () => { pending = null; draw(); } }),
        h("button.small.primary", { type: "submit", text: "Save box" })));
    }

    document.addEventListener("keydown", (e) => {
      const typing = e.target.closest && e.target.closest("input, select, textarea");
      if (e.key === "Escape" && pending) { // cancels the box first; the next Escape closes
        e.preventDefault();
        pending = null;
        draw();
        return;
      }
      if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
      const keys = {
        Delete: removeSelected, Backspace: removeSelected,
        n: stepUntagged, N: stepUntagged, p: toggleProposals, P: toggleProposals,
        a: topSuggestion(acceptSuggestion), A: topSuggestion(acceptSuggestion),
        x: topSuggestion(rejectSuggestion), X: topSuggestion(rejectSuggestion),
        ArrowRight: () => step(1), "]": () => step(1), ArrowLeft: () => step(-1), "[": () => step(-1),
        "+": () => zoomBy(ZOOM_STEP), "=": () => zoomBy(ZOOM_STEP), "-": () => zoomBy(1 / ZOOM_STEP), 0: () => zoomTo(1),
      };
      if (!keys[e.key]) return;
      e.preventDefault();
      keys[e.key]();
    }, { signal });

    show(index);
  }, { wide: true });
}
