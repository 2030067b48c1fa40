// Projects: cards with cover thumbnail and counts; create, edit, delete.

import { training } from "./api.js";
import {
  clear, confirmDialog, dialog, emptyState, field, h, showError, spinner, toast,
} from "./ui.js";

let domainsCache = null;

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
export const DETECTION = "ObjectDetection";
const KINDS = [["Classification", "Classification", "a tag (or tags) for the whole image"],
  [DETECTION, "Object detection", "boxes around the things in the image, each with its tag"]];

export async function domains(signal) {
  if (!domainsCache) domainsCache = await training("GET", "/domains", { signal });
  return domainsCache;
}

/** The project's kind, from its domain: "Classification" or "ObjectDetection". */
export async function projectKind(project, signal) {
  const found = (await domains(signal)).find((d) => d.id === project.settings.domainId);
  return found ? found.type : "Classification";
}

/** What the badge says: the classification type, or Object detection. */
export const kindLabel = (project, kind) =>
  kind === DETECTION ? "Object detection" : project.settings.classificationType;

/** The create/edit form; resolves with the saved project, or null. */
async function projectDialog(project, ctx) {
  const available = await domains();
  if (!ctx.active()) return null; // left the page while the domains loaded
  const title = project ? `Edit ${project.name}` : "New project";
  const currentDomain = project && available.find((d) => d.id === project.settings.domainId);
  return dialog(title, (body, close) => {
    const name = h("input", { name: "name", required: true, maxlength: "256",
      value: project ? project.name : "" });
    const description = h("textarea", { name: "description", rows: "2",
      text: project ? project.description : "" });
    let kind = currentDomain ? currentDomain.type : "Classification";
    const domain = h("select", { name: "domain" });
    const domainHelp = h("p.hint");
    const describe = () => {
      const d = available.find((x) => x.id === domain.value);
      domainHelp.textContent = d ? d.modelInformation.description : "";
    };
    const type = project ? project.settings.classificationType : "Multiclass";
    const radio = (group, value, label, hint, checked) => h("label.radio", {},
      h("input", { type: "radio", name: group, value, checked }),
      h("span", {}, h("strong", { text: label }), h("span.hint", { text: ` ${hint}` })));
    const classification = h("fieldset", {}, h("legend", { text: "Classification type" }),
      radio("classificationType", "Multiclass", "Multiclass", "one tag per image", type === "Multiclass"),
      radio("classificationType", "Multilabel", "Multilabel", "any number of tags per image", type === "Multilabel"));
    // The domains of the chosen kind only: two are called "General", one of each kind.
    const showKind = () => {
      const keep = domain.value;
      const choices = available.filter((d) => d.type === kind);
      const selected = choices.find((d) => d.id === (project ? project.settings.domainId : keep)) || choices[0];
      clear(domain, choices.map((d) => h("option", { value: d.id, text: d.name, selected: d === selected })));
      classification.hidden = kind === DETECTION;
      describe();
    };
    domain.addEventListener("change", describe);
    // A project keeps its kind (the API refuses a change), so editing shows it without a choice.
    const kindChoice = project
      ? h("p.kind-fixed", {}, h("strong", { text: "Project type: " }),
        KINDS.find(([value]) => value === kind)[1], h("span.hint", { text: " (a project keeps its type)" }))
      : h("fieldset", { onchange: (e) => { kind = e.target.value; showKind(); } },
        h("legend", { text: "Project type" }),
        KINDS.map(([value, label, hint]) => radio("projectType", value, label, hint, value === kind)));
    showKind();
    const status = h("div.form-status");
    const form = h("form", {
      onsubmit: async (event) => {
        event.preventDefault();
        const classificationType = kind === DETECTION ? undefined
          : form.querySelector("input[name=classificationType]:checked").value;
        try {
          const saved = project
            ? await training("PATCH", `/projects/${project.id}`, { json: {
              name: name.value.trim(), description: description.value,
              settings: { domainId: domain.value, classificationType },
            } })
            : await training("POST", "/projects", { query: {
              name: name.value.trim(), description: description.value,
              domainId: domain.value, classificationType,
            } });
          close(saved);
        } catch (error) {
          showError(status, error, project ? "Saving the project" : "Creating the project");
        }
      },
    },
    field("Name", name),
    field("Description", description),
    kindChoice,
    classification,
    field("Domain", domain),
    domainHelp,
    status,
    h("div.actions", {},
      h("button", { type: "button", text: "Cancel", onclick: () => close() }),
      h("button.primary", { type: "submit", text: project ? "Save" : "Create project" })));
    body.append(form);
  });
}

function projectCard(project, kind, counts, refresh, ctx) {
  const cover = project.thumbnailUri
    ? h("img.cover", { src: project.thumbnailUri, alt: "", loading: "lazy" })
    : h("div.cover.placeholder", { "aria-hidden": "true", text: project.name.slice(0, 1).toUpperCase() });
  const edit = async () => {
    const saved = await projectDialog(project, ctx);
    if (saved) { toast(`Saved ${saved.name}.`); refresh(); }
  };
  const remove = async () => {
    const ok = await confirmDialog(`Delete ${project.name}?`,
      "The project, its images, tags, iterations and stored predictions are deleted for good.");
    if (!ok) return;
    try {
      await training("DELETE", `/projects/${project.id}`);
      toast(`Deleted ${project.name}.`);
      refresh();
    } catch (error) {
      toast(`Deleting failed: ${error.message}`, "error");
    }
  };
  return h("article.project-card", { "aria-label": project.name },
    h("a.cover-link", { href: `#/projects/${project.id}/images`, tabindex: "-1", "aria-hidden": "true" }, cover),
    h("div.project-body", {},
      h("h2", {}, h("a", { href: `#/projects/${project.id}/images`, text: project.name })),
      project.description ? h("p.description", { text: project.description }) : null,
      h("p.meta", {},
        h("span.badge", { text: kindLabel(project, kind) }),
        h("span.count", { text: counts ? `${plural(counts.images, "image")} · ${plural(counts.tags, "tag")}` : "" }))),
    h("div.card-actions", {},
      h("button.small", { type: "button", text: "Edit", "aria-label": `Edit ${project.name}`, onclick: edit }),
      h("button.small.danger-outline", { type: "button", text: "Delete",
        "aria-label": `Delete ${project.name}`, onclick: remove })));
}

export async function renderProjects(main, ctx) {
  const list = h("div.project-grid", { "aria-live": "polite" }, spinner());
  const status = h("div");
  const refresh = () => load();
  const create = async () => {
    try {
      const saved = await projectDialog(null, ctx);
      if (saved) location.hash = `#/projects/${saved.id}/images`;
    } catch (error) {
      showError(status, error, "Loading the domains");
    }
  };
  main.append(
    h("div.page-head", {}, h("h1", { text: "Projects" }),
      h("button.primary", { type: "button", text: "New project", onclick: create })),
    status, list);

  async function load() {
    try {
      // One request: each project with its image and tag counts (the portal's own listing).
      const [projects, known] = await Promise.all([
        training("GET", "/portal/projects", { signal: ctx.signal }), domains(ctx.signal)]);
      const kindOf = (p) => (known.find((d) => d.id === p.settings.domainId) || {}).type;
      if (!projects.length) {
        clear(list, emptyState("No projects yet",
          "Create a project, upload a few photos of each thing to recognise, tag them and train.",
          h("button.primary", { type: "button", text: "Create your first project", onclick: create })));
        return;
      }
      projects.sort((a, b) => b.created.localeCompare(a.created));
      clear(list, projects.map((p) =>
        projectCard(p, kindOf(p), { images: p.imageCount, tags: p.tagCount }, refresh, ctx)));
    } catch (error) {
      showError(list, error, "Loading the projects");
    }
  }
  await load();
}
