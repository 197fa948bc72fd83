// The first start: while the server builds the sample knowledge base, a line under the top
// bar says how far it got ("Indexing the sample knowledge base 12/15"), until it is done.

import { api } from "./api.js";
import { h } from "./dom.js";
import { t } from "./i18n.js";

export const SAMPLE_KB = "kbchat-docs";
const POLL_MS = 1000;

/** Watch the sample knowledge base's build job, if one is queued or running. */
export async function watchFirstRun() {
  const banner = h("div", { id: "first-run", class: "first-run", role: "status", hidden: true });
  document.querySelector(".topbar").after(banner);
  for (;;) {
    let jobs;
    try {
      jobs = (await api(`/api/jobs?kb=${SAMPLE_KB}`)) || [];
    } catch {
      return; // no access to it (keys) or no server: nothing to say
    }
    const job = jobs.find((j) => j.kind === "sync");
    if (!job || job.status === "done" || job.status === "failed" || job.status === "cancelled") {
      if (job && job.status === "cancelled") banner.hidden = true;  // someone stopped it: nothing to announce
      else if (!banner.hidden) {
        banner.textContent = job && job.status === "failed" ? t("firstRun.failed", { error: job.error || "" }) : t("firstRun.done");
        banner.classList.add("finished");
        setTimeout(() => { banner.hidden = true; }, 4000);
      }
      return;
    }
    banner.hidden = false;
    banner.textContent = job.status === "queued" || !job.total
      ? t("firstRun.starting")
      : t("firstRun.indexing", { done: job.done, total: job.total });
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}
