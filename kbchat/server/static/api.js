// The REST client: JSON requests, the server's error shape, API keys, and SSE over fetch.

const KEY_STORAGE = "kbchat.apiKey";

/** An error the server reported ({"error": {"type", "message"}}) or a network failure. */
export class ApiError extends Error {
  constructor(status, type, message) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

let askForKey = async () => null;
const keyListeners = new Set();

/** Register the function that asks the user for an API key (returns the key, or null if cancelled). */
export function setKeyPrompt(fn) {
  askForKey = fn;
}

/** Be told when the stored API key changes. */
export function onKeyChange(fn) {
  keyListeners.add(fn);
}

export function apiKey() {
  return localStorage.getItem(KEY_STORAGE);
}

export function setApiKey(key) {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
  keyListeners.forEach((fn) => fn(key));
}

function headers(extra = {}) {
  const result = { ...extra };
  const key = apiKey();
  if (key) result.Authorization = `Bearer ${key}`;
  return result;
}

/** Turn a non-2xx response into an ApiError carrying the server's own message. */
export async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const error = body && body.error;
  if (error && typeof error === "object") {
    return new ApiError(response.status, error.type || "Error", error.message || response.statusText);
  }
  if (body && body.detail) {
    const detail = Array.isArray(body.detail)
      ? body.detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ")
      : String(body.detail);
    return new ApiError(response.status, "Error", detail);
  }
  return new ApiError(response.status, "HTTPError", `${response.status} ${response.statusText}`.trim());
}

/**
 * fetch() with the API key; on 401 asks for a key and retries until the user cancels.
 * Returns the Response when its status is 2xx, throws ApiError otherwise.
 */
export async function send(path, { method = "GET", json, body, signal, accept } = {}) {
  for (;;) {
    const extra = {};
    if (json !== undefined) extra["Content-Type"] = "application/json";
    if (accept) extra.Accept = accept;
    let response;
    try {
      response = await fetch(path, {
        method,
        headers: headers(extra),
        body: json !== undefined ? JSON.stringify(json) : body,
        signal,
      });
    } catch (exc) {
      if (exc.name === "AbortError") throw exc;
      throw new ApiError(0, "NetworkError", exc.message || String(exc));
    }
    if (response.ok) return response;
    const error = await errorFrom(response);
    if (response.status !== 401) throw error;
    const key = await askForKey(apiKey() ? error.message : null);
    if (!key) throw error;
    setApiKey(key);
  }
}

/** A JSON request; returns the parsed body (null for 204). */
export async function api(path, options = {}) {
  const response = await send(path, options);
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

/**
 * Read a text/event-stream response, calling onEvent(name, data) for every event.
 * `data` is parsed as JSON when it is JSON. Resolves when the stream ends.
 * The comment lines `: queued position=N eta_s=S` of a request waiting for the model
 * become onEvent("queued", {position, eta_s}); position 0: its turn has come.
 */
export async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let name = "message";
  let data = [];
  const dispatch = () => {
    if (data.length) {
      const raw = data.join("\n");
      let parsed = raw;
      try {
        parsed = JSON.parse(raw);
      } catch {
        parsed = raw;
      }
      onEvent(name, parsed);
    }
    name = "message";
    data = [];
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let newline;
    while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
      if (line === "") dispatch();
      else if (line.startsWith(":")) {
        const queued = /^: ?queued position=(\d+) eta_s=(\d+)/.exec(line);
        if (queued) onEvent("queued", { position: Number(queued[1]), eta_s: Number(queued[2]) });
      }
      else {
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") name = value;
        else if (field === "data") data.push(value);
      }
    }
  }
  dispatch();
}

/** Follow a background job until it finishes: SSE first, polling if the stream is unavailable. */
export async function followJob(jobId, onProgress, signal) {
  const path = `/api/jobs/${encodeURIComponent(jobId)}`;
  let last = null;
  try {
    const response = await send(`${path}/events`, { signal, accept: "text/event-stream" });
    await readEvents(response, (_name, data) => {
      if (data && typeof data === "object") {
        last = data.job || data;
        onProgress(last);
      }
    });
    if (last && isFinished(last)) return last;
  } catch (exc) {
    if (exc.name === "AbortError") throw exc;
  }
  for (;;) {
    last = await api(path, { signal });
    onProgress(last);
    if (isFinished(last)) return last;
    await new Promise((resolve) => setTimeout(resolve, 700));
  }
}

export function isFinished(job) {
  return job && (job.status === "done" || job.status === "failed" || job.status === "cancelled");
}

/**
 * Upload a multipart form with upload progress (fetch cannot report it), asking for a key on 401.
 * Resolves with the parsed JSON body; rejects with ApiError.
 */
export async function upload(path, form, onProgress = () => {}) {
  for (;;) {
    const { status, text } = await new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", path);
      const key = apiKey();
      if (key) xhr.setRequestHeader("Authorization", `Bearer ${key}`);
      xhr.upload.addEventListener("progress", (e) => {
        if (e.lengthComputable) onProgress(e.loaded / e.total);
      });
      xhr.addEventListener("load", () => resolve({ status: xhr.status, text: xhr.responseText }));
      xhr.addEventListener("error", () => reject(new ApiError(0, "NetworkError", "upload failed: network error")));
      xhr.send(form);
    });
    if (status >= 200 && status < 300) return text ? JSON.parse(text) : null;
    const error = await errorFrom(new Response(text, { status, statusText: status === 413 ? "Payload Too Large" : "" }));
    if (status !== 401) throw error;
    const newKey = await askForKey(apiKey() ? error.message : null);
    if (!newKey) throw error;
    setApiKey(newKey);
  }
}
