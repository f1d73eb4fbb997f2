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

    # the request's trace: its spans as a waterfall, the model call's attributes
    page.get_by_test_id("trace-link").click()
    spans = page.get_by_test_id("waterfall").get_by_test_id("span")
    expect(spans.first).to_contain_text("POST /v1/chat/completions")
    model_span = spans.filter(has_text="chat")
    expect(model_span.first).to_be_visible()
    assert spans.count() >= 2
    spans.last.click()
    expect(page.get_by_test_id("attributes")).to_contain_text("gen_ai.request.model")
    expect(page.get_by_test_id("attributes")).to_contain_text(MODEL)
    screenshots(page, "trace")


def test_traces_list_filters_and_pages(page, console_server, screenshots):
    key = {"Authorization": f"Bearer {API_KEY}"}
    for _ in range(22):  # requests that answer 404: traced, with their status code
        httpx.get(console_server.base_url + "/v1/models/no-such-model", headers=key)
    page.goto("/#/traces")
    rows = page.get_by_test_id("traces").locator("tbody tr")
    expect(rows.first).to_be_visible()
    page.get_by_label("Attribute").fill("http.response.status_code")
    page.get_by_label("Value").fill("404")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(20)  # a page
    for i in range(20):
        expect(rows.nth(i)).to_contain_text("GET /v1/models/")
        expect(rows.nth(i)).to_contain_text("404")
    screenshots(page, "traces")
    page.get_by_role("button", name="Next").click()
    expect(rows).to_have_count(2)
    expect(page.get_by_role("button", name="Next")).to_be_disabled()
    rows.first.click()
    expect(page.get_by_test_id("attributes")).to_contain_text("/v1/models/no-such-model")


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


def _trajectory(reward: float, answer: str) -> dict:
    return {"messages_and_choices": [
        {"role": "user", "content": "What is 2+2?"},
        {"finish_reason": "stop", "index": 0, "message": {"role": "assistant", "content": answer}},
    ], "reward": reward, "metrics": {"correct": reward > 0.5}}


def test_logged_trajectories_show_as_reward_charts_and_messages(page, console_server, screenshots):
    api = httpx.Client(base_url=console_server.base_url, headers={"Authorization": f"Bearer {API_KEY}"})
    model = api.post("/v1/preview/models", json={"project": "console", "name": "math-run", "base_model": MODEL}).json()
    for i in range(5):  # five train log calls, two val ones: the rewards climb
        groups = [{"trajectories": [_trajectory(i / 5, "4"), _trajectory(i / 10, f"{i}")]} for _ in range(2)]
        assert api.post(f"/v1/preview/models/{model['id']}/log",
                        json={"split": "train", "trajectory_groups": groups}).status_code == 200
    for i in range(2):
        api.post(f"/v1/preview/models/{model['id']}/log",
                 json={"split": "val", "trajectory_groups": [{"trajectories": [_trajectory(0.5 + i / 4, "4")]}]})

    page.goto("/#/training")
    page.get_by_test_id("runs").get_by_role("row").filter(has_text="math-run").click()
    reward = page.locator("[data-testid=chart][data-metric=reward]")
    expect(reward).to_have_attribute("data-points", "train=5,val=2")
    expect(reward.locator("canvas")).to_be_visible()
    expect(page.locator("[data-testid=chart][data-metric=correct]")).to_be_visible()
    screenshots(page, "training")

    # the trajectories of the step (every log lands on step 0 until a checkpoint exists): 12 groups, paged by 10
    groups = page.get_by_test_id("groups").locator(".panel")
    expect(groups).to_have_count(10)
    page.get_by_role("button", name="Next").last.click()
    expect(groups).to_have_count(2)
    expect(groups.first).to_contain_text("val")
    groups.first.get_by_role("row").nth(1).click()
    trajectory = page.get_by_test_id("trajectory")
    expect(trajectory).to_contain_text("What is 2+2?")
    expect(trajectory.locator(".msg.assistant")).to_contain_text("4")
