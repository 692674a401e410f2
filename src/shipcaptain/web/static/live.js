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
  // SLA countdowns: time left until a deadline, or how long it has been breached
  for (const el of document.querySelectorAll("[data-until]")) {
    const left = (Date.parse(el.dataset.until) - now) / 1000;
    el.textContent = left >= 0 ? formatDuration(left) + " left" : "breached " + formatDuration(-left) + " ago";
    el.classList.toggle("breached", left < 0);
  }
}

// The DAG's edges: a curve from each step to the steps that need it, drawn over the phases.
function drawEdges() {
  const dag = document.querySelector(".dag");
  if (!dag) return;
  const NS = "http://www.w3.org/2000/svg";
  dag.querySelectorAll("svg.edges").forEach((old) => old.remove());
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("class", "edges");
  svg.setAttribute("width", dag.scrollWidth);
  svg.setAttribute("height", dag.scrollHeight);
  const origin = dag.getBoundingClientRect();
  const box = (el) => {
    const r = el.getBoundingClientRect();
    return { left: r.left - origin.left + dag.scrollLeft, right: r.right - origin.left + dag.scrollLeft,
             mid: r.top - origin.top + dag.scrollTop + r.height / 2 };
  };
  for (const step of dag.querySelectorAll(".step[data-needs]")) {
    for (const need of step.dataset.needs.split(" ").filter(Boolean)) {
      const from = document.getElementById("step-" + need);
      if (!from) continue;
      const a = box(from), b = box(step);
      const sameColumn = Math.abs(a.left - b.left) < 5;
      const x1 = sameColumn ? a.left : a.right, x2 = b.left;
      const bend = sameColumn ? -24 : Math.max(20, (x2 - x1) / 2);
      const path = document.createElementNS(NS, "path");
      path.setAttribute("d", `M ${x1} ${a.mid} C ${x1 + bend} ${a.mid}, ${x2 - (sameColumn ? -bend : bend)} ${b.mid}, ${x2} ${b.mid}`);
      path.setAttribute("class", "edge " + (from.dataset.status || ""));
      svg.appendChild(path);
    }
  }
  dag.prepend(svg);
}

function flash(message) {
  const box = document.getElementById("flash");
  if (!box) return;
  box.textContent = message || "";
  box.hidden = !message;
}

// What an action did (not an error): said politely, in its own place.
function say(message) {
  const box = document.getElementById("said");
  if (!box) return;
  box.textContent = message || "";
  box.hidden = !message;
}

// Put a new version of a live part (an element id) in place.
function applyPart(name, html) {
  const target = document.getElementById(name);
  if (!target) return;
  // what the viewer is typing (a comment, a reason) survives the new version of the part
  const typed = [...target.querySelectorAll("input[name]:not([type=hidden]), textarea[name]")]
    .map((el) => ({ action: el.form && el.form.getAttribute("action"), name: el.name,
                    value: el.value, focused: el === document.activeElement }))
    .filter((t) => t.value || t.focused);
  target.innerHTML = html;
  for (const t of typed) {
    const again = [...target.querySelectorAll(`[name="${t.name}"]`)]
      .find((el) => (el.form && el.form.getAttribute("action")) === t.action);
    if (again) { again.value = t.value; if (t.focused) again.focus(); }
  }
  tick();
  drawEdges();
}
window.applyPart = applyPart;

// Every page with live parts names them (data-parts); the server sends each part as an
// event named after the element it replaces, and "patch" events (first line: the element's
// id, then its new HTML) for one piece of a part, e.g. one step of a release.
const streams = new Map();

function follow(container) {
  const old = streams.get(container);
  if (old) old.close();
  const source = new EventSource(container.dataset.live);
  streams.set(container, source);
  const names = (container.dataset.parts || "summary dag gates comms timeline rows events incidents")
    .split(" ").filter(Boolean);
  for (const name of names) {
    source.addEventListener(name, (event) => applyPart(event.type, event.data));
  }
  source.addEventListener("patch", (event) => {
    const cut = event.data.indexOf("\n");
    applyPart(event.data.slice(0, cut), event.data.slice(cut + 1), true);
  });
  source.addEventListener("end", () => source.close());
}

// After an action (roll back, resume) a finished release runs again: a stream that ended
// with the release is opened again at once, so the page follows it.
function reopenEnded() {
  for (const container of document.querySelectorAll("[data-live]")) {
    const source = streams.get(container);
    if (!source || source.readyState === EventSource.CLOSED) follow(container);
  }
}
window.reopenEnded = reopenEnded;

async function send(event) {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || form.hasAttribute("data-plain")) return;
  event.preventDefault();
  const submitter = event.submitter;
  // a decision that cannot be taken back asks first (Reject)
  const question = submitter && submitter.dataset.confirm;
  if (question && !window.confirm(question)) return;
  // the attribute, not form.action: a field named "action" would hide the property
  const action = (submitter && submitter.getAttribute("formaction")) || form.getAttribute("action");
  // before the buttons are disabled: a disabled button's name=value is not sent
  const body = new URLSearchParams(new FormData(form, submitter));
  const buttons = form.querySelectorAll("button");
  buttons.forEach((b) => { b.disabled = true; });
  try {
    const response = await fetch(action, {
      method: "POST",
      body,
      headers: { "Accept": "application/json", "X-CSRF-Token": form.elements.csrf_token.value },
      credentials: "same-origin",
    });
    if (response.ok) {
      flash("");
      const answer = await response.json().catch(() => null);
      say(answer && answer.message);
      reopenEnded();
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
  drawEdges();
  setInterval(tick, 1000);
  window.addEventListener("resize", drawEdges);
});
