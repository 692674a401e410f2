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
  keepFollowing();
}

// A log that follows its newest lines (tail -f): a running step's log when it comes into the
// page, and any log its viewer scrolled to the end. Whether a log follows is kept here, by its
// id, not read back from where it is scrolled when new lines come: the page's layout can move
// under a log after it was put at its end (its box or its lines reflowing), and that is not
// the viewer scrolling up. Only the viewer scrolling up from where the page put it stops it.
const following = new Map();  // log id -> { on, top: where it was last seen scrolled to }

function atEnd(pre) {
  return pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
}

function toEnd(pre) {
  pre.scrollTop = pre.scrollHeight;
  following.set(pre.id, { on: true, top: pre.scrollTop });
}

document.addEventListener("scroll", (event) => {
  const pre = event.target;
  if (!(pre instanceof Element) || !pre.matches("pre.log-text[id]")) return;
  const was = following.get(pre.id);
  // back at the end: follows again; moved up from where it was: the viewer is reading
  const on = atEnd(pre) || Boolean(was && was.on && pre.scrollTop >= was.top - 4);
  following.set(pre.id, { on, top: pre.scrollTop });
}, true);

// the layout moved a following log off its end without new lines: put it back
function keepFollowing() {
  for (const [id, state] of following) {
    const pre = document.getElementById(id);
    if (!pre) following.delete(id);
    else if (state.on && !atEnd(pre)) toEnd(pre);
  }
}

// The release page opens on the step at work or the one that failed, whatever the
// runbook's size: scrolled into view and focused (the keyboard starts there).
function showActiveStep() {
  // a running step's log shows its newest lines
  document.querySelectorAll('.step[data-status="running"] pre.log-text[id]').forEach(toEnd);
  // a link to a place in the page (a gate, from the home page) wins
  if (location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)))) return;
  const step = document.querySelector(
    ".step.failed, .step.timed_out, .step.running, .step.waiting");
  if (!step) return;
  const phase = step.closest("details");
  if (phase) phase.open = true;
  step.scrollIntoView({ block: "center" });
  step.focus({ preventScroll: true });
}

// A step's log: only the lines that contain what is searched for (case-insensitive).
function searchLog(input) {
  const log = document.getElementById(input.dataset.log);
  if (!log) return;
  const wanted = input.value.toLowerCase();
  let shown = 0;
  const lines = log.querySelectorAll(".line");
  for (const line of lines) {
    const miss = wanted !== "" && !line.textContent.toLowerCase().includes(wanted);
    line.classList.toggle("miss", miss);
    if (!miss) shown += 1;
  }
  const count = input.closest("details").querySelector(".matches");
  if (count) count.textContent = wanted ? `${shown} of ${lines.length} lines match` : "";
}
document.addEventListener("input", (event) => {
  if (event.target.matches && event.target.matches("input.log-search")) searchLog(event.target);
});

function flash(message) {
  const box = document.getElementById("flash");
  if (!box) return;
  box.textContent = message || "";
  box.hidden = !message;
}

// the <details> the viewer opened or closed themselves (by id)
const touched = new Set();
document.addEventListener("click", (event) => {
  const summary = event.target.closest && event.target.closest("summary");
  if (summary && summary.parentElement.id) touched.add(summary.parentElement.id);
});

// What an action did (not an error): said politely, in its own place.
function say(message) {
  const box = document.getElementById("said");
  if (!box) return;
  box.textContent = message || "";
  box.hidden = !message;
}

// Put a new version of a live part (an element id) in place: a whole part (its inside), or
// one piece of it (a "patch": the element itself).
function applyPart(name, html, whole) {
  const target = document.getElementById(name);
  if (!target) return;
  // what the viewer is typing (a comment, a reason, a log search) survives the new version
  const typed = [...target.querySelectorAll("input[name]:not([type=hidden]), textarea[name], input.log-search")]
    .map((el) => ({ action: el.form && el.form.getAttribute("action"), name: el.name, log: el.dataset.log,
                    value: el.value, focused: el === document.activeElement }))
    .filter((t) => t.value || t.focused);
  // and so does what they folded or unfolded themselves (the rest follows the server:
  // a phase that finished folds)
  const folded = new Map([...target.querySelectorAll("details[id]")].filter((d) => touched.has(d.id))
    .map((d) => [d.id, d.open]));
  if (target.matches("details[id]") && touched.has(target.id)) folded.set(target.id, target.open);
  // a log that follows its new lines stays at its end (tail -f); one the viewer scrolled up
  // stays where it was
  const scrolled = new Map([...target.querySelectorAll("pre.log-text[id]")]
    .map((pre) => [pre.id, pre.scrollTop]));
  const focusedId = document.activeElement && document.activeElement.id;
  if (whole) target.outerHTML = html; else target.innerHTML = html;
  const placed = document.getElementById(name) || target;
  if (placed.matches("details[id]") && folded.has(placed.id)) placed.open = folded.get(placed.id);
  placed.querySelectorAll("details[id]").forEach((d) => {
    if (folded.has(d.id)) d.open = folded.get(d.id);
  });
  for (const t of typed) {
    const again = t.log ? placed.querySelector(`input.log-search[data-log="${t.log}"]`)
      : [...placed.querySelectorAll(`[name="${t.name}"]`)]
        .find((el) => (el.form && el.form.getAttribute("action")) === t.action);
    if (again) {
      again.value = t.value;
      if (t.log) searchLog(again);
      if (t.focused) again.focus();
    }
  }
  placed.querySelectorAll("pre.log-text[id]").forEach((pre) => {
    const state = following.get(pre.id);
    const running = pre.closest("li.step") && pre.closest("li.step").dataset.status === "running";
    if (state ? state.on : running) toEnd(pre);
    else if (scrolled.has(pre.id)) {
      pre.scrollTop = scrolled.get(pre.id);
      following.set(pre.id, { on: false, top: pre.scrollTop });
    }
  });
  // a phase's heading says whether the phase is open (it went well: folded) and its status
  if (placed.matches("summary[data-open]")) {
    const phase = placed.parentElement;
    phase.className = "phase " + placed.dataset.status;
    if (!touched.has(phase.id)) phase.open = placed.dataset.open === "1";
  }
  if (focusedId && !document.activeElement.id) {
    const again = document.getElementById(focusedId);
    if (again) again.focus({ preventScroll: true });
  }
  tick();
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
  source.addEventListener("append", (event) => {
    const cut = event.data.indexOf("\n");
    const list = document.getElementById(event.data.slice(0, cut));
    if (list) { list.insertAdjacentHTML("beforeend", event.data.slice(cut + 1)); tick(); }
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
  showActiveStep();
  setInterval(tick, 1000);
});
