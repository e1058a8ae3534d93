"""The operator's status page (issue 17) in Debian's Chromium, against xprov, Kamailio and
coturn at two sites: what it shows, to whom, its actions, and how it lives through a switch,
a reload and a server that stops. The DOM is the one of the issue's contract; every wait
is bounded (Playwright's expectations and wait_for_function, or `wait_for` on /status)."""

from __future__ import annotations

import datetime as dt
import json
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.browser.pages import NARROW, WIDE, watched
from tests.browser.world import (
    DOWN_BUDGET,
    PAGE_REFRESH,
    PHONES,
    SERVICES,
    TOKEN,
    SiteWorld,
)
from tests.helpers import XPROV, wait_for

# seconds from a switch logged by xprov to the page showing it (the bound)
SHOWN_WITHIN = 2.0
# seconds without an answer before the page says the connection is lost (the contract)
LOST_AFTER = max(5.0, 3 * PAGE_REFRESH)
DRILL_POLL = 5.0  # seconds between two polls of a simulated phone
CLOCK = re.compile(r"\b(\d{1,2}):(\d{2}):(\d{2})\b")
# what the strips show, counted from /status's results (it keeps a bounded number of them)
RECENT_RANGE = re.compile(
    r"Recent probes: (up to )?the last \d+ results? of each target "
    r"\(since \d\d:\d\d:\d\d\), oldest left"
)
MAX_TOKEN_CHARS = 1024  # the longest token the page sends (app.js)


# -- helpers ------------------------------------------------------------------------------
def sign_in(page: Page, world: SiteWorld, token: str = TOKEN) -> None:
    """Open the page and give it `token` through its login form."""
    if page.url != world.url:
        page.goto(world.url)
    page.get_by_label("Admin token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def signed_in(page: Page, world: SiteWorld) -> Page:
    """Signed in with the right token, the dashboard live."""
    sign_in(page, world)
    expect(page.locator("main#dashboard")).to_be_visible()
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.locator("tr.target")).to_have_count(6)
    return page


def card(page: Page, service: str):
    return page.locator(f'article.service[data-service="{service}"]')


def confirm_dialog(page: Page):
    return page.locator("dialog#confirm")


def any_numbers(text: str) -> re.Pattern[str]:
    """`text`, with any number where it has one."""
    return re.compile(re.sub(r"\d+", r"\\d+", re.escape(text)))


def status_words(status: dict[str, Any]) -> list[str]:
    """What of a status must not be in a page that was refused it: target names, site
    names, probe addresses, the config path."""
    targets = status["monitor"]["targets"]
    probes = [t["probe"].split()[-1] for t in targets.values()]  # "sip udp 127.0.0.1:5060"
    sites = {s for info in status["monitor"]["services"].values() for s in info["sites"]}
    return [*targets, *sites, *probes, status["config"]["path"]]


def assert_nothing_of(status: dict[str, Any], html: str) -> None:
    found = [word for word in status_words(status) if word in html]
    assert not found, f"the page shows {found} without a valid token"


def body_text(page: Page) -> str:
    """The texts of the header and the dashboard, hidden ones too."""
    return page.evaluate(
        """() => ["header", "main#dashboard"]
            .map(s => document.querySelector(s).textContent).join("")"""
    )


def dialog_texts(page: Page) -> list[str]:
    """The confirmation's texts that come from a status (what it would do, to what)."""
    return page.evaluate(
        """() => ["#confirm-title", "#confirm .message", "#confirm .warning"]
            .map(s => document.querySelector(s).textContent)"""
    )


def storage(page: Page) -> dict[str, Any]:
    return page.evaluate(
        """() => ({
            session: Object.fromEntries(Object.entries(sessionStorage)),
            local: Object.fromEntries(Object.entries(localStorage)),
            cookie: document.cookie,
        })"""
    )


def seconds_of_day(text: str) -> int:
    found = CLOCK.search(text)
    assert found, f"no time of day in {text!r}"
    hours, minutes, seconds = (int(x) for x in found.groups())
    return hours * 3600 + minutes * 60 + seconds


def utc_seconds_of_day(epoch: float) -> int:
    moment = dt.datetime.fromtimestamp(epoch, dt.UTC)
    return moment.hour * 3600 + moment.minute * 60 + moment.second


def between(value: int, low: int, high: int) -> bool:
    """low <= value <= high on a 24 h clock (the range may wrap at midnight)."""
    return (value - low) % 86400 <= (high - low) % 86400


@contextmanager
def other_origin(html: str) -> Iterator[str]:
    """A page of another origin (another port of 127.0.0.1) serving `html`: its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# -- a. who sees what ---------------------------------------------------------------------
def test_signed_in_page_shows_every_service_target_and_the_inventory(world, page) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    status = world.status()
    page.goto(world.url)
    skeleton = body_text(page)  # what the server sends to anyone: no data
    signed_in(page, world)

    expect(page.locator("form#login")).to_be_hidden()
    expect(page.locator("#connection")).to_have_text(re.compile(r"Live, updated \d"))
    for service in SERVICES:
        info, shown = status["monitor"]["services"][service], card(page, service)
        expect(shown.locator(".active")).to_contain_text(info["active"])
        assert info["active"] == "chicago"
        expect(shown.locator(".why")).to_contain_text(info["why"])
        expect(shown.locator(".since")).to_have_text(re.compile(r"\d"))
        expect(
            shown.get_by_role("button", name=f"Switch {service.upper()} to virginia")
        ).to_be_visible()
        expect(shown.locator("button.failover")).to_have_count(1)  # to the other site only
        expect(shown.locator("button.failback")).to_be_hidden()  # on the primary, automatic
    assert len(status["monitor"]["targets"]) == 6
    for name, target in status["monitor"]["targets"].items():
        row = page.locator(f'tr.target[data-target="{name}"]')
        expect(row.locator(".state")).to_have_attribute("data-state", "up")
        expect(row.locator(".state")).to_contain_text("up")  # not by colour alone
        expect(row.locator(".latency")).to_have_text(re.compile(r"\d"))
        # the detail's shape: its numbers change from probe to probe (STUN's mapped port)
        expect(row.locator(".detail")).to_have_text(any_numbers(target["last"]["detail"]))
        marks = row.locator(".strip span")
        expect(marks.first).to_have_attribute("data-outcome", "up")
        expect(marks.first).to_have_attribute("title", re.compile(r"\S"))
        expect(row.locator(".transitions")).to_contain_text("up")
    targets = page.locator("section#targets")
    expect(targets.locator(".legend")).to_contain_text(RECENT_RANGE)
    expect(targets.locator("thead")).to_contain_text("Recent probes")
    assert "5 minutes" not in page.content()  # /status keeps a count of results, not a time
    inventory = page.locator("section#inventory")
    expect(inventory.locator(".phones")).to_have_text(re.compile(rf"\b{PHONES}\b"))
    assert status["inventory"]["phones"] == PHONES
    expect(inventory.locator(".source")).to_contain_text("file")
    expect(inventory.locator(".generation")).to_have_text(re.compile(r"\d"))
    expect(page.locator("#process .version")).to_contain_text(status["version"])
    expect(page.locator("#process .uptime")).to_have_text(re.compile(r"\d"))
    expect(page.locator("#process .lag")).to_have_text(re.compile(r"\d"))
    expect(page.locator("progress#convergence-bar")).to_be_attached()
    expect(page.locator("section#cluster")).to_be_hidden()  # standalone

    # the token: in this tab's sessionStorage, nowhere else; no secret rendered
    kept = storage(page)
    assert kept["session"] == {"xprov.token": TOKEN}
    assert kept["local"] == {} and kept["cookie"] == ""
    assert page.context.cookies() == []
    assert TOKEN not in page.url and not [url for url in requested if TOKEN in url]
    html = page.content()
    assert not [secret for secret in world.secrets() if secret in html]

    # signing out forgets the token and everything shown, the confirmation's text too
    # a file inventory: the database's switch changes no phone's file, nor the inventory
    card(page, "db").get_by_role("button", name="Switch DB to virginia").click()
    message = confirm_dialog(page).locator(".message")
    expect(message).to_contain_text("No phone's file names the database")
    expect(message).not_to_contain_text("reads its inventory")
    confirm_dialog(page).get_by_role("button", name="Cancel").click()
    card(page, "sip").get_by_role("button", name="Switch SIP to virginia").click()
    expect(confirm_dialog(page).locator(".message")).to_contain_text("phones")
    confirm_dialog(page).get_by_role("button", name="Cancel").click()
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("form#login")).to_be_visible()
    expect(page.locator("main#dashboard")).to_be_hidden()
    assert body_text(page) == skeleton
    assert dialog_texts(page) == ["", "", ""]
    assert_nothing_of(status, page.content())
    assert storage(page)["session"] == {}
    assert page.problems == []


def test_without_a_token_or_with_a_wrong_one_nothing_of_the_status(world, page) -> None:
    status = world.status()
    page.goto(world.url)
    expect(page.locator("form#login")).to_be_visible()
    expect(page.get_by_label("Admin token")).to_have_attribute("type", "password")
    expect(page.locator("main#dashboard")).to_be_hidden()
    assert_nothing_of(status, page.content())
    skeleton = body_text(page)

    sign_in(page, world, "a-wrong-token-of-some-length")
    error = page.locator("#login-error")
    expect(error).to_have_attribute("role", "alert")
    expect(error).to_contain_text("Wrong admin token")
    expect(error).to_contain_text("401")
    expect(page.locator("form#login")).to_be_visible()
    expect(page.locator("main#dashboard")).to_be_hidden()
    assert_nothing_of(status, page.content())
    assert body_text(page) == skeleton
    assert storage(page) == {"session": {}, "local": {}, "cookie": ""}

    # a token the server could not take: refused by the form itself, no request sent
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.url))
    for refused in ("x" * 2000, "x" * (MAX_TOKEN_CHARS + 1), "dev-admin-tökén-change-me"):
        page.get_by_label("Admin token").fill(refused)
        page.get_by_role("button", name="Sign in").click()
        expect(error).to_have_text("The admin token is at most 1,024 printable ASCII characters.")
        expect(page.locator("main#dashboard")).to_be_hidden()
        page.get_by_label("Admin token").fill("")
    assert sent == [], sent
    assert storage(page) == {"session": {}, "local": {}, "cookie": ""}

    page.reload()  # nothing kept from the refused attempts either
    expect(page.locator("form#login")).to_be_visible()
    assert_nothing_of(status, page.content())
    assert page.problems == []


# -- b. a switch, live ----------------------------------------------------------------------
SWITCH_SHOWN = """([before, after]) => {
    const rows = [...document.querySelectorAll("tr.switch")];
    const text = (row, cls) => (row.querySelector(cls) || {}).textContent || "";
    const shown = rows.some(row => text(row, ".service").includes("sip")
        && text(row, ".before").includes(before) && text(row, ".after").includes(after));
    return shown ? Date.now() / 1000 : false;
}"""

CONVERGENCE_CHANGED = """([last]) => {
    const bar = document.querySelector("progress#convergence-bar");
    const generation = document.querySelector("section#convergence .generation");
    if (!bar || !generation) return false;
    const now = [bar.value, bar.max, generation.textContent.trim()];
    return JSON.stringify(now) !== JSON.stringify(last) ? now : false;
}"""


def convergence_shown(page: Page, generation: int, timeout_s: float) -> list[list[Any]]:
    """Every [value, max] the convergence bar shows for `generation`, in order, until it is
    full: each wait is for the next change the page makes."""
    seen: list[list[Any]] = []
    last: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while True:
        left_ms = max(1.0, deadline - time.monotonic()) * 1000
        last = page.wait_for_function(
            CONVERGENCE_CHANGED, arg=[last], polling=50, timeout=left_ms
        ).json_value()
        value, maximum, shown_generation = last
        if re.search(rf"\b{generation}\b", shown_generation):
            seen.append([value, maximum])
            if value == maximum and maximum > 0:
                return seen


def test_primary_softswitch_killed_the_page_shows_the_switch_and_convergence(
    fresh_world, page, tmp_path: Path, artifacts: Path
) -> None:
    world = fresh_world
    drill_log = (tmp_path / "drill.log").open("wb")
    drill = subprocess.Popen(
        [
            *XPROV,
            "drill",
            "-c",
            str(world.config),
            "--phones",
            str(PHONES),
            "--poll",
            str(DRILL_POLL),
            "--duration",
            "120",
            "--json",
        ],
        stdout=drill_log,
        stderr=subprocess.STDOUT,
    )
    try:
        signed_in(page, world)
        wait_for(
            lambda: world.status()["convergence"]["regular_phones"] == PHONES,
            6 * DRILL_POLL,
            "every simulated phone polling",
        )
        world.kill("sip", "chicago")
        try:
            shown = page.wait_for_function(
                SWITCH_SHOWN, arg=["chicago", "virginia"], polling=50, timeout=DOWN_BUDGET * 2000
            ).json_value()
        except PlaywrightTimeout as late:
            raise AssertionError(
                f"switch not shown: {world.events('switch')}, {world.service('sip')}"
            ) from late
        (event,) = wait_for(lambda: world.events("switch"), 5, "the switch in the log")
        assert (event["service"], event["before"], event["after"]) == ("sip", "chicago", "virginia")
        assert -0.5 < shown - event["at"] <= SHOWN_WITHIN, (shown, event["at"])

        row = page.locator("tr.switch").first  # newest first
        expect(row.locator(".by")).to_contain_text("auto")
        expect(row.locator(".reason")).to_contain_text("sip at chicago down")
        expect(row.locator(".detection")).to_have_text(re.compile(r"\d"))
        expect(row.locator(".at")).to_have_text(CLOCK)
        sip = card(page, "sip")
        expect(sip.locator(".active")).to_contain_text("virginia")
        expect(sip.locator(".why")).to_contain_text("sip at chicago down")
        expect(page.locator('tr.target[data-target="sip@chicago"] .state')).to_have_attribute(
            "data-state", "down"
        )
        expect(sip.get_by_role("button", name="Fail back SIP to chicago")).to_be_visible()
        # to the primary only by failing back: a manual switch there would pin it
        expect(sip.locator("button.failover")).to_have_count(0)
        detected = page.locator("section#switches thead th").last
        expect(detected).to_contain_text("Detected after")
        expect(detected).to_have_attribute("title", re.compile("first failed probe"))

        # the simulated phones fetch the new address, the bar fills as they do
        generation = world.status()["convergence"]["generation"]
        seen = convergence_shown(page, generation, 4 * DRILL_POLL)
        values = [value for value, _ in seen]
        assert all(maximum == PHONES for _, maximum in seen), seen
        assert values == sorted(values) and len(set(values)) >= 2, seen
        assert values[0] < PHONES and values[-1] == PHONES, seen
        convergence = page.locator("section#convergence")
        expect(convergence.locator(".percent")).to_contain_text("100")
        expect(convergence.locator(".pending")).to_have_text(re.compile(r"\b0\b"))
        expect(convergence.locator(".fetched")).to_have_text(re.compile(rf"\b{PHONES}\b"))
        expect(convergence.locator(".slowest")).to_have_text(re.compile(r"\d"))
        final = world.status()["convergence"]
        assert (final["fetched"], final["regular_phones"]) == (PHONES, PHONES)
        page.screenshot(path=artifacts / "status-page-after-switch.png", full_page=True)
        assert page.problems == []
    finally:
        drill.kill()
        drill.wait(10)
        drill_log.close()


# -- c. actions -----------------------------------------------------------------------------
def test_failover_and_failback_buttons_with_confirmation(world, page) -> None:
    try:
        signed_in(page, world)
        switches = len(world.status()["monitor"]["switches"])
        sip, dialog = card(page, "sip"), confirm_dialog(page)

        sip.get_by_role("button", name="Switch SIP to virginia").click()
        expect(dialog).to_be_visible()
        message = dialog.locator(".message")
        expect(message).to_contain_text(re.compile(r"\d+ phones?"))
        expect(message).to_contain_text("reboot")
        expect(message).to_contain_text(re.compile(r"fail ?back", re.IGNORECASE))
        expect(dialog.locator("#confirm-force")).not_to_be_checked()
        dialog.get_by_role("button", name="Cancel").click()
        expect(dialog).to_be_hidden()
        info = world.service("sip")
        assert (info["active"], info["manual"]) == ("chicago", None)
        assert len(world.status()["monitor"]["switches"]) == switches
        expect(sip.locator(".active")).to_contain_text("chicago")

        sip.get_by_role("button", name="Switch SIP to virginia").click()
        expect(dialog).to_be_visible()
        dialog.locator("button.confirm").click()
        expect(dialog).to_be_hidden()
        expect(page.locator("#action-result")).to_have_attribute("data-outcome", "ok")
        expect(sip.locator(".active")).to_contain_text("virginia")
        expect(sip.locator(".manual")).to_contain_text("127.0.0.1")  # who chose it
        info = world.service("sip")
        assert (info["active"], info["manual"]) == ("virginia", "virginia")
        assert info["manual_by"].startswith("admin")
        newest = page.locator("tr.switch").first
        expect(newest.locator(".by")).to_contain_text("operator")
        expect(newest.locator(".after")).to_contain_text("virginia")
        expect(sip.locator("button.failover")).to_have_count(0)  # chicago: by failing back

        sip.get_by_role("button", name="Fail back SIP to chicago").click()
        expect(dialog).to_be_visible()
        expect(message).to_contain_text("chicago's SIP address")
        expect(message).to_contain_text("returns to its primary site chicago")
        dialog.locator("button.confirm").click()
        expect(page.locator("#action-result")).to_have_attribute("data-outcome", "ok")
        expect(sip.locator(".active")).to_contain_text("chicago")
        expect(sip.locator("button.failback")).to_be_hidden()
        info = world.service("sip")
        assert (info["active"], info["manual"]) == ("chicago", None)

        # pinned at the primary (through the API): failing back only releases the pin
        answer = world.request("POST", "/failover", {"service": "sip", "site": "chicago"})
        assert answer.code == 200, answer.body
        sip.get_by_role("button", name="Fail back SIP to chicago").click()
        expect(dialog).to_be_visible()
        expect(message).to_have_text(
            "SIP stays at chicago; the monitor decides again from now on "
            "(phones fetch nothing new)."
        )
        dialog.locator("button.confirm").click()
        expect(page.locator("#action-result")).to_have_attribute("data-outcome", "ok")
        expect(sip.locator("button.failback")).to_be_hidden()
        info = world.service("sip")
        assert (info["active"], info["manual"]) == ("chicago", None)
        assert page.problems == []
    finally:
        world.back_to_normal()


def test_failover_to_a_dead_site_is_refused_and_says_why(world, page) -> None:
    try:
        signed_in(page, world)
        world.kill("sip", "virginia")
        wait_for(lambda: world.target_state("sip@virginia") == "down", DOWN_BUDGET, "down")
        expect(page.locator('tr.target[data-target="sip@virginia"] .state')).to_have_attribute(
            "data-state", "down"
        )
        sip, dialog, result = (
            card(page, "sip"),
            confirm_dialog(page),
            page.locator("#action-result"),
        )

        sip.get_by_role("button", name="Switch SIP to virginia").click()
        expect(dialog).to_be_visible()
        dialog.locator("button.confirm").click()
        expect(result).to_have_attribute("data-outcome", "refused")
        expect(result).to_contain_text("sip at virginia is down; use force to switch anyway")
        info = world.service("sip")
        assert (info["active"], info["manual"]) == ("chicago", None)
        expect(sip.locator(".active")).to_contain_text("chicago")

        sip.get_by_role("button", name="Switch SIP to virginia").click()
        expect(dialog).to_be_visible()
        dialog.get_by_label("Force (site not up)").check()
        dialog.locator("button.confirm").click()
        expect(result).to_have_attribute("data-outcome", "ok")
        expect(sip.locator(".active")).to_contain_text("virginia")
        info = world.service("sip")
        assert (info["active"], info["manual"]) == ("virginia", "virginia")
        # held by hand at a dead site: the monitor will not move it, the page says so
        held = (
            "SIP is held at virginia by an operator's choice, and virginia is down: "
            "fail back to let the monitor decide."
        )
        expect(sip.locator(".held")).to_have_text(held)
        expect(page.locator("#alerts")).to_contain_text(held)
        assert page.problems == []
    finally:
        world.back_to_normal()


def test_cross_site_form_post_without_the_token_is_refused(world, page) -> None:
    signed_in(page, world)  # the operator's tab is open and signed in meanwhile
    before = world.status()
    target = f"{world.url}failover"
    # text/plain: the one cross-site form body that can look like JSON
    forged = (
        f'<form method="post" action="{target}" enctype="text/plain">'
        '<input name=\'{"service": "sip", "site": "virginia", "force": true, "x": "\' '
        "value='\"}'></form><script>document.forms[0].submit()</script>"
    )
    with other_origin(forged) as url:
        attacker = watched(page.context.new_page())
        with attacker.expect_response(
            lambda r: r.url == target and r.request.method == "POST"
        ) as answer:
            attacker.goto(url)
        response = answer.value
    assert json.loads(response.request.post_data or "")["site"] == "virginia"  # as meant
    assert response.status in (401, 403), response.status
    body = response.text()
    assert set(json.loads(body)) == {"error"}, body
    assert_nothing_of(before, body)
    after = world.status()
    assert after["monitor"]["services"]["sip"]["active"] == "chicago"
    assert after["monitor"]["services"]["sip"]["manual"] is None
    assert after["monitor"]["switches"] == before["monitor"]["switches"]
    assert page.problems == []


# -- d. a server that stops, and one that reloads ----------------------------------------
def test_server_stopped_connection_lost_then_recovered_without_reload(fresh_world, page) -> None:
    world = fresh_world
    page.goto(world.url)
    skeleton = body_text(page)
    signed_in(page, world)
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    page.evaluate("() => { window.sameDocument = true; }")
    connection = page.locator("#connection")
    last_live = seconds_of_day(connection.inner_text())

    world.stop_server()
    stopped = time.time()
    expect(connection).to_have_attribute("data-state", "lost", timeout=(LOST_AFTER + 5) * 1000)
    expect(connection).to_contain_text("Connection lost")
    expect(connection).to_contain_text("last update")
    last_good = seconds_of_day(connection.inner_text())
    assert between(last_good, last_live, utc_seconds_of_day(stopped)), connection.inner_text()

    world.serve()  # the same config: the same ports
    expect(connection).to_have_attribute("data-state", "live", timeout=15_000)
    expect(connection).to_contain_text("Live, updated")
    assert page.evaluate("() => window.sameDocument") is True and navigations == []
    expect(page.locator("form#login")).to_be_hidden()
    expect(page.locator("main#dashboard")).to_be_visible()
    assert storage(page)["session"] == {"xprov.token": TOKEN}

    # the token revoked (changed, and the config reloaded): back to the form, nothing kept
    config = world.config.read_text()
    assert config.count(f'token = "{TOKEN}"') == 1
    world.config.write_text(config.replace(TOKEN, "another-admin-token-0123456789"))
    assert world.xprov is not None and world.xprov.proc is not None
    world.xprov.proc.send_signal(signal.SIGHUP)
    expect(page.locator("form#login")).to_be_visible(timeout=15_000)
    expect(page.locator("#login-error")).to_contain_text("no longer accepts this token")
    expect(page.locator("main#dashboard")).to_be_hidden()
    assert body_text(page) == skeleton
    assert storage(page)["session"] == {}
    assert page.problems == []


WATCH_STATES = """() => {
    const connection = document.querySelector("#connection");
    window.states = [connection.dataset.state];
    new MutationObserver(() => window.states.push(connection.dataset.state))
        .observe(connection, {attributes: true, attributeFilter: ["data-state"]});
}"""


def test_reload_while_the_page_is_open_keeps_it_live(world, page) -> None:
    signed_in(page, world)
    page.evaluate(WATCH_STATES)
    before = world.status()["config"]
    assert world.xprov is not None and world.xprov.proc is not None
    world.xprov.proc.send_signal(signal.SIGHUP)
    wait_for(
        lambda: world.status()["config"]["reloads"]["ok"] > before["reloads"]["ok"],
        15,
        "the reload",
    )
    after = world.status()["config"]
    assert after["generation"] > before["generation"]
    expect(page.locator("#reload .result")).to_contain_text("ok")
    expect(page.locator("#reload .generation")).to_have_text(
        re.compile(rf"\b{after['generation']}\b")
    )
    # and it goes on updating afterwards
    connection = page.locator("#connection")
    shown = connection.inner_text()
    expect(connection).not_to_have_text(shown)
    expect(connection).to_have_attribute("data-state", "live")
    assert "lost" not in page.evaluate("() => window.states")
    assert page.problems == []


# -- e. readable on a laptop and on a phone ---------------------------------------------------
def unnamed_controls(page: Page) -> list[str]:
    """Buttons, checkboxes and text boxes of the accessibility tree that have no name."""
    tree = page.locator("body").aria_snapshot()
    return [
        line.strip()
        for line in tree.splitlines()
        if re.match(r"\s*- (button|checkbox|textbox)\b(?! \")", line)
    ]


def test_screenshots_wide_and_narrow_readable(world, new_context, artifacts: Path) -> None:
    backgrounds = {}
    for name, viewport, scheme in (
        ("status-page-wide.png", WIDE, "light"),
        ("status-page-narrow.png", NARROW, "light"),
        ("status-page-narrow-dark.png", NARROW, "dark"),
    ):
        page = watched(new_context(viewport, color_scheme=scheme).new_page())
        signed_in(page, world)
        expect(
            page.locator('tr.target[data-target="sip@chicago"] .strip span').first
        ).to_be_visible()
        backgrounds[scheme] = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        page.screenshot(path=artifacts / name, full_page=True)
        assert (artifacts / name).stat().st_size > 0
        if viewport == NARROW:
            width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
            assert width[0] <= width[1], f"horizontal scroll on a phone: {width}"
        assert unnamed_controls(page) == []
        for service in SERVICES:
            expect(
                page.get_by_role("button", name=f"Switch {service.upper()} to virginia")
            ).to_be_visible()
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        # the confirmation too, and it fits the screen
        page.get_by_role("button", name="Switch SIP to virginia").click()
        dialog = confirm_dialog(page)
        expect(dialog).to_be_visible()
        expect(dialog.get_by_label("Force (site not up)")).to_be_attached()
        assert unnamed_controls(page) == []
        box = dialog.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"]
        dialog.get_by_role("button", name="Cancel").click()
        expect(dialog).to_be_hidden()
        assert page.problems == []
    assert backgrounds["dark"] != backgrounds["light"], backgrounds
