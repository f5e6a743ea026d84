// pipelined console: live updates and the Review dialog. The pages work
// without this script (links go to full pages); it only makes them live.
"use strict";
(function () {
  // Live updates: the server pushes the re-rendered stages (server-sent
  // events); no polling from the browser. The HTML comes from the server's
  // templates, which escape every stored value.
  const live = document.querySelector("[data-live]");
  const status = document.querySelector("[data-live-status]");
  let pending = null;
  if (live) {
    live.addEventListener("focusout", () => {
      setTimeout(() => {
        if (pending !== null && !live.contains(document.activeElement)) { live.innerHTML = pending; pending = null; wireReview(live); }
      }, 0);
    });
  }
  if (live && window.EventSource) {
    const es = new EventSource(live.dataset.live);
    es.addEventListener("open", () => { if (status) status.textContent = "Live updates: on"; });
    es.addEventListener("error", () => { if (status) status.textContent = "Live updates: reconnecting…"; });
    es.addEventListener("update", (e) => {
      // Keep an open <details> open across updates.
      const open = new Set([...live.querySelectorAll("details[open] > summary")].map((s) => s.textContent));
      // Do not pull a form out from under a typing user: apply the update
      // when focus leaves the live part.
      if (document.activeElement && live.contains(document.activeElement) && document.activeElement.matches("input, textarea, select")) {
        pending = e.data;
        return;
      }
      live.innerHTML = e.data;
      live.querySelectorAll("details > summary").forEach((s) => { if (open.has(s.textContent)) s.parentElement.open = true; });
      if (status) status.textContent = "Live updates: on · updated " + new Date().toLocaleTimeString();
      wireReview(live);
    });
    es.addEventListener("gone", (e) => { if (status) status.textContent = e.data; es.close(); });
  }

  // Review: open the review page's form in a <dialog> over the pipeline
  // page (Esc closes it; focus moves into it and back).
  function wireReview(root) {
    root.querySelectorAll("a[data-review]").forEach((a) => {
      a.addEventListener("click", async (ev) => {
        if (!window.HTMLDialogElement) return;
        ev.preventDefault();
        const res = await fetch(a.href, { credentials: "same-origin" });
        if (!res.ok) { window.location = a.href; return; }
        const doc = new DOMParser().parseFromString(await res.text(), "text/html");
        const section = doc.querySelector("section.review");
        if (!section) { window.location = a.href; return; }
        const dlg = document.createElement("dialog");
        dlg.setAttribute("aria-labelledby", "review-title");
        dlg.appendChild(document.importNode(section, true));
        const crumbs = dlg.querySelector(".crumbs"); if (crumbs) crumbs.remove();
        const cancel = dlg.querySelector(".buttons a");
        if (cancel) cancel.addEventListener("click", (e) => { e.preventDefault(); dlg.close(); });
        dlg.addEventListener("close", () => { dlg.remove(); a.focus(); });
        document.body.appendChild(dlg);
        dlg.showModal();
        const ta = dlg.querySelector("textarea"); if (ta) ta.focus();
      });
    });
  }
  wireReview(document);
})();
