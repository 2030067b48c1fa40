// The portal's shell: hash routing, the top navigation and the project tabs.

import { ApiError, keys, training } from "./api.js";
import { clear, closeDialogs, errorBanner, h, spinner } from "./ui.js";
import { renderStart, renderSettings } from "./settings.js";
import { DETECTION, kindLabel, projectKind, renderProjects } from "./projects.js";
import { renderImages } from "./images.js";
import { renderSuggested } from "./suggested.js";
import { renderTrain } from "./train.js";
import { renderPerformance } from "./performance.js";
import { renderQuickTest } from "./quicktest.js";
import { renderPredictions } from "./predictions.js";
import { renderExports } from "./exports.js";
import { renderDatasets } from "./datasets.js";

const TABS = [
  ["images", "Training images", renderImages],
  ["suggested", "Suggested tags", renderSuggested],
  ["train", "Train", renderTrain],
  ["performance", "Performance", renderPerformance],
  ["quicktest", "Quick test", renderQuickTest],
  ["predictions", "Predictions", renderPredictions],
  ["export", "Export", renderExports],
  ["dataset", "Dataset", renderDatasets],
];

let current = null; // {controller, cleanups} of the view on screen

function leaveView() {
  closeDialogs(); // a dialog belongs to the page that opened it (an upload would go to its project)
  if (!current) return;
  current.controller.abort();
  for (const fn of current.cleanups) fn();
  current = null;
}

function navLinks(active) {
  const nav = document.getElementById("main-nav");
  const link = (href, text, name) =>
    h("a", { href, text, "aria-current": active === name ? "page" : false });
  if (!keys.training) {
    clear(nav, link("#/start", "Sign in", "start"));
    return;
  }
  clear(nav,
    link("#/projects", "Projects", "projects"),
    link("#/settings", "Settings", "settings"),
    h("button.link", {
      type: "button", text: "Sign out",
      onclick: () => { keys.clear(); location.hash = "#/start"; },
    }));
}

function projectHeader(project, kind, tab) {
  return h("div.project-head", {},
    h("div.crumbs", {},
      h("a", { href: "#/projects", text: "Projects" }), h("span", { "aria-hidden": "true", text: " / " }),
      h("h1", { text: project.name }),
      kind === DETECTION ? null : h("span.kind", { text: "Classification" }),
      h("span.badge", { text: kindLabel(project, kind) })),
    h("nav.tabs", { "aria-label": "Project" },
      TABS.map(([name, label]) => h("a", {
        href: `#/projects/${project.id}/${name}`, text: label,
        "aria-current": tab === name ? "page" : false,
      }))));
}

async function route() {
  leaveView();
  const controller = new AbortController();
  const view = { controller, cleanups: [] };
  current = view;
  const ctx = {
    signal: controller.signal,
    onLeave: (fn) => view.cleanups.push(fn),
    active: () => current === view,
    stop: () => controller.abort(), // before deleting what the view is still loading
  };
  const main = document.getElementById("main");
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  const [section, projectId, tab, ...rest] = parts;

  if (!keys.training && section !== "start") {
    if (section) sessionStorage.setItem("ocv.next", location.hash);
    location.replace("#/start");
    return;
  }
  navLinks(section === "projects" && !projectId ? "projects" : section);
  window.scrollTo(0, 0);
  try {
    if (section === "start" || !section) {
      if (!section && keys.training) return location.replace("#/projects");
      document.title = "Sign in · Open Custom Vision";
      return await renderStart(clear(main), ctx);
    }
    if (section === "settings") {
      document.title = "Settings · Open Custom Vision";
      return await renderSettings(clear(main), ctx);
    }
    if (section === "projects" && !projectId) {
      document.title = "Projects · Open Custom Vision";
      return await renderProjects(clear(main), ctx);
    }
    if (section === "projects") {
      const entry = TABS.find(([name]) => name === tab);
      if (!entry) return location.replace(`#/projects/${projectId}/images`);
      clear(main, spinner());
      const project = await training("GET", `/projects/${projectId}`, { signal: ctx.signal });
      const kind = await projectKind(project, ctx.signal);
      if (!ctx.active()) return;
      document.title = `${entry[1]} · ${project.name} · Open Custom Vision`;
      const body = h("section.view", { "aria-label": entry[1] });
      clear(main, projectHeader(project, kind, tab), body);
      return await entry[2](body, { ...ctx, project, detection: kind === DETECTION, params: rest });
    }
    clear(main, h("div.empty", {}, h("h1", { text: "Page not found" }),
      h("p", {}, h("a", { href: "#/projects", text: "Go to your projects" }))));
  } catch (error) {
    if (error.name === "AbortError" || !ctx.active()) return;
    if (error instanceof ApiError && error.status === 401) {
      keys.clear();
      sessionStorage.setItem("ocv.notice", error.message);
      location.replace("#/start");
      return;
    }
    clear(main, errorBanner(error, "Loading this page"),
      h("p", {}, h("a", { href: "#/projects", text: "Back to the projects" })));
  }
}

window.addEventListener("hashchange", route);
route();
