// Small DOM helpers shared by the views: element builder, dialogs, toasts, error banners.

/** h("tag.class1.class2", {attrs, on*: handlers}, ...children) */
export function h(spec, attrs = {}, ...children) {
  const [head, ...classes] = spec.split(".");
  const [tag, id] = head.split("#");
  const el = document.createElement(tag || "div");
  if (id) el.id = id;
  if (classes.length) el.className = classes.join(" ");
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === "class") {
      el.className += (el.className ? " " : "") + value;
    } else if (name === "text") {
      el.textContent = textOf(value);
    } else if (name === "style") {
      el.style.cssText = value; // CSSOM, which the Content-Security-Policy allows (attributes it does not)
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (name in el && typeof value !== "string") {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? "" : value);
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(textOf(child)));
  }
}

/** A value as text a person can read: nothing for null, undefined and NaN; objects are
 * refused (a console error, which fails the browser tests) rather than shown as [object Object]. */
function textOf(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "";
  if (typeof value === "object") {
    console.error("Not text:", value);
    return "";
  }
  return String(value);
}

let lastId = 0;
/** An id no other element of the page has. */
export const uniqueId = (prefix = "id") => `${prefix}-${++lastId}`;

/** Add (or remove) `id` in the control's aria-describedby list. */
function describedBy(control, id, on) {
  const ids = new Set((control.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean));
  if (on) ids.add(id); else ids.delete(id);
  if (ids.size) control.setAttribute("aria-describedby", [...ids].join(" "));
  else control.removeAttribute("aria-describedby");
}

/** Visible text beside controls that says why they are disabled (their aria-describedby).
 * because(reason) disables them and shows the reason; because(null) enables them again. */
export function disabledReason(...controls) {
  const note = h("span.why", { id: uniqueId("why"), "aria-live": "polite" });
  const because = (reason) => {
    note.textContent = reason || "";
    note.hidden = !reason;
    for (const control of controls) {
      control.disabled = Boolean(reason);
      describedBy(control, note.id, Boolean(reason));
    }
  };
  because(null);
  return { note, because };
}

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, value);
  append(el, children);
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const percent = (x) => (x === null || x === undefined ? "–" : `${(x * 100).toFixed(1)}%`);

export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  const item = h("div.toast", { class: kind, text: message });
  box.append(item);
  while (box.children.length > 3) box.firstElementChild.remove();
  setTimeout(() => item.remove(), 4000);
}

/** The banner for a failed call: the server's code and message, in an alert region. */
export function errorBanner(error, what) {
  const code = error && error.code ? error.code : "Error";
  const message = error && error.message ? error.message : String(error);
  return h("div.alert", { role: "alert" },
    h("strong", { text: what ? `${what} failed` : "Something went wrong" }),
    h("span", { text: ` — ${message}` }),
    h("code.code", { text: code }));
}

/** Show an error in `slot` (replacing what it held); returns the error for chaining. */
export function showError(slot, error, what) {
  if (error && error.name === "AbortError") return error;
  clear(slot, errorBanner(error, what));
  return error;
}

export function emptyState(title, text, ...actions) {
  return h("div.empty", {}, h("h3", { text: title }), h("p", { text }), actions);
}

export function spinner(text = "Loading…") {
  return h("p.loading", { role: "status" }, h("span.spin", { "aria-hidden": "true" }), text);
}

// Every open dialog, so that leaving a page closes them (app.js calls closeDialogs()).
const openDialogs = new Set();

/** Close every open dialog, as if cancelled; the work each one started is aborted. */
export function closeDialogs() {
  for (const close of [...openDialogs]) close();
}

/** A modal <dialog>: resolves with the value passed to close(value), or null on cancel.
 * build(body, close, signal): `signal` aborts when the dialog closes, however it closes. */
export function dialog(title, build, { wide = false } = {}) {
  return new Promise((resolve) => {
    const body = h("div.dialog-body");
    const controller = new AbortController();
    const close = (value = null) => {
      if (!openDialogs.delete(close)) return; // closed already: the first value stands
      controller.abort();
      el.close();
      el.remove();
      resolve(value);
    };
    const el = h("dialog.dialog", { class: wide ? "wide" : "", "aria-label": title },
      h("div.dialog-head", {},
        h("h2", { text: title }),
        h("button.icon", { type: "button", "aria-label": "Close dialog", text: "×", onclick: () => close() })),
      body);
    el.addEventListener("cancel", (event) => { event.preventDefault(); close(); });
    openDialogs.add(close);
    document.body.append(el);
    build(body, close, controller.signal);
    el.showModal();
    const first = body.querySelector("input, select, textarea, button");
    if (first) first.focus();
  });
}

export function confirmDialog(title, text, confirmLabel = "Delete") {
  return dialog(title, (body, close) => {
    body.append(
      h("p", { text }),
      h("div.actions", {},
        h("button", { type: "button", text: "Cancel", onclick: () => close(false) }),
        h("button.danger", { type: "button", text: confirmLabel, onclick: () => close(true) })));
  }).then((ok) => ok === true);
}

/** A labelled form field. */
export function field(label, control, hint) {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  return h("div.field", {},
    h("label", { for: id, text: label }),
    control,
    hint ? h("p.hint", { text: hint }) : null);
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    toast("Copied to the clipboard.");
  } catch {
    toast("Select the text and copy it with Ctrl+C.", "warn");
  }
}

export function formatDate(value) {
  if (!value) return "–";
  return new Date(value).toLocaleString();
}

export function progressBar(fraction, label) {
  const value = Math.round(Math.max(0, Math.min(1, fraction)) * 100);
  return h("div.progress", {
    role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100",
    "aria-valuenow": String(value), "aria-label": label || "Progress",
  }, h("div.bar", { style: `width: ${value}%` }));
}

const ICONS = {
  edit: "M3 17.25V21h3.75L17.81 9.94l-3.75-3.75L3 17.25zm17.71-10.21a1 1 0 0 0 0-1.41l-2.34-2.34a1 1 0 0 0-1.41 0l-1.83 1.83 3.75 3.75 1.83-1.83z",
  trash: "M9 3h6l1 2h4v2H4V5h4l1-2zM6 9h12l-1 12H7L6 9z",
};

/** A small inline icon (no icon font: the portal works offline). */
export function icon(name) {
  return svg("svg", { viewBox: "0 0 24 24", width: "16", height: "16", "aria-hidden": "true", focusable: "false", class: "svg-icon" },
    svg("path", { d: ICONS[name], fill: "currentColor" }));
}
