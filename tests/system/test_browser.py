"""The pages in a real browser: Debian's Chromium, headless, driven by Playwright, against the app
served by gunicorn on loopback. Every page is checked with axe-core and photographed.

Screenshots go to ``build/screenshots`` (or ``$OUTREACH_SCREENSHOTS``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.homes import (
    Released,
    ReviewSite,
    Site,
    copy_released,
    copy_site,
)
from tests.support.specs import ROOT
from tests.support.web import free_port as _free_port

CHROMIUM = os.environ.get("OUTREACH_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(os.environ.get("OUTREACH_SCREENSHOTS", ROOT / "build" / "screenshots"))
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def server(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Site]]:
    """The site served by gunicorn (through ``outreach serve``) on a free loopback port."""
    yield from _serve(copy_site(site, tmp_path_factory.mktemp("browser")), watch=0)


def _serve(own: Site, *, watch: float) -> Iterator[tuple[str, Site]]:
    port = _free_port()
    env = {
        **os.environ,
        "OUTREACH_HOME": str(own.home.root),
        "OUTREACH_DATABASE_URL": own.database_url,
        "OUTREACH_WATCH_SECONDS": str(watch),
    }
    outreach = Path(sys.executable).with_name("outreach")
    log = (own.home.root / "gunicorn.log").open("w")
    process = subprocess.Popen(
        [str(outreach), "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90  # as tests/support/servers.py: a loaded machine is slow
    while True:
        try:
            with urllib.request.urlopen(f"{base}/api/v1/readyz", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            log.close()
            pytest.fail(
                "the service did not start:\n" + (own.home.root / "gunicorn.log").read_text()
            )
        time.sleep(0.25)
    try:
        yield base, own
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is needed at {CHROMIUM} (make test installs it with apt)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.on("dialog", lambda dialog: dialog.accept())
    yield opened
    context.close()


def check(page: Page, name: str) -> None:
    """No accessibility violations (axe-core), and a full-page screenshot."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    results = Axe().run(page)
    violations = [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes'][:3]]}"
        for v in results.response["violations"]
    ]
    assert not violations, f"{name}: " + "\n".join(violations)


def sign_in(page: Page, base: str, site: Site, role: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("User name").fill(site.user(role))
    page.get_by_label("Password").fill(site.passwords[role])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def test_sign_in_page_works_from_the_keyboard(page: Page, server: tuple[str, Site]) -> None:
    base, site = server
    page.goto(f"{base}/login")
    check(page, "01-sign-in")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to the main content")).to_be_focused()
    page.keyboard.press("Enter")  # the skip link: the next Tab starts in the main content
    page.keyboard.press("Tab")
    expect(page.get_by_label("User name")).to_be_focused()
    page.keyboard.type(site.user("coordinator"))
    page.keyboard.press("Tab")
    page.keyboard.type(site.passwords["coordinator"])
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Outreach list")


def test_coordinator_list_person_outcome_and_opt_out(page: Page, server: tuple[str, Site]) -> None:
    base, site = server
    sign_in(page, base, site, "coordinator")
    expect(page).to_have_url(re.compile(r"/outreach/$"))
    check(page, "02-coordinator-list")
    rows = page.locator("table.queue tbody tr")
    expect(rows).to_have_count(50)
    person = rows.first.locator("th").inner_text().strip()
    page.get_by_label("Band").select_option("priority")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#count")).to_contain_text("with these filters")
    check(page, "03-coordinator-list-filtered")

    page.goto(f"{base}/outreach/")
    page.get_by_role("link", name=person, exact=True).first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Person {person}")
    expect(page.locator("figure.chart svg")).to_be_visible()
    check(page, "04-coordinator-person")

    page.get_by_label("Accepted help").check()
    page.get_by_label("Note (optional; no health details)").fill("agreed to meet next week")
    page.get_by_role("button", name="Save the outcome").click()
    expect(page.get_by_role("status")).to_contain_text("Recorded: Accepted help.")
    expect(page.get_by_role("cell", name="agreed to meet next week")).to_be_visible()
    check(page, "05-coordinator-outcome-recorded")

    page.get_by_role("button", name="They asked not to be contacted").click()
    expect(page.get_by_role("status")).to_contain_text("asked not to be contacted")
    page.goto(f"{base}/outreach/")
    expect(page.locator("table.queue")).not_to_contain_text(f"\n{person}\n")
    listed = page.locator("table.queue tbody tr th").all_inner_texts()
    assert person not in [t.strip() for t in listed]

    page.goto(f"{base}/oversight/releases")
    expect(page.get_by_role("heading", level=1)).to_have_text("Not open to you")
    check(page, "06-coordinator-refused-oversight")


def fits_the_width(page: Page) -> None:
    """The page needs no sideways scroll at the viewport's width."""
    width = page.viewport_size["width"] if page.viewport_size else 0
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"{page.url}: {scroll} px wide at a {width} px viewport"


def at_both_widths(page: Page, name: str, *, fits: bool = True) -> None:
    """Checked and photographed at 1280 px, then at a phone's 390 px (with ``fits``: no
    sideways scroll there)."""
    page.set_viewport_size({"width": 1280, "height": 900})
    check(page, f"{name}-1280")
    page.set_viewport_size({"width": 390, "height": 844})
    if fits:
        fits_the_width(page)
    check(page, f"{name}-390")
    page.set_viewport_size({"width": 1280, "height": 900})


def test_coordinator_phone_round_on_an_older_month(page: Page, server: tuple[str, Site]) -> None:
    """List -> an older month, filtered, page 2 -> a person -> an outcome that lands on that
    month's entry -> back to the same list view; the round's tools; at 1280 and 390 px."""
    base, site = server
    sign_in(page, base, site, "coordinator")
    months = page.get_by_label("Month").locator("option").all_inner_texts()
    older = months[1]
    page.get_by_label("Month").select_option(older)
    page.get_by_label("Status").select_option("to_call")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Outreach list for {older}")
    expect(page.locator("#count")).to_contain_text("with these filters; page 1 of")
    page.get_by_role("link", name="Next page").click()
    expect(page.locator("#count")).to_contain_text("page 2 of")
    listing = page.url
    at_both_widths(page, "20-coordinator-older-month-to-call")

    row = page.locator("table.queue tbody tr").first
    person = row.locator("th").inner_text().strip()
    place = row.locator("td").first.inner_text().strip()
    row.get_by_role("link", name=person, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Person {person}")
    expect(page.locator("#place")).to_contain_text(f"{older}, number {place} on the list")
    at_both_widths(page, "21-coordinator-person-older-month")

    page.get_by_label("Could not reach").check()
    page.get_by_label("Note (optional; no health details)").fill("no answer, try Thursday")
    page.get_by_role("button", name="Save the outcome").click()
    expect(page.get_by_role("status")).to_contain_text("Recorded: Could not reach.")
    history = page.get_by_role("row").filter(has_text="no answer, try Thursday")
    expect(history).to_contain_text(older)
    expect(page.locator("#place")).to_contain_text(older)

    page.get_by_role("link", name=f"Back to the outreach list for {older}").click()
    assert page.url == listing
    expect(page.locator("#count")).to_contain_text("page 2 of")
    expect(page.get_by_label("Month")).to_have_value(older)
    expect(page.get_by_label("Status")).to_have_value("to_call")

    page.get_by_role("link", name=re.compile("^Print the whole list")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        f"Phone round: outreach list for {older}"
    )
    expect(page.get_by_role("columnheader", name="Outcome of this call")).to_be_visible()
    check(page, "22-coordinator-printed-round")

    page.goto(f"{base}/outreach/")
    page.get_by_label("Find a person by id").fill(person)
    page.get_by_role("button", name="Find").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Person {person}")


def test_public_transparency_and_a_mistyped_password(page: Page, server: tuple[str, Site]) -> None:
    """Someone who got a letter reads their choices first; a wrong password keeps the name;
    an unknown address says so in the project's words."""
    base, site = server
    page.goto(f"{base}/transparency")
    choices = page.get_by_role("region", name="If you were offered help: your choices")
    expect(choices).to_contain_text("To say no to this offer")
    expect(choices).to_contain_text("To not be contacted again")
    expect(choices).to_contain_text("To ask a person to look again")
    top = page.evaluate(
        "document.getElementById('your-choices').getBoundingClientRect().top + window.scrollY"
    )
    assert top < 400, f"the choices start {top} px down the page"
    expect(page.locator("main")).not_to_contain_text("naming the groups below")
    at_both_widths(page, "23-public-transparency")

    page.goto(f"{base}/login")
    page.get_by_label("User name").fill(site.user("coordinator"))
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("The user name or password is not right.")
    expect(page.get_by_label("User name")).to_have_value(site.user("coordinator"))
    expect(page.get_by_label("Password")).to_be_focused()
    at_both_widths(page, "24-sign-in-wrong-password")

    page.goto(f"{base}/no-such-page")
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    expect(page.locator("main")).to_contain_text("There is no page at this address.")
    check(page, "25-not-found")


def test_coordinator_reads_about_this_score_and_prints_an_explanation(
    page: Page, server: tuple[str, Site]
) -> None:
    base, site = server
    sign_in(page, base, site, "coordinator")
    page.get_by_role("link", name="About this score").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("About this score")
    expect(page.locator("#version")).to_contain_text(f"model {site.awaiting[0]}")
    expect(page.locator("#accuracy-overall")).to_contain_text("Of the people in need")
    groups = page.locator("table.accuracy-groups")
    expect(groups.first).to_contain_text(re.compile("interval: |too few to judge"))
    expect(page.get_by_role("heading", name="The score is one input: you decide")).to_be_visible()
    check(page, "17-coordinator-about-this-score")

    page.get_by_role("link", name="Outreach list").click()
    person = page.locator("table.queue tbody tr").first.locator("th").inner_text().strip()
    page.get_by_role("link", name=person, exact=True).first.click()
    page.get_by_role("link", name="The explanation you can give them, ready to print").click()
    expect(page).to_have_url(re.compile(r"/outreach/people/.+/explanation\?period=\d{4}-\d{2}$"))
    title = page.get_by_role("heading", level=1)
    expect(title).to_have_text("An offer of help, and why you received it")
    expect(page.locator("article.letter")).to_contain_text(f"Reference: {person}.")
    expect(page.get_by_role("button", name="Print")).to_be_visible()
    check(page, "18-coordinator-explanation")

    page.emulate_media(media="print")
    expect(page.locator("header.site")).to_be_hidden()
    expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
    expect(page.get_by_role("button", name="Print")).to_be_hidden()
    expect(title).to_be_visible()
    expect(page.get_by_role("heading", name="How to contact us")).to_be_visible()
    page.screenshot(path=str(SHOTS / "19-coordinator-explanation-printed.png"), full_page=True)
    pdf = page.pdf(format="A4", print_background=False)
    assert pdf.startswith(b"%PDF-")
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert pages == 1, f"the printed explanation takes {pages} pages, not one"
    (SHOTS / "19-coordinator-explanation.pdf").write_bytes(pdf)
    page.emulate_media(media="screen")
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()


def test_oversight_report_compare_and_approve(page: Page, server: tuple[str, Site]) -> None:
    base, site = server
    name, version = site.awaiting
    sign_in(page, base, site, "oversight")
    expect(page.get_by_role("heading", level=1)).to_have_text("Releases")
    summary = page.locator(f"#summary-{name}-{version}")
    expect(summary).to_contain_text(re.compile(r"Version \d+: awaiting the board's decision"))
    expect(summary).to_contain_text("What approving commits the board to:")
    expect(page.locator(".why-served").first).to_contain_text(re.compile("[Ss]erved"))
    at_both_widths(page, "07-oversight-releases", fits=False)

    page.get_by_role("link", name=re.compile(r"^report")).first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Fairness audit")
    expect(page.locator(".report svg").first).to_be_visible()
    expect(page.locator("#decision-headline")).to_contain_text(re.compile("^(PASS|REVIEW|FAIL): "))
    at_both_widths(page, "08-oversight-report", fits=False)

    page.get_by_role("link", name="Compare audits").click()
    page.get_by_role("button", name="Compare").click()
    expect(page.get_by_role("heading", name="Gated disparities side by side")).to_be_visible()
    check(page, "09-oversight-compare")

    page.get_by_role("link", name="Releases").click()
    form = page.locator("form.decide").filter(has_text=f"Approve version {version}")
    form.get_by_label("Note for the record").fill("gaps are within the policy's limits")
    form.get_by_role("button", name=f"Approve version {version}").click()
    expect(page.get_by_role("status")).to_contain_text(
        f"Approved {name} version {version}; it is now in production."
    )
    expect(page.get_by_text("gaps are within the policy's limits")).to_be_visible()
    check(page, "10-oversight-approved")

    for link, heading, shot in [
        ("Policy", "The fairness policy in force", "11-oversight-policy"),
        ("Monitoring", "Monitoring", "12-oversight-monitoring"),
        ("Access log", "Access log", "13-oversight-access-log"),
    ]:
        page.get_by_role("link", name=link, exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_contain_text(heading)
        check(page, shot)
    expect(page.get_by_role("status")).to_contain_text("The chain is intact")


@pytest.fixture(scope="module")
def review_server(
    review_site: ReviewSite, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Site, str]]:
    """A copy of the site with a REVIEW release awaiting the board (the gate left open
    questions), served by workers that poll the registry every second: yields the base address,
    the site and the REVIEW version."""
    own = copy_site(review_site.site, tmp_path_factory.mktemp("browser-review"))
    for base, served in _serve(own, watch=1):
        yield base, served, review_site.version


def test_board_reads_the_summary_approves_a_review_and_confirms_a_withdrawal(
    page: Page, browser: Browser, review_server: tuple[str, Site, str]
) -> None:
    """Board: release summary -> approve a REVIEW -> ask for a re-audit -> withdraw, with its
    confirmation step; at 1280 and 390 px, nothing scrolling sideways. Then a coordinator's
    list is paused, with the board's note, within a poll of every worker."""
    base, site, version = review_server
    name = site.awaiting[0]
    sign_in(page, base, site, "oversight")
    summary = page.locator(f"#summary-{name}-{version}")
    expect(summary).to_contain_text(re.compile(r"Version \d+: awaiting the board.s decision"))
    expect(summary).to_contain_text("REVIEW: ")
    expect(summary).to_contain_text("What approving commits the board to:")
    row = page.locator(f"#version-{name}-{version}")
    expect(row.get_by_role("button", name=f"Approve version {version}")).to_be_visible()
    expect(row.get_by_role("button", name=f"Reject version {version}")).to_be_visible()
    expect(page.locator("main code")).to_have_count(0)  # buttons, never command lines
    at_both_widths(page, "26-board-release-summary")

    row.get_by_label("Note for the record").fill("we take on the open questions listed")
    row.get_by_role("button", name=f"Approve version {version}").click()  # confirmed
    expect(page.get_by_role("status")).to_contain_text(
        f"Approved {name} version {version}; it is now in production."
    )
    row = page.locator(f"#version-{name}-{version}")
    expect(row).to_contain_text("In production")
    expect(row.locator(".monitoring-status")).to_contain_text("Not monitored yet")
    expect(row).to_contain_text("Took on the groups the audit could not judge")
    row.get_by_label("Why a re-audit (kept on the record)").fill("check the spring months")
    row.get_by_role("button", name=f"Ask for a re-audit of version {version}").click()
    expect(page.get_by_role("status")).to_contain_text(f"Asked for a re-audit of {name}")
    at_both_widths(page, "27-board-approved-review")

    form = page.locator(f"#version-{name}-{version} form.withdraw")
    form.get_by_label("Why (kept on the record)").fill("a gap was found in the spring list")
    form.get_by_role("button", name=f"Withdraw {name}").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Withdraw {name}?")
    confirmation = page.locator("#withdraw-confirmation")
    expect(confirmation).to_contain_text(f"version {version} is in production")
    expect(confirmation).to_contain_text("a gap was found in the spring list")
    expect(page.get_by_role("link", name=f"Cancel: keep {name} served")).to_be_visible()
    at_both_widths(page, "28-board-withdraw-confirmation")
    page.get_by_role("button", name=f"Withdraw {name} now").click()
    expect(page.get_by_role("status")).to_contain_text(f"Withdrew {name}")
    expect(page.locator(f"#version-{name}-{version}")).to_contain_text("Withdrawn")
    expect(
        page.get_by_role("cell", name=re.compile("^Withdrawn by .*: not served"))
    ).to_be_visible()
    at_both_widths(page, "29-board-withdrawn")

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    coordinator = context.new_page()
    sign_in(coordinator, base, site, "coordinator")
    deadline = time.monotonic() + 15  # within a poll interval of every worker
    while True:
        coordinator.goto(f"{base}/outreach/")
        heading = coordinator.get_by_role("heading", level=1).inner_text()
        if heading == "Outreach is paused" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    expect(coordinator.get_by_role("heading", level=1)).to_have_text("Outreach is paused")
    expect(coordinator.locator(".paused")).to_contain_text("a gap was found in the spring list")
    check(coordinator, "16-coordinator-paused")
    context.close()


def test_analyst_versions(page: Page, server: tuple[str, Site]) -> None:
    base, site = server
    sign_in(page, base, site, "analyst")
    expect(page.get_by_role("heading", level=1)).to_have_text("Registered model versions")
    expect(page.get_by_role("link", name=re.compile("open")).first).to_have_attribute(
        "href", re.compile(r"^http://127\.0\.0\.1:5000/#/models/")
    )
    check(page, "14-analyst-versions")


@pytest.fixture(scope="module")
def monitored(
    labelled: Released, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Site, Released]]:
    """Months after release, served: two months scored with the evaluation lottery and outcomes
    recorded, the earlier one's labels ingested (help prevented some crises), the later one
    still waiting for its labels."""
    from store.accounts import add_user

    own = copy_released(labelled, tmp_path_factory.mktemp("browser-monitoring"))
    db = own.db
    passwords = {role: f"{role}-password-for-monitoring" for role in ("oversight", "analyst")}
    for role, password in passwords.items():
        add_user(db, f"{role}-user", role, password=password)
    site = Site(own.home, own.database_url, passwords, ("", ""))
    for base, served in _serve(site, watch=0):
        yield base, served, own


def test_oversight_reads_the_months_after_release(
    page: Page, monitored: tuple[str, Site, Released]
) -> None:
    base, site, own = monitored
    labelled, waiting = own.periods
    sign_in(page, base, site, "oversight")
    page.get_by_role("link", name="Monitoring", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Monitoring")
    page.get_by_role("link", name=labelled, exact=True).click()
    expect(page.locator("#status")).to_contain_text("re-audit recommended", ignore_case=True)
    performance = page.locator("#performance-table")
    expect(performance).to_contain_text("Everyone")
    expect(performance).not_to_contain_text("no labels yet")
    expect(page.locator("#realised-verdict")).to_have_text(re.compile("PASS|REVIEW|FAIL"))
    expect(page.locator("#drift-table")).to_contain_text("(the score)")
    expect(page.locator(".funnel-table").first).to_contain_text("Offered")
    evaluation = page.locator("#evaluation-table")
    expect(evaluation).to_contain_text("with an offer")
    assert page.locator("figure.chart svg").count() >= 6
    at_both_widths(page, "14-oversight-monitoring-after-release")

    page.get_by_role("link", name=waiting, exact=True).click()
    expect(page.locator("#performance-table")).to_contain_text("no labels yet")
    expect(page.get_by_text("The arm's estimates need this month's labels.")).to_be_visible()
    check(page, "15-oversight-monitoring-awaiting-labels")


def test_analyst_opens_monitoring(page: Page, monitored: tuple[str, Site, Released]) -> None:
    base, site, _ = monitored
    sign_in(page, base, site, "analyst")
    page.get_by_role("link", name="Monitoring", exact=True).click()
    expect(
        page.get_by_role("heading", level=2, name="The funnel by group: offered, reached, helped")
    ).to_be_visible()
    at_both_widths(page, "30-analyst-monitoring")
    # Tables of numbers stack into cards on a phone; each page's length is measured.
    page.set_viewport_size({"width": 390, "height": 844})
    for table in page.locator("table.stacked").all()[:3]:
        expect(table.locator("td[data-label]").first).to_be_attached()
    tall = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": 1280, "height": 900})
    wide = page.evaluate("document.documentElement.scrollHeight")
    (SHOTS / "30-analyst-monitoring-heights.txt").write_text(f"1280: {wide} px\n390: {tall} px\n")
    assert wide < 25_200, f"the monitoring page is {wide} px long at 1280 px"
