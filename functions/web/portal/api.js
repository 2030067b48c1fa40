// The portal's only way to the server: the public Training and Prediction REST APIs.

export const TRAINING = "/customvision/v3.3/training";
export const PREDICTION = "/customvision/v3.1/prediction";
const STORE = { training: "ocv.trainingKey", prediction: "ocv.predictionKey" };

export const keys = {
  get training() { return sessionStorage.getItem(STORE.training) || ""; },
  get prediction() { return sessionStorage.getItem(STORE.prediction) || ""; },
  set(training, prediction) {
    sessionStorage.setItem(STORE.training, training);
    if (prediction) sessionStorage.setItem(STORE.prediction, prediction);
    else sessionStorage.removeItem(STORE.prediction);
  },
  clear() {
    sessionStorage.removeItem(STORE.training);
    sessionStorage.removeItem(STORE.prediction);
  },
};

/** A failed call: the server's {code, message}, or a network failure. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function url(base, path, query) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query || {})) {
    if (value === undefined || value === null || value === "") continue;
    params.set(name, Array.isArray(value) ? value.join(",") : String(value));
  }
  const text = params.toString();
  return base + path + (text ? "?" + text : "");
}

async function call(base, header, key, method, path, { query, json, form, raw, signal } = {}) {
  const headers = { [header]: key };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = form;
  } else if (raw) {
    headers["Content-Type"] = "application/octet-stream";
    body = raw;
  }
  let response;
  try {
    response = await fetch(url(base, path, query), { method, headers, body, signal });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "NetworkError", "The server could not be reached: " + error.message);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  if (!response.ok) {
    const code = (data && data.code) || `HTTP${response.status}`;
    const message = (data && data.message) || response.statusText || "The request failed.";
    throw new ApiError(response.status, code, message);
  }
  return data;
}

/** Training API: training(method, path, {query, json, form}). */
export function training(method, path, options) {
  return call(TRAINING, "Training-Key", keys.training, method, path, options);
}

/** Prediction API: prediction(method, path, {query, json, raw}). */
export function prediction(method, path, options) {
  return call(PREDICTION, "Prediction-Key", keys.prediction, method, path, options);
}

/** Split a list into chunks of `size` (the API's batch limits). */
export function chunks(items, size) {
  const out = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Object detection: create regions (64 per call), delete them, ask for proposals. */
export const regions = {
  create: (projectId, entries, signal) =>
    training("POST", `/projects/${projectId}/images/regions`, { json: { regions: entries }, signal }),
  remove: (projectId, regionIds, signal) =>
    training("DELETE", `/projects/${projectId}/images/regions`, { query: { regionIds }, signal }),
  proposals: (projectId, imageId, signal) =>
    training("POST", `/projects/${projectId}/images/${imageId}/regionproposals`, { signal }),
};
