"""Browser tests of the console: Playwright driving Debian's Chromium (headless) against a real
``polystack run`` of the starter with an API key. Screenshots of each page go to a temporary
folder (printed at the end); with POLYSTACK_CONSOLE_DOCS=1 they also replace docs/console/*.png."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import REPO, ServerProcess

#: Debian's chromium (`apt-get install chromium`); `playwright install` is never used
CHROMIUM = Path(os.environ.get("POLYSTACK_CHROMIUM", "/usr/bin/chromium"))
API_KEY = "console-test-key"
VIEWPORT = {"width": 1100, "height": 720}


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory):
    """shoot(page, name): a screenshot of the page as an artifact (and a docs copy when asked)."""
    folder = tmp_path_factory.mktemp("console-screenshots")
    docs = REPO / "docs" / "console" if os.environ.get("POLYSTACK_CONSOLE_DOCS") == "1" else None

    def shoot(page, name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=path)
        if docs is not None:  # the docs' copy in 64 colours: a UI reads the same and weighs a third
            from PIL import Image

            docs.mkdir(exist_ok=True)
            Image.open(path).convert("RGB").quantize(64).save(docs / path.name, optimize=True)
        return path

    yield shoot
    print(f"\nconsole screenshots: {folder}")


@pytest.fixture(scope="module")
def console_server(tmp_path_factory):
    """The starter distribution behind an API key, its models loaded."""
    home = tmp_path_factory.mktemp("console-home")
    with ServerProcess("starter", home=home, env={"POLYSTACK_API_KEYS": API_KEY}) as proc:
        proc.wait_models_ready()
        yield proc


# module scope: sync Playwright runs an event loop in this thread while it is open, which
# pytest-asyncio's tests (of this package and the next) cannot run beside
@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (CI's .ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, console_server):
    """A fresh tab on the console whose session already holds the API key."""
    context = browser.new_context(viewport=VIEWPORT, base_url=console_server.base_url)
    context.add_init_script(f"sessionStorage.setItem('polystack.apiKey', {API_KEY!r})")
    context.set_default_timeout(30_000)
    page = context.new_page()
    yield page
    context.close()
