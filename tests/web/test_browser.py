"""The dashboard in Debian's Chromium, driven by Playwright: a captain starts a release in
the page, the on-call SRE approves its gate in the page, and the step turns green without
the page being reloaded."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from helpers.cockpit import valuecanvas_release
from helpers.processes import command_lines
from helpers.processes import wait_for as poll_until
from helpers.rehearsals import kept_rehearsal
from helpers.releases import Harness, harness, write_runbook
from helpers.web import (
    CHROMIUM,
    GATED,
    NOT_WANTED_FEATURES,
    chromium_args,
    playwright_disabled_features,
    token_for,
)
from shipcaptain.web.app import create_app
from shipcaptain.web.server import serving_in_thread as serving

pytestmark = pytest.mark.slow
#: where the page is photographed for a person to look at (not compared): a folder of the
#: tests' own in SHIPCAPTAIN_SCREENSHOTS (default: the system's temporary folder), holding
#: the last run's pictures (the every-page test's are named by a release's or rehearsal's
#: id: kept run after run, they piled up, about 28 a run)
SCREENSHOTS = (
    Path(os.environ.get("SHIPCAPTAIN_SCREENSHOTS", tempfile.gettempdir()))
    / "shipcaptain-browser-tests"
)
T = TypeVar("T")

if not shutil.which(CHROMIUM):  # .ci/run installs it, and requires it
    if os.environ.get("SHIPCAPTAIN_REQUIRE_CHROMIUM"):
        pytest.fail(f"Debian's chromium is not installed at {CHROMIUM}", pytrace=False)
    pytest.skip(
        f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium)",
        allow_module_level=True,
    )

from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright  # noqa: E402

#: how long an ``expect`` waits for the page to get there (Playwright's default is 5 s): on
#: two cores under the suite's load Chromium can take longer; what each test waits for is
#: unchanged
WAIT_MS = 15_000
expect.set_options(timeout=WAIT_MS)


def off_the_loop(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Playwright's sync API keeps an event loop in this thread; DBOS's sync API refuses
    to run in one, so the engine is driven from another thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(func, *args, **kwargs).result()


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    """The test's own engine, launched and shut down off Playwright's loop (the module's
    browser keeps that loop running in this thread between tests)."""
    running = harness(f"sqlite:///{tmp_path / 'state.db'}", tmp_path)
    launched = off_the_loop(running.__enter__)
    try:
        yield launched
    finally:
        off_the_loop(running.__exit__, None, None, None)


@pytest.fixture
def url(h: Harness, tmp_path: Path) -> Iterator[str]:
    write_runbook(tmp_path, GATED, "gated.yaml")
    with serving(create_app(h.settings, client=h.client, runbook_root=tmp_path)) as base:
        yield base


@pytest.fixture(scope="module", autouse=True)
def screenshots() -> Path:
    """The tests' screenshot folder, with no picture of an earlier run in it (only its
    ``.png`` files are removed: nothing else there is the tests')."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink(missing_ok=True)
    return SCREENSHOTS


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """One Playwright driver and Chromium for the module: starting them took 5-6 s a test
    (the driver alone about 4 s). Each test still gets fresh browser contexts: no cookie,
    storage or cache of another test's."""
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=chromium_args())
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def browser(chromium: Browser, url: str) -> Iterator[Browser]:
    """The module's Chromium; the contexts (and pages) the test opened are closed after it,
    before its server stops."""
    assert not chromium.contexts, "a context of another test is still open"
    try:
        yield chromium
    finally:
        for context in chromium.contexts:
            context.close()


def test_the_tests_chromium_builds_no_address_bar_popup_and_keeps_playwrights_settings(
    chromium: Browser,
) -> None:
    """A context's window has no address bar popup (a renderer of its own for each context,
    not wanted), and Playwright's own ``--disable-features`` still hold: Chromium keeps only
    the last such switch, so the tests' one repeats Playwright's list."""
    context = chromium.new_context()
    try:
        context.new_page().goto("data:text/html,<p>a page</p>")
        cdp = chromium.new_browser_cdp_session()
        targets = cdp.send("Target.getTargets")["targetInfos"]
        cdp.detach()
        assert [t["url"] for t in targets] == ["data:text/html,<p>a page</p>"]  # no popup
        effective: set[str] = set()
        for line in command_lines():
            if line.split(" ", 1)[0].endswith("/chromium") and "--type=renderer" in line:
                for listed in re.findall(r"--disable-features=(\S+)", line):
                    effective.update(listed.split(","))
        assert {*playwright_disabled_features(), *NOT_WANTED_FEATURES} <= effective
        assert "HttpsUpgrades" in effective  # keeps the tests' http:// pages on http://
    finally:
        context.close()


def signed_in(browser: Browser, url: str, token: str) -> Page:
    page = browser.new_context().new_page()
    page.goto(f"{url}/releases")
    expect(page).to_have_url(f"{url}/login?next=%2Freleases")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{url}/releases")
    return page


def test_start_a_release_and_approve_its_gate_in_the_page(
    browser: Browser, url: str, h: Harness
) -> None:
    captain = signed_in(browser, url, token_for(h.client.store, "casey"))
    captain.click("summary:has-text('Start a release')")
    captain.fill("#start input[name=runbook]", "gated.yaml")
    captain.fill("textarea[name=params]", "environment=staging")
    captain.click("#start button[type=submit]")
    expect(captain).to_have_url(re.compile(re.escape(url) + r"/releases/rel-[0-9a-f]+$"))
    release_id = captain.url.rsplit("/", 1)[-1]
    # the starter may not approve (separation of duties): the page says so, without buttons
    expect(captain.locator("#gate-go_ahead")).to_contain_text("separation of duties")

    sre = signed_in(browser, url, token_for(h.client.store, "sam"))
    sre.goto(f"{url}/releases/{release_id}")
    sre.evaluate("window.__notReloaded = true")
    expect(sre.locator("#step-build")).to_have_attribute("data-status", "succeeded")
    expect(sre.locator("#step-go_ahead")).to_have_attribute("data-status", "waiting")
    sre.fill("#gate-go_ahead input[name=comment]", "dashboards green")
    sre.click("#gate-go_ahead button.approve")

    expect(sre.locator("#step-go_ahead")).to_have_attribute("data-status", "succeeded")
    expect(sre.locator("#step-ship")).to_have_attribute("data-status", "succeeded")
    expect(sre.locator("#step-ship")).to_have_css("border-left-color", "rgb(17, 99, 41)")
    expect(sre.locator("#release-status")).to_have_text("succeeded")
    expect(sre.locator("#timeline")).to_contain_text("sam")
    assert sre.evaluate("window.__notReloaded") is True  # updated live, not reloaded
    # what each step waits for, as links to those steps
    expect(sre.locator("#step-ship .needs a[href='#step-go_ahead']")).to_have_count(1)
    # a phase that went well is folded
    expect(sre.locator("details#phase-ship")).not_to_have_attribute("open", "")
    sre.screenshot(path=str(SCREENSHOTS / "release-page.png"), full_page=True)
    expect(sre.locator("#gate-go_ahead")).to_have_count(0)
    # the captain's page followed too
    expect(captain.locator("#release-status")).to_have_text("succeeded")
    [decision] = h.client.store.list_decisions(release_id, "go_ahead")
    assert (decision.user, decision.comment) == ("sam", "dashboards green")


def test_a_refused_action_shows_its_error_in_the_page(
    browser: Browser, url: str, h: Harness, tmp_path: Path
) -> None:
    release = off_the_loop(h.start, tmp_path / "gated.yaml", user="sam")
    h.wait_for_gate(release.id, "go_ahead")
    page = signed_in(browser, url, token_for(h.client.store, "casey"))
    page.goto(f"{url}/releases/{release.id}")
    page.fill("input[name=reason]", "wrong version")
    page.click("button:has-text('Cancel release')")
    expect(page.locator("#release-status")).to_have_text("cancelled")
    # a form of its own, outside the page's live parts: the gates' part, sent again once
    # the cancel reached it, replaced a form put inside it before the click (a CI run)
    page.evaluate(
        "document.body.insertAdjacentHTML('beforeend', '<form method=post "
        f'action="/releases/{release.id}/cancel"><input type=hidden '
        "name=csrf_token value=stale><input name=reason value=x>"
        "<button id=stale>go</button></form>')"
    )
    page.click("#stale")
    expect(page.locator("#flash")).to_contain_text("SC411")


UNDOABLE = GATED.replace(
    'with: {command: "echo shipped"}}',
    'with: {command: "echo shipped"}, undo: {action: shell, with: {command: "echo undone"}}}',
)


def test_incidents_are_acknowledged_mitigated_and_resolved_in_the_page(
    browser: Browser, url: str, h: Harness
) -> None:
    sre = signed_in(browser, url, token_for(h.client.store, "sam"))
    sre.goto(f"{url}/incidents")
    sre.evaluate("window.__notReloaded = true")
    sre.fill("input[name=summary]", "checkout returns 502")
    sre.click("button:has-text('Open an incident')")
    # the page is live: the new incident appears without a reload
    row = sre.locator("tr[id^=incident-]").first
    expect(row).to_contain_text("checkout returns 502")
    row.locator("button.acknowledge").click()
    expect(row).to_contain_text("acknowledged by sam")
    row.locator("input[name=note]").fill("rolled the canary back")
    row.locator("button.mitigate").click()
    expect(row).to_contain_text("mitigated by sam")
    expect(row).to_contain_text("rolled the canary back")
    row.locator("button.resolve").click()
    expect(row).to_contain_text("resolved by sam")
    expect(sre.locator("#flash")).to_be_hidden()
    # one opened elsewhere (the CLI, another person) shows up live too
    off_the_loop(h.client.open_incident, severity="P2", summary="slow search", user="casey")
    expect(sre.locator("#incidents")).to_contain_text("slow search")
    assert sre.evaluate("window.__notReloaded") is True
    (incident,) = [i for i in h.client.store.list_incidents() if i.summary.startswith("checkout")]
    assert (incident.acknowledged_by, incident.mitigated_by, incident.resolved_by) == (
        "sam",
        "sam",
        "sam",
    )


def test_roll_back_a_finished_release_and_the_page_follows_at_once(
    browser: Browser, url: str, h: Harness, tmp_path: Path
) -> None:
    runbook = write_runbook(tmp_path, UNDOABLE, "undoable.yaml")
    release = off_the_loop(h.start, runbook, user="casey")
    h.wait_for_gate(release.id, "go_ahead")
    off_the_loop(h.client.decide, release.id, "go_ahead", user="sam", decision="approve")
    assert off_the_loop(h.wait, release.id).status == "succeeded"
    captain = signed_in(browser, url, token_for(h.client.store, "casey"))
    captain.goto(f"{url}/releases/{release.id}")
    expect(captain.locator("#release-status")).to_have_text("succeeded")
    captain.evaluate("window.__notReloaded = true")
    captain.fill("input[name=reason]", "error rate up")
    captain.click("button:has-text('Roll back')")
    # the live stream ended with the release; it is opened again at once
    expect(captain.locator("#release-status")).to_have_text("rolling_back")
    expect(captain.locator("#gate-rollback\\/approval")).to_contain_text("separation of duties")
    sre = signed_in(browser, url, token_for(h.client.store, "sam"))
    sre.goto(f"{url}/releases/{release.id}")
    gate = sre.locator("#gate-rollback\\/approval")
    # the approver sees what will be undone, and who asks and why
    expect(gate.locator(".rollback-plan")).to_contain_text("undo-ship")
    expect(gate.locator(".evidence")).to_contain_text("error rate up")
    expect(gate.locator(".evidence")).to_contain_text("casey")
    sre.click("#gate-rollback\\/approval button.approve")
    expect(captain.locator("#release-status")).to_have_text("rolled_back")
    assert captain.evaluate("window.__notReloaded") is True


def test_resume_a_cancelled_release_and_the_page_follows_at_once(
    browser: Browser, url: str, h: Harness, tmp_path: Path
) -> None:
    release = off_the_loop(h.start, tmp_path / "gated.yaml", user="casey")
    h.wait_for_gate(release.id, "go_ahead")
    off_the_loop(h.client.cancel, release.id, user="casey", reason="wrong window")
    captain = signed_in(browser, url, token_for(h.client.store, "casey"))
    captain.goto(f"{url}/releases/{release.id}")
    expect(captain.locator("#release-status")).to_have_text("cancelled")
    captain.evaluate("window.__notReloaded = true")
    captain.click("button:has-text('Resume')")
    expect(captain.locator("#release-status")).to_have_text("waiting")
    expect(captain.locator("#gate-go_ahead")).to_be_visible()
    assert captain.evaluate("window.__notReloaded") is True
    off_the_loop(h.client.cancel, release.id, user="casey", reason="test over")


QUORUM = """
name: two-keys
roles:
  release_captain: {title: Release Captain, members: [casey]}
  approvers: {title: Approvers, members: [sam, fola]}
phases:
  - id: ship
    steps:
      - id: go_ahead
        action: approval
        with:
          prompt: apply the migration?
          roles: [approvers]
          quorum: 2
          timeout: 1h
          evidence:
            ci_run: https://ci.example.com/runs/42
            migrations:
              - {file: 0042_drop_legacy.sql, sql: DROP TABLE legacy, findings: drops a table}
      - {id: ship, action: shell, needs: [go_ahead], with: {command: "echo shipped"}}
"""


def test_a_gate_shows_what_is_decided_and_refuses_at_once(
    browser: Browser, url: str, h: Harness, tmp_path: Path
) -> None:
    runbook = write_runbook(tmp_path, QUORUM, "quorum.yaml")
    release = off_the_loop(h.start, runbook, user="casey")
    h.wait_for_gate(release.id, "go_ahead")
    sam = signed_in(browser, url, token_for(h.client.store, "sam"))
    token_for(h.client.store, "fola")  # on the team
    sam.goto(f"{url}/releases/{release.id}")
    gate = sam.locator("#gate-go_ahead")
    # the evidence the decision keeps, as data, its URL a link; the quorum; who else
    expect(gate.locator(".evidence")).to_contain_text("your decision records that you saw this")
    expect(gate.locator(".evidence a[href='https://ci.example.com/runs/42']")).to_be_visible()
    expect(gate.locator(".evidence table.data td").first).to_have_text("0042_drop_legacy.sql")
    expect(gate.locator(".quorum")).to_contain_text("0 of 2 approvals")
    expect(gate.locator(".others")).to_have_text("Who else can decide: fola")
    stale = gate.evaluate("el => el.outerHTML")
    sam.fill("#gate-go_ahead input[name=comment]", "SQL reviewed")
    sam.click("#gate-go_ahead button.approve")
    expect(sam.locator("#said")).to_contain_text("Your approval of go_ahead is recorded")
    expect(gate.locator(".quorum")).to_contain_text("1 of 2 approvals")
    expect(gate.locator(".decisions")).to_contain_text("sam approved")
    expect(gate.locator(".decisions")).to_contain_text("SQL reviewed")
    expect(gate.locator(".not-yours")).to_contain_text("you already decided")
    expect(gate.locator("button.approve")).to_have_count(0)
    # a second approval (an old copy of the form) is refused at once, saying why
    sam.evaluate("html => { document.getElementById('gates').innerHTML = html }", stale)
    sam.click("#gate-go_ahead button.approve")
    expect(sam.locator("#flash")).to_contain_text("a second decision is refused")
    [decision] = h.client.store.list_decisions(release.id, "go_ahead")
    assert decision.evidence["ci_run"] == "https://ci.example.com/runs/42"

    fola = signed_in(browser, url, token_for(h.client.store, "fola"))
    fola.goto(f"{url}/releases/{release.id}")
    expect(fola.locator("#gate-go_ahead .others")).to_have_text("Nobody else can decide it now.")
    asked: list[str] = []

    def answer(dialog: Any, accept: bool) -> None:
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    fola.once("dialog", lambda d: answer(d, False))
    fola.click("#gate-go_ahead button.reject")
    assert asked == ["Reject go_ahead? The step fails and the release stops."]
    expect(fola.locator("#gate-go_ahead button.reject")).to_be_enabled()
    assert len(h.client.store.list_decisions(release.id, "go_ahead")) == 1  # nothing sent
    fola.once("dialog", lambda d: answer(d, True))
    fola.click("#gate-go_ahead button.reject")
    expect(fola.locator("#release-status")).to_have_text("failed")
    assert [d.decision for d in h.client.store.list_decisions(release.id, "go_ahead")] == [
        "approve",
        "reject",
    ]


def test_the_valuecanvas_release_fits_1280_px_with_the_failed_step_in_view(
    browser: Browser, url: str, h: Harness
) -> None:
    token = token_for(h.client.store, "sam")
    release = valuecanvas_release(h.client)
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.goto(f"{url}/login?next=/releases/{release.id}")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    failed = page.locator("#step-rollout_web")
    expect(failed).to_have_attribute("data-status", "failed")
    # no page-wide horizontal scrolling, and the failed step is in view and focused
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    expect(failed).to_be_in_viewport()
    expect(failed).to_be_focused()
    # the phases that went well are folded, the one that failed is open; all are listed
    expect(page.locator("details#phase-preflight")).not_to_have_attribute("open", "")
    expect(page.locator("details#phase-rollout")).to_have_attribute("open", "")
    expect(page.locator(".overview .ov-phase")).to_have_count(6)
    # start, end and duration in the header and on each step
    expect(page.locator("#release-times")).to_contain_text("Started")
    expect(page.locator("#release-times")).to_contain_text("took 12m6s")
    expect(failed.locator(".times")).to_contain_text("ended")
    expect(failed.locator(".took")).to_have_text("5m")
    # the full log, searchable
    expect(failed.locator(".log summary")).to_have_text("Log (180 lines)")
    failed.locator("input.log-search").fill("imagepull")
    expect(failed.locator(".matches")).to_have_text("1 of 180 lines match")
    expect(failed.locator(".log-text .line:visible")).to_have_count(1)
    # a folded phase opens from the keyboard; outputs are data, URLs are links
    page.focus("#phase-head-preflight")
    page.keyboard.press("Enter")
    expect(page.locator("details#phase-preflight")).to_have_attribute("open", "")
    ci = page.locator("#step-ci_green")
    ci.locator("#outputs-ci_green summary").click()
    link = ci.locator(
        "dl.data a[href='https://github.com/ValueCanvas/ValueCanvas/actions/runs/9120331']"
    )
    expect(link).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "valuecanvas-1280.png"), full_page=False)


def test_the_home_page_puts_what_waits_for_you_first(
    browser: Browser, url: str, h: Harness, tmp_path: Path
) -> None:
    sam = signed_in(browser, url, token_for(h.client.store, "sam"))
    running = valuecanvas_release(h.client, stop_at="rollout_api", status="running")
    first = off_the_loop(h.start, tmp_path / "gated.yaml", user="casey")
    h.wait_for_gate(first.id, "go_ahead")
    sam.goto(f"{url}/releases")
    mine = sam.locator("#mine li")
    expect(mine).to_have_count(1)
    expect(mine.first).to_contain_text("go_ahead: ship it?")
    expect(sam.locator("#running")).to_contain_text("valuecanvas v1.4.0 → production")
    # waiting for you, then running, then what is live, then every release
    tops = sam.evaluate(
        "['mine', 'running', 'live-now', 'rows'].map("
        "id => document.getElementById(id).getBoundingClientRect().top)"
    )
    assert tops == sorted(tops)
    # another gate that waits for sam appears without a reload
    second = off_the_loop(h.start, tmp_path / "gated.yaml", user="casey")
    h.wait_for_gate(second.id, "go_ahead")
    expect(mine).to_have_count(2)
    # the starter is not asked (separation of duties)
    casey = signed_in(browser, url, token_for(h.client.store, "casey"))
    expect(casey.locator("#mine")).to_contain_text("No gate is waiting for you.")
    sam.click(f"#mine a[href='/releases/{first.id}#gate-go_ahead']")
    expect(sam.locator("#gate-go_ahead button.approve")).to_be_in_viewport()
    for r in (first, second, running):
        off_the_loop(h.client.cancel, r.id, user="casey", reason="test over")


#: axe-core, the accessibility rules engine (tests/data/axe-core/SOURCES.md: MPL-2.0)
AXE = Path(__file__).parents[1] / "data" / "axe-core" / "axe.min.js"
SERIOUS = """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
  .filter(v => ['serious', 'critical'].includes(v.impact))
  .map(v => v.id + ' (' + v.nodes.length + '): ' + v.nodes.slice(0, 3)
    .map(n => n.target.join(' ')).join(', '))"""


@pytest.fixture
def every_page(h: Harness, tmp_path: Path) -> list[str]:
    """The dashboard's pages, each with something on it: a waiting gate, a failed
    ValueCanvas release (its metrics analysis drawn), an incident."""
    token_for(h.client.store, "sam")
    failed = valuecanvas_release(h.client, stop_at="rls_logs_checked")  # metrics drawn
    waiting = off_the_loop(h.start, tmp_path / "gated.yaml", user="casey")
    h.wait_for_gate(waiting.id, "go_ahead")
    off_the_loop(h.client.open_incident, severity="P1", summary="checkout 502", user="sam")
    rehearsal = kept_rehearsal(h.settings, tmp_path)
    return [
        "/releases",
        f"/releases/{failed.id}",
        f"/releases/{waiting.id}",
        "/incidents",
        "/workers",
        "/audit",
        "/rehearsals",
        f"/rehearsals/{rehearsal}",
    ]


#: the screens and colour schemes every page is looked at in
SCREENS = [(1280, "light"), (390, "light"), (1280, "dark"), (390, "dark")]


def test_every_page_fits_a_phone_works_in_dark_mode_and_has_no_serious_axe_violation(
    browser: Browser, url: str, h: Harness, every_page: list[str]
) -> None:
    """Each screen in its own browser context, over the same releases (building them again
    for each screen took about 4 s of the engine's time a screen)."""
    token = token_for(h.client.store, "sam")
    backgrounds: dict[str, str] = {}
    too_wide: dict[str, dict[str, int]] = {}
    violations: dict[str, dict[str, Any]] = {}
    for width, scheme in SCREENS:
        context = browser.new_context(
            viewport={"width": width, "height": 844},
            color_scheme=scheme,  # type: ignore[arg-type]
            bypass_csp=True,  # to inject axe; the dashboard's own CSP allows no inline script
        )
        page = context.new_page()
        page.goto(f"{url}/login")
        found = {"/login": page.evaluate("document.documentElement.scrollWidth")}
        problems = {"/login": (page.add_script_tag(path=str(AXE)), page.evaluate(SERIOUS))[1]}
        page.fill("input[name=token]", token)
        page.click("button[type=submit]")
        expect(page).to_have_url(f"{url}/releases")
        for path in every_page:
            page.goto(f"{url}{path}")
            found[path] = page.evaluate("document.documentElement.scrollWidth")
            page.add_script_tag(path=str(AXE))
            problems[path] = page.evaluate(SERIOUS)
            if path.startswith(("/releases/", "/rehearsals/")):  # for a person to look at
                shot = f"{path.rsplit('/', 1)[-1]}-{width}-{scheme}.png"
                page.screenshot(path=str(SCREENSHOTS / shot))
        screen = f"{width}-{scheme}"
        backgrounds[screen] = page.evaluate("getComputedStyle(document.body).backgroundColor")
        too_wide[screen] = {p: w for p, w in found.items() if w > width}
        violations[screen] = {p: v for p, v in problems.items() if v}
        context.close()
    assert backgrounds == {
        f"{w}-{s}": "rgb(13, 17, 23)" if s == "dark" else "rgb(246, 248, 250)" for w, s in SCREENS
    }
    assert too_wide == {f"{w}-{s}": {} for w, s in SCREENS}
    assert violations == {f"{w}-{s}": {} for w, s in SCREENS}
    h.client.cancel(every_page[2].rsplit("/", 1)[-1], user="casey", reason="test over")


def test_a_gate_is_decided_with_the_keyboard_alone(
    browser: Browser, url: str, h: Harness, tmp_path: Path
) -> None:
    release = off_the_loop(h.start, tmp_path / "gated.yaml", user="casey")
    h.wait_for_gate(release.id, "go_ahead")
    sre = signed_in(browser, url, token_for(h.client.store, "sam"))
    sre.goto(f"{url}/releases/{release.id}")
    # the page opens on the step that waits, with the keyboard's focus on it
    expect(sre.locator("#step-go_ahead")).to_be_focused()
    for _ in range(80):  # back up to the gate's comment field, one Shift+Tab at a time
        if sre.evaluate("document.activeElement.id") == "comment-go_ahead":
            break
        sre.keyboard.press("Shift+Tab")
    expect(sre.locator("#comment-go_ahead")).to_be_focused()
    sre.keyboard.type("approved from the keyboard")
    sre.keyboard.press("Tab")
    expect(sre.locator("#gate-go_ahead button.approve")).to_be_focused()
    sre.keyboard.press("Enter")
    expect(sre.locator("#release-status")).to_have_text("succeeded")
    [decision] = h.client.store.list_decisions(release.id, "go_ahead")
    assert (decision.user, decision.comment) == ("sam", "approved from the keyboard")


def test_a_metrics_analysis_is_drawn_against_its_thresholds(
    browser: Browser, url: str, h: Harness
) -> None:
    token = token_for(h.client.store, "sam")
    release = valuecanvas_release(h.client, stop_at="rls_logs_checked")
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.goto(f"{url}/login?next=/releases/{release.id}")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    errors = page.locator("#metric-metrics_analysis-error_rate")
    expect(errors.locator("figcaption")).to_contain_text("error_rate < 0.01")
    expect(errors.locator("figcaption")).to_contain_text("3 passed, 0 failed, 0 inconclusive")
    expect(errors.locator("circle.point.passed")).to_have_count(3)
    # the threshold is drawn above every measurement (all passed, below it)
    line = float(errors.locator("line.threshold").get_attribute("y1") or "nan")
    heights = [float(c.get_attribute("cy") or "nan") for c in errors.locator("circle").all()]
    assert all(line < y for y in heights)  # SVG y grows downwards
    latency = page.locator("#metric-metrics_analysis-p95_latency")
    expect(latency.locator("figcaption")).to_contain_text("< 0.5s")
    expect(latency.locator("figcaption")).to_contain_text("1 inconclusive")
    expect(latency.locator("text.point.inconclusive title")).to_have_text(
        "round 2: inconclusive (no data (empty result))"
    )
    expect(latency.locator("svg")).to_have_attribute(
        "aria-label", re.compile("round 2 no value inconclusive")
    )
    # the Grafana window is a link
    page.locator("#step-metrics_analysis #outputs-metrics_analysis summary").click()
    expect(
        page.locator("#step-metrics_analysis a[href^='https://grafana.valuecanvas.com/d/']")
    ).to_be_visible()


def test_a_running_steps_log_grows_in_the_page_and_its_search_stays(
    browser: Browser, url: str, h: Harness, tmp_path: Path
) -> None:
    more, again, last, done = (tmp_path / name for name in ("more", "again", "last", "done"))

    def wait_for(marker: Path) -> str:
        return f"            while [ ! -e '{marker}' ]; do sleep 0.1; done\n"

    # what the step prints is not in its command line (which its log shows first); more
    # lines than the log's box holds
    runbook = write_runbook(
        tmp_path,
        "name: tailing\nenvironment: staging\nphases:\n  - id: build\n    steps:\n"
        "      - id: compile\n        action: shell\n        with:\n          command: |\n"
        '            for i in $(seq 1 60); do echo "fill $i"; done\n'
        '            echo "alpha $((0 + 1))"\n            echo "beta $((1 + 1))"\n'
        + wait_for(more)
        + '            echo "beta $((2 + 1))"\n            echo "gamma $((3 + 1))"\n'
        + wait_for(again)
        + '            echo "epsilon $((6 + 1))"\n'
        + wait_for(last)
        + '            echo "beta $((4 + 1))"\n            echo "delta $((5 + 1))"\n'
        + wait_for(done),
        "tailing.yaml",
    )
    geometry = "pre => [pre.scrollTop, pre.clientHeight, pre.scrollHeight]"

    def at_end(log: Locator) -> None:
        """The log shows its newest lines (it follows them within the page's second). Looked
        at through the locator each time, not through a handle taken once: a handle kept
        the element the page had when it was taken, and failed with the log at its end
        (top 1072, box 384, content 1456) once the page had drawn the log anew."""

        def there() -> bool:
            top, seen, whole = log.evaluate(geometry)
            return bool(whole > seen and top + seen >= whole - 4)

        try:
            poll_until(there, WAIT_MS / 1000, what="the log at its end")
        except AssertionError as late:
            top, seen, whole = log.evaluate(geometry)
            message = f"log not at its end: top {top}, box {seen}, content {whole}"
            raise AssertionError(message) from late

    release = off_the_loop(h.start, runbook, user="casey")
    page = signed_in(browser, url, token_for(h.client.store, "sam"))
    page.goto(f"{url}/releases/{release.id}")
    page.evaluate("window.__notReloaded = true")
    step = page.locator("#step-compile")
    log = step.locator("#log-compile")
    expect(log.locator(".line", has_text="beta 2")).to_have_count(1)
    expect(step).to_have_attribute("data-status", "running")
    at_end(log)  # the newest lines in view

    more.touch()  # the step prints more: the log follows it
    expect(log.locator(".line", has_text="gamma 4")).to_have_count(1)
    at_end(log)

    # the viewer scrolls up to read: new lines do not pull the log away from there
    log.hover()
    page.mouse.wheel(0, -240)
    page.wait_for_function(  # up, and come to rest (a wheel's scroll is smooth)
        "pre => { const top = pre.scrollTop, rest = pre.lastTop === top; pre.lastTop = top;"
        " return rest && top + pre.clientHeight < pre.scrollHeight - 100; }",
        arg=log.element_handle(),
        polling=100,
    )
    reading = log.evaluate("pre => pre.scrollTop")
    again.touch()
    expect(log.locator(".line", has_text="epsilon 7")).to_have_count(1)
    top, seen, whole = log.evaluate(geometry)
    assert abs(top - reading) <= 4, (reading, top)
    assert top + seen < whole - 100, (top, seen, whole)

    search = step.locator("input.log-search")
    search.fill("beta")
    expect(log.locator(".line.miss", has_text="alpha 1")).to_have_count(1)
    last.touch()  # the step prints more while the viewer's search is on
    expect(log.locator(".line", has_text="delta 6")).to_have_count(1)
    expect(step).to_have_attribute("data-status", "running")
    expect(step.locator("input.log-search")).to_have_value("beta")
    expect(log.locator(".line:not(.miss)", has_text="beta 5")).to_have_count(1)
    expect(log.locator(".line.miss", has_text="delta 6")).to_have_count(1)
    # three in the command line (the log's first lines), three printed
    expect(step.locator(".matches")).to_contain_text("6 of")
    assert page.evaluate("window.__notReloaded") is True  # grew live, not reloaded

    done.touch()
    expect(step).to_have_attribute("data-status", "succeeded")
    assert off_the_loop(h.wait, release.id).status == "succeeded"
