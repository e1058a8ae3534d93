"""The status page in a real browser: Playwright's driver with Debian's Chromium
(docs: ../shared/reference/browser-testing.md), against xprov and peers at two sites.

Every test of this folder is marked `peers`; all are skipped, and only then, when
/usr/bin/chromium is absent (`make test` installs it through scripts/install-debs.sh).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.pages import TIMEOUT_MS, WIDE, watched
from tests.browser.world import PHONES, SiteWorld
from tests.helpers import ROOT

CHROMIUM = Path("/usr/bin/chromium")
HERE = Path(__file__).resolve().parent
# Playwright adds --headless, --no-sandbox and a throw-away profile; the resolver rule keeps
# Chromium from looking up any outside host (its own background requests).
LAUNCH_ARGS = ["--disable-gpu", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark this folder's tests `peers`; skip them if Debian's Chromium is not installed."""
    missing = pytest.mark.skip(reason=f"{CHROMIUM} absent (scripts/install-debs.sh installs it)")
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.peers)
            if not CHROMIUM.exists():
                item.add_marker(missing)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots are kept: $XPROV_ARTIFACTS, else build/artifacts (gitignored)."""
    path = Path(os.environ.get("XPROV_ARTIFACTS") or ROOT / "build" / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One headless Chromium for the session; HOME and TMPDIR of its own (it writes crash
    reports and caches outside its profile)."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    scratch = tmp_path_factory.mktemp("chromium")
    home, tmp = scratch / "home", scratch / "tmp"
    home.mkdir()
    tmp.mkdir()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=LAUNCH_ARGS,
            env={**os.environ, "HOME": str(home), "TMPDIR": str(tmp)},
            timeout=30_000,
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def new_context(browser):
    """Contexts (browser profiles) for a test, closed after it: UTC and en-GB, so that the
    times the page prints can be compared with the server's."""
    made = []

    def make(viewport: dict[str, int] = WIDE, **options):
        context = browser.new_context(
            viewport=viewport, timezone_id="UTC", locale="en-GB", **options
        )
        context.set_default_timeout(TIMEOUT_MS)
        context.set_default_navigation_timeout(TIMEOUT_MS)
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()


@pytest.fixture
def page(new_context):
    """A page in a fresh wide context; `page.problems` collects what the page got wrong
    (uncaught errors, CSP violations), asserted empty by the tests."""
    return watched(new_context().new_page())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, mariadb) -> Iterator[SiteWorld]:
    """One two-site world for a module's tests that leave it as they found it
    (`SiteWorld.back_to_normal` in their `finally`)."""
    site_world = SiteWorld(tmp_path_factory.mktemp("world"), mariadb, PHONES).start()
    try:
        yield site_world
    finally:
        site_world.close()


@pytest.fixture
def fresh_world(tmp_path: Path, mariadb) -> Iterator[SiteWorld]:
    """A two-site world of its own, for a test that kills a primary or stops xprov."""
    site_world = SiteWorld(tmp_path / "world", mariadb, PHONES).start()
    try:
        yield site_world
    finally:
        site_world.close()
