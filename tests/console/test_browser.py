"""The console in a browser against a real `polystack run` (fixtures: conftest.py)."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import expect

from tests.console.conftest import API_KEY, VIEWPORT

MODEL = "SmolLM2-135M-Instruct"


def test_the_page_asks_for_the_key_then_shows_models_and_providers(browser, console_server, screenshots):
    context = browser.new_context(viewport=VIEWPORT, base_url=console_server.base_url)
    page = context.new_page()
    try:
        page.goto("/#/models")
        dialog = page.locator("#key-dialog")
        expect(dialog).to_be_visible()  # the first data call answered 401
        page.get_by_label("API key").fill(API_KEY)
        page.get_by_role("button", name="Save").click()
        row = page.get_by_test_id("models").get_by_role("row").filter(has_text=MODEL)
        expect(row).to_contain_text("llama-cpp")
        expect(row).to_contain_text("ready")
        expect(page.get_by_test_id("providers").get_by_role("row").filter(has_text="inline::faiss")).to_contain_text("vector_io")
        screenshots(page, "models")
    finally:
        context.close()


def test_playground_streams_an_answer_with_token_counts(page, screenshots):
    page.goto("/#/playground")
    expect(page.get_by_label("Model")).to_have_value(MODEL)
    page.get_by_label("Message").fill("Write one sentence about the sea.")
    page.get_by_role("button", name="Send").click()
    stats = page.get_by_test_id("stats")
    expect(stats).to_contain_text(re.compile(r"\d+ prompt \+ \d+ completion tokens"))
    answer = page.get_by_test_id("answer")
    expect(answer).not_to_be_empty()
    assert int(answer.get_attribute("data-chunks")) > 1  # it arrived in pieces: streamed
    expect(page.locator(".msg.user")).to_have_text(re.compile("one sentence about the sea"))
    screenshots(page, "playground")


def test_a_bad_request_shows_the_servers_error(page):
    page.goto("/#/playground")
    page.get_by_label("Tools").check()
    page.locator("textarea[name=tools_json]").fill("[not json")
    page.get_by_label("Message").fill("hi")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_test_id("stats")).to_contain_text("tools:")


def test_without_the_key_the_api_answers_401(console_server):
    assert httpx.get(console_server.base_url + "/v1/models").status_code == 401
    assert httpx.get(console_server.base_url + "/").status_code == 200
