// One knowledge base's page: its facts and actions, uploads with job progress, its files, and a retrieval test.

import { api, followJob, isFinished, readEvents, send, upload } from "./api.js";
import { confirmButton, formatBytes, formatTime, h, replace } from "./dom.js";
import { lang, t } from "./i18n.js";
import { searchBox } from "./kbsearch.js";
import { toast } from "./toast.js";
import { openSource } from "./viewer.js";

const STATUSES = ["indexed", "failed", "skipped", "pending", "running", "unchanged", "removed", "cancelled"];

function statusBadge(status) {
  const known = STATUSES.includes(status);
  return h("span", { class: `badge ${known ? status : ""}` }, known ? t(`status.${status}`) : String(status));
}

function filePath(name) {
  return name.split("/").map(encodeURIComponent).join("/");
}

/**
 * A card following one background job: a progress bar, counts, each of `names` (the uploaded
 * files) with its state as the job reaches it, and the files that did not index. While the job
 * is queued or running a Cancel button stops it: files finished stay, the rest are left as they were.
 */
function jobCard(container, title, names = []) {
  const bar = h("div", { class: "bar-fill" });
  const label = h("div", { class: "job-label" }, t("job.preparing"));
  const problems = h("ul", { class: "job-problems" });
  const rows = new Map(names.map((name) => [name, h("li", { dataset: { file: name, status: "waiting" } })]));
  const drawFile = (name, status, error = null) => {
    const row = rows.get(name);
    const waiting = status === "waiting" || status === "pending"; // a job lists its files from the start
    row.dataset.status = waiting ? "waiting" : status;
    if (status === "refused") {  // the upload was refused: the card's message says why
      row.dataset.status = status;
      replace(row, h("span", { class: "badge failed" }, t("job.fileRefused")), " ", h("span", { class: "job-file-name" }, name));
      return;
    }
    const reason = error && (status === "failed" || status === "skipped") ? h("span", { class: "reason" }, ` — ${error}`) : null;
    replace(row, waiting ? h("span", { class: "badge" }, t("job.fileWaiting")) : statusBadge(status), " ", h("span", { class: "job-file-name" }, name), reason);
  };
  rows.forEach((_, name) => drawFile(name, "waiting"));
  const close = h("button", { type: "button", class: "btn ghost small", hidden: true, onclick: () => card.remove() }, t("common.close"));
  const cancel = h("button", { type: "button", class: "btn danger-ghost small job-cancel", hidden: true }, t("job.cancel"));
  let cancelling = false;
  const card = h("div", { class: "job card", role: "status" },
    h("div", { class: "job-head" }, h("strong", {}, title), cancel, close),
    h("div", { class: "bar" }, bar), label,
    rows.size ? h("ul", { class: "job-files" }, [...rows.values()]) : null, problems);
  container.prepend(card);
  const setBar = (fraction) => { bar.style.width = `${Math.round(Math.max(0, Math.min(1, fraction)) * 100)}%`; };
  cancel.onclick = async () => {
    cancelling = true;
    cancel.disabled = true;
    label.textContent = t("job.cancelling");
    try {
      self.update(await api(`/api/jobs/${encodeURIComponent(card.dataset.job)}`, { method: "DELETE" }));
    } catch (exc) {
      if (exc.status !== 409) toast(exc.message, "error");  // 409: it finished meanwhile
    }
  };
  const self = {
    uploading(fraction) {
      setBar(fraction);
      label.textContent = t("job.uploading", { pct: Math.round(fraction * 100) });
    },
    update(job) {
      const total = job.total || 0;
      const done = job.done || 0;
      card.dataset.status = job.status;
      card.dataset.job = job.id;
      cancel.hidden = isFinished(job);
      setBar(isFinished(job) ? 1 : total ? done / total : 0);
      const files = job.files || [];
      const count = (status) => files.filter((f) => f.status === status).length;
      files.forEach((f) => { if (rows.has(f.name)) drawFile(f.name, f.status, f.error); });
      if (cancelling && !isFinished(job)) label.textContent = t("job.cancelling");
      else if (job.status === "queued") label.textContent = t("job.queued");
      else if (job.status === "running") {
        label.textContent = t("job.running", { done, total });
        // A big file between two file counts: how many of its chunks are embedded.
        if (job.chunks_total) label.textContent += ` · ${t("job.chunks", { done: job.chunks_done, total: job.chunks_total })}`;
      }
      else if (job.status === "failed") label.textContent = t("job.failed", { message: job.error || "" });
      else if (job.status === "cancelled") label.textContent = t("job.cancelled", { kept: done, cancelled: count("cancelled") });
      else label.textContent = t("job.done", { indexed: count("indexed"), failed: count("failed"), skipped: count("skipped") + count("unchanged"), removed: count("removed") });
      // Files with no row of their own (a sync's) say here why they did not index.
      replace(problems, files.filter((f) => (f.status === "failed" || f.status === "skipped") && !rows.has(f.name)).map((f) =>
        h("li", { class: f.status }, statusBadge(f.status), " ", h("strong", {}, f.name), f.error ? h("span", { class: "reason" }, ` — ${f.error}`) : null)));
      if (isFinished(job)) close.hidden = false;
    },
    fail(message) {
      card.dataset.status = "failed";
      label.textContent = message;
      label.classList.add("form-error");
      close.hidden = false;
    },
    /** The upload was refused with `message`: its files are not uploaded, none will run. */
    refused(message) {
      rows.forEach((row, name) => { if (row.dataset.status === "waiting") drawFile(name, "refused"); });
      self.fail(message);
    },
    /** Add a button under the message that runs `action` (e.g. replace the files a 409 named). */
    offer(text, action) {
      problems.after(h("button", { type: "button", class: "btn small job-action", onclick: action }, text));
    },
    remove() {
      card.remove();
    },
  };
  return self;
}

/** Stream a file's summary into `box` (the kept one comes back at once; `refresh` makes a new one). */
async function summarize(kbName, file, box, button, refresh) {
  button.disabled = true;
  box.hidden = false;
  box.classList.remove("form-error");
  box.textContent = t("summary.working");
  let text = "";
  try {
    const response = await send(`/api/kbs/${encodeURIComponent(kbName)}/summary`, {
      method: "POST", json: { files: [file.name], refresh }, accept: "text/event-stream",
    });
    await readEvents(response, (name, data) => {
      if (name === "progress" && data.stage === "plan" && !text) box.textContent = `${t("summary.working")} (${data.message})`;
      else if (name === "delta") { text += data.text; box.textContent = text; }
      else if (name === "summary") box.textContent = data.summary;
      else if (name === "error") throw new Error((data.error && data.error.message) || String(data));
    });
    button.textContent = t("summary.again");
  } catch (exc) {
    box.textContent = exc.message;
    box.classList.add("form-error");
  } finally {
    button.disabled = false;
  }
}

/**
 * Run a file's job (delete or retry) with its row showing `label` ("deleting…") until the job
 * has finished, also across refreshes of the table (`busy`: file name -> label); then refresh.
 */
async function inRow(name, label, start, { refresh, redraw, signal, busy }) {
  busy.set(name, label);
  await redraw();
  try {
    const accepted = await start();
    const job = await followJob(accepted.job.id, () => {}, signal);
    const problem = (job.files || []).find((f) => f.status === "failed");
    if (job.status === "failed" || problem) toast((problem && problem.error) || job.error || "", "error");
    return job;
  } catch (exc) {
    if (exc.name !== "AbortError") toast(exc.message, "error");
    return null;
  } finally {
    busy.delete(name);
    if (!signal.aborted) await refresh();
  }
}

function fileRow(kbName, file, context) {
  const { reupload, busy } = context;
  const base = `/api/kbs/${encodeURIComponent(kbName)}/files/${filePath(file.name)}`;
  const summaryBox = h("div", { class: "file-summary muted", hidden: !file.summary }, file.summary || "");
  const summaryButton = h("button", {
    type: "button", class: "btn ghost small file-summarize", hidden: file.status !== "indexed",
    onclick: () => summarize(kbName, file, summaryBox, summaryButton, Boolean(file.summary || summaryBox.textContent)),
  }, file.summary ? t("summary.again") : t("summary.make"));
  const opens = file.status === "indexed" || file.status === "pending" || (file.status === "failed" && file.path);
  const name = opens
    ? h("button", { type: "button", class: "link file-open", title: t("kb.openFile"), onclick: () => openSource({ kb: kbName, file: file.name }) }, file.name)
    : h("span", { title: file.path || file.name }, file.name);
  const failed = file.status === "failed" || file.status === "skipped";
  let retry = null;
  if (failed && file.path && file.status === "failed") {
    retry = h("button", {
      type: "button", class: "btn ghost small file-retry", title: t("kb.retryHint"),
      onclick: () => inRow(file.name, t("status.retrying"), () => api(`/api/kbs/${encodeURIComponent(kbName)}/retry/${filePath(file.name)}`, { method: "POST" }), context),
    }, t("kb.retry"));
  } else if (failed && !file.path) {
    retry = h("button", {
      type: "button", class: "btn ghost small file-reupload", title: t("kb.reuploadHint"),
      onclick: () => reupload(file.name),
    }, t("kb.reupload"));
  }
  const remove = confirmButton({
    label: t("common.delete"), confirmLabel: t("common.confirmDelete"), className: "btn ghost small file-delete",
    onConfirm: async () => {
      const job = await inRow(file.name, t("status.deleting"), () => api(base, { method: "DELETE" }), context);
      if (job && job.status === "done" && (job.files || []).every((f) => f.status === "removed")) {
        toast(t("kb.fileDeleted", { name: file.name }), "ok");
      }
    },
  });
  const row = h(
    "tr",
    { class: `file-row ${file.status}`, dataset: { name: file.name } },
    h("td", { class: "file-name" }, name,
      file.error ? h("div", { class: "reason" }, file.error) : null, summaryBox),
    h("td", { class: "file-status" }, busy.has(file.name)
      ? h("span", { class: "badge pending working" }, busy.get(file.name)) : statusBadge(file.status)),
    h("td", { class: "num" }, String(file.chunks ?? "")),
    h("td", { class: "num hide-small" }, formatBytes(file.size)),
    h("td", { class: "muted hide-narrow" }, formatTime(file.updated_at, lang())),
    h("td", { class: "actions" }, retry, file.chunks ? h("button", {
      type: "button", class: "btn ghost small file-chunks",
      onclick: () => openSource({ kb: kbName, file: file.name }, "chunks"),
    }, t("kb.chunksOf")) : null, summaryButton, remove),
  );
  if (busy.has(file.name)) {
    row.classList.add("busy");
    row.querySelectorAll(".actions button").forEach((b) => { b.disabled = true; });
  }
  return row;
}

/** Ask for one file, then call `onFile` with it. */
function pickFile(onFile) {
  const input = h("input", { type: "file", class: "sr-only", id: "reupload-input" });
  input.addEventListener("change", () => { if (input.files[0]) onFile(input.files[0]); input.remove(); });
  input.addEventListener("cancel", () => input.remove());
  document.body.append(input);
  input.click();
}

/** Files with the path each should have in the knowledge base (a folder's files keep their folders). */
function picked(files) {
  return files.map((file) => ({ file, path: file.webkitRelativePath || file.name }));
}

/** Every file under a dropped folder entry, with its path from the dropped folder's name down. */
async function entryFiles(entry, prefix = "") {
  const path = prefix + entry.name;
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    return [{ file, path }];
  }
  const reader = entry.createReader();
  const children = [];
  for (;;) {  // readEntries returns at most ~100 entries per call
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) break;
    children.push(...batch);
  }
  const nested = await Promise.all(children.map((child) => entryFiles(child, `${path}/`)));
  return nested.flat();
}

async function droppedFiles(transfer) {
  const entries = [...(transfer?.items || [])].map((item) => item.webkitGetAsEntry?.()).filter(Boolean);
  if (!entries.some((entry) => entry.isDirectory)) return picked([...(transfer?.files || [])]);
  return (await Promise.all(entries.map((entry) => entryFiles(entry)))).flat();
}

function dropZone(onFiles) {
  const input = h("input", { type: "file", multiple: true, id: "file-input", class: "sr-only" });
  input.addEventListener("change", () => { onFiles(picked([...input.files])); input.value = ""; });
  const folderInput = h("input", { type: "file", multiple: true, id: "folder-input", class: "sr-only" });
  folderInput.webkitdirectory = true;
  folderInput.addEventListener("change", () => { onFiles(picked([...folderInput.files])); folderInput.value = ""; });
  const folderButton = h("button", {
    type: "button", class: "btn ghost small", id: "folder-button",
    onclick: (e) => { e.preventDefault(); folderInput.click(); },
  }, t("kb.chooseFolder"));
  const zone = h("label", { class: "dropzone", id: "dropzone", for: "file-input" },
    h("strong", {}, t("kb.dropTitle")), h("span", {}, t("kb.dropText")), input, folderInput, folderButton);
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    droppedFiles(e.dataTransfer).then(onFiles).catch((exc) => toast(exc.message, "error"));
  });
  return zone;
}

function header(kb, actions) {
  const facts = [
    [t("kb.embedder"), kb.embedder],
    [t("kb.chunkSize"), kb.chunk_size ? `${kb.chunk_size} / ${kb.chunk_overlap ?? 0}` : null],
    [t("kb.files"), kb.files],
    [t("kb.chunks"), kb.chunks],
  ].filter(([, v]) => v !== null && v !== undefined && v !== "");
  return h("header", { class: "kb-header" },
    h("div", {}, h("h2", { id: "kb-title" }, kb.name), kb.description ? h("p", { class: "muted" }, kb.description) : null,
      h("dl", { class: "facts" }, facts.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, String(v)))))),
    h("div", { class: "kb-actions" }, actions));
}

function seconds(value) {
  return value >= 90 ? t("summary.minutes", { n: Math.round(value / 60) }) : t("summary.seconds", { n: Math.round(value) });
}

/** A card following a summary job file by file, with its expected time and a Stop button. */
function summaryJobCard(container, base, job, signal, onEnd) {
  const label = h("div", { class: "job-label" });
  const list = h("ul", { class: "job-files" });
  const stop = h("button", { type: "button", class: "btn danger-ghost small", id: "summary-stop" }, t("summary.stop"));
  const close = h("button", { type: "button", class: "btn ghost small", hidden: true, onclick: () => card.remove() }, t("common.close"));
  const card = h("div", { class: "job card summary-job", role: "status", "data-status": job.status },
    h("div", { class: "job-head" }, h("strong", {}, t("summary.job")), stop, close), label, list);
  container.prepend(card);
  const path = `${base}/summary/jobs/${encodeURIComponent(job.id)}`;
  stop.onclick = async () => {
    stop.disabled = true;
    try { show(await api(path, { method: "DELETE" })); } catch (exc) { toast(exc.message, "error"); }
  };
  function show(current) {
    card.dataset.status = current.status;
    const done = current.files.filter((f) => f.status !== "pending" && f.status !== "running").length;
    label.textContent = current.status === "running"
      ? t("summary.progress", { done, total: current.files.length, time: seconds(current.estimated_s) })
      : t(`summary.ended.${current.status}`, { message: current.error || "" });
    replace(list, current.files.map((f) => h("li", { "data-name": f.file, "data-status": f.status },
      h("strong", {}, f.file), " ", h("span", { class: "muted" },
        f.status === "running" && f.total ? `${f.stage} ${f.done}/${f.total}` : t(`summary.file.${f.status}`)),
      f.error ? h("span", { class: "reason" }, ` — ${f.error}`) : null)));
    if (current.status !== "running") { stop.hidden = true; close.hidden = false; }
  }
  show(job);
  (async () => {
    let current = job;
    while (current.status === "running" && !signal.aborted) {
      await new Promise((resolve) => setTimeout(resolve, 1500));
      try { current = await api(path, { signal }); } catch (exc) { if (exc.name !== "AbortError") toast(exc.message, "error"); return; }
      show(current);
    }
    if (!signal.aborted) onEnd();
  })();
}

/** Render knowledge base `name` into `container`. Returns a cleanup function. */
export function renderKbDetail(container, name, { onChanged, onDeleted }) {
  const base = `/api/kbs/${encodeURIComponent(name)}`;
  const controller = new AbortController();
  const jobs = h("div", { class: "jobs", id: "jobs" });
  const tbody = h("tbody", { id: "file-rows" });
  const filesBox = h("div", { class: "files card" });
  let headerSlot = h("div");
  let pendingTimer = null;
  const busy = new Map();  // file name -> what its running job does ("deleting…"), shown in its row

  // Files another job is indexing (e.g. the sample KB built at start-up) show "pending": look again soon.
  function watchPending(files) {
    clearTimeout(pendingTimer);
    if (files.some((f) => f.status === "pending") && !controller.signal.aborted) {
      pendingTimer = setTimeout(() => refreshAll().catch(() => {}), 2000);
    }
  }

  async function refreshFiles() {
    let files;
    try {
      files = (await api(`${base}/files`, { signal: controller.signal })) || [];
    } catch (exc) {
      if (exc.name !== "AbortError") replace(filesBox, h("p", { class: "form-error" }, exc.message));
      return;
    }
    watchPending(files);
    if (!files.length) {
      replace(filesBox, h("div", { class: "empty-small", id: "files-empty" }, t("kb.noFiles")));
      return;
    }
    const reupload = (fileName) => pickFile((file) => uploadFiles([{ file, path: fileName }], true));
    const context = { refresh: refreshAll, redraw: refreshFiles, reupload, signal: controller.signal, busy };
    replace(tbody, files.map((f) => fileRow(name, f, context)));
    const columns = [[t("kb.file")], [t("kb.status")], [t("kb.chunks")], [t("kb.size"), "hide-small"],
      [t("kb.updated"), "hide-narrow"], [""]];
    replace(filesBox, h("table", { class: "files-table" },
      h("thead", {}, h("tr", {}, columns.map(([label, hide]) => h("th", { class: hide || null }, label)))), tbody));
  }

  async function refreshHeader() {
    const kb = await api(base, { signal: controller.signal });
    const next = header(kb, actionButtons());
    headerSlot.replaceWith(next);
    headerSlot = next;
  }

  async function refreshAll() {
    await Promise.all([refreshFiles(), refreshHeader().catch(() => {}), onChanged()]);
  }

  async function track(job, card) {
    card.update(job);
    try {
      card.update(await followJob(job.id, (j) => card.update(j), controller.signal));
    } catch (exc) {
      if (exc.name !== "AbortError") card.fail(exc.message);
      return;
    }
    await refreshAll();
  }

  /** Upload `files` ({file, path} pairs); a 409 (a different file of the same name) offers to replace. */
  async function uploadFiles(files, overwrite = false) {
    if (!files.length) return;
    const form = new FormData();
    files.forEach(({ file, path }) => form.append("files", file, path));
    const card = jobCard(jobs, t("job.upload", { n: files.length }), files.map(({ path }) => path));
    try {
      const query = overwrite ? "?overwrite=true" : "";
      const result = await upload(`${base}/files${query}`, form, (p) => card.uploading(p));
      await track(result.job || result, card);
    } catch (exc) {  // track() says its own errors: this is the upload's
      card.refused(exc.message);
      if (exc.status === 409 && !overwrite) {
        card.offer(t("job.replace"), () => { card.remove(); uploadFiles(files, true); });
      }
    }
  }

  async function startJob(action, title) {
    const card = jobCard(jobs, title);
    try {
      const response = await send(`${base}/${action}`, { method: "POST", json: {}, signal: controller.signal });
      const result = await response.json();
      await track(result.job || result, card);
    } catch (exc) {
      if (exc.name !== "AbortError") card.fail(exc.message);
    }
  }

  async function summarizeAll() {
    try {
      const job = await api(`${base}/summary/jobs`, { method: "POST", json: {}, signal: controller.signal });
      summaryJobCard(jobs, base, job, controller.signal, () => refreshFiles());
    } catch (exc) {
      if (exc.name !== "AbortError") toast(exc.message, "error");
    }
  }

  function actionButtons() {
    return [
      h("button", { type: "button", class: "btn", id: "kb-summarize", title: t("summary.allHint"), onclick: summarizeAll }, t("summary.all")),
      h("button", { type: "button", class: "btn", id: "kb-sync", title: t("kb.syncHint"), onclick: () => startJob("sync", t("job.sync")) }, t("kb.sync")),
      h("button", { type: "button", class: "btn", id: "kb-rebuild", title: t("kb.rebuildHint"), onclick: () => startJob("rebuild", t("job.rebuild")) }, t("kb.rebuild")),
      confirmButton({
        label: t("kb.delete"), confirmLabel: t("kb.confirmDelete"), className: "btn danger-ghost", title: t("kb.deleteHint"),
        onConfirm: async () => {
          try {
            await api(base, { method: "DELETE" });
            toast(t("kb.deleted", { name }), "ok");
            onDeleted();
          } catch (exc) {
            toast(exc.message, "error");
          }
        },
      }),
    ];
  }

  replace(container, h("div", { class: "loading" }, t("common.loading")));
  refreshHeader().then(() => {
    replace(container, headerSlot, dropZone(uploadFiles), jobs,
      h("h3", { class: "section-title" }, t("kb.filesTitle")), filesBox,
      h("h3", { class: "section-title" }, t("search.title")), searchBox(name));
    return refreshFiles();
  }).catch((exc) => {
    if (exc.name === "AbortError") return;
    replace(container, h("div", { class: "empty" }, h("h2", {}, name), h("p", { class: "form-error", role: "alert" }, exc.message)));
  });

  return () => {
    controller.abort();
    clearTimeout(pendingTimer);
  };
}
