// shipcaptain dashboard: live parts through server-sent events, forms sent without leaving
// the page, running steps' durations ticking. No build step, no dependencies.
"use strict";

function formatDuration(seconds) {
  if (seconds < 60) return (Math.round(seconds * 10) / 10) + "s";
  let total = Math.round(seconds), out = "";
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]]) {
    if (total >= size) { out += Math.floor(total / size) + unit; total %= size; }
  }
  return out;
}

function tick() {
  const now = Date.now();
  for (const el of document.querySelectorAll("[data-since]")) {
    el.textContent = formatDuration((now - Date.parse(el.dataset.since)) / 1000);
  }
}

function flash(message) {
  const box = document.getElementById("flash");
  if (!box) return;
  box.textContent = message || "";
  box.hidden = !message;
}

function follow(container) {
  const source = new EventSource(container.dataset.live);
  const replace = (event) => {
    const target = document.getElementById(event.type);
    if (target) { target.innerHTML = event.data; tick(); }
  };
  for (const name of ["summary", "dag", "gates", "timeline", "rows", "events"]) {
    source.addEventListener(name, replace);
  }
  source.addEventListener("end", () => source.close());
}

async function send(event) {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || form.hasAttribute("data-plain")) return;
  event.preventDefault();
  const submitter = event.submitter;
  const action = (submitter && submitter.getAttribute("formaction")) || form.action;
  const buttons = form.querySelectorAll("button");
  buttons.forEach((b) => { b.disabled = true; });
  try {
    const response = await fetch(action, {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      headers: { "Accept": "application/json", "X-CSRF-Token": form.elements.csrf_token.value },
      credentials: "same-origin",
    });
    if (response.ok) {
      flash("");
    } else {
      const body = await response.json().catch(() => null);
      flash(body && body.error ? `error[${body.error.code}]: ${body.error.message}`
                               : `the server answered ${response.status}`);
      buttons.forEach((b) => { b.disabled = false; });
    }
  } catch (err) {
    flash(`could not reach the server: ${err}`);
    buttons.forEach((b) => { b.disabled = false; });
  }
}

document.addEventListener("submit", send);
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-live]").forEach(follow);
  tick();
  setInterval(tick, 1000);
});
