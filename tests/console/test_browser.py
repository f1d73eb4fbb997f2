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


def send(page, message: str, *, check: tuple[str, ...] = (), fill: dict[str, str] | None = None) -> None:
    """Type ``message`` in the playground with the ``check`` boxes ticked and ``fill`` fields set; send it."""
    page.goto("/#/playground")
    for label in check:
        page.get_by_label(label).check()
    for selector, value in (fill or {}).items():
        page.locator(selector).fill(value)
    page.get_by_label("Message").fill(message)
    page.get_by_role("button", name="Send").click()


def test_playground_streams_an_answer_with_token_counts(page, screenshots):
    send(page, "Write one sentence about the sea.")
    expect(page.get_by_label("Model")).to_have_value(MODEL)
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


def test_json_output_answers_json(page):
    import json

    send(page, "Give a JSON object with a field name set to Ada.", check=("JSON output",),
         fill={"input[name=max_tokens]": "48"})
    expect(page.get_by_test_id("stats")).to_contain_text("completion tokens")
    text = page.get_by_test_id("answer").text_content()
    if page.get_by_test_id("stats").text_content().count("48 completion tokens") == 0:  # not cut off by max_tokens
        assert isinstance(json.loads(text), dict)
    assert text.lstrip().startswith("{")


def test_a_bad_request_shows_the_servers_error(page):
    send(page, "hi", check=("Tools",), fill={"textarea[name=tools_json]": "[not json"})
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


def _api(server) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120)


def test_an_eval_jobs_progress_scores_and_results(page, console_server, screenshots):
    import base64
    import json
    import time

    api = _api(console_server)
    rows = [{"input_query": "What is 2 + 2? Answer with a number.", "expected_answer": "4"},
            {"input_query": "Say the word yes.", "expected_answer": "yes"},
            {"input_query": "Name a colour.", "expected_answer": "blue"}]
    jsonl = "".join(json.dumps(r) + "\n" for r in rows).encode()
    assert api.post("/v1/datasets", json={
        "dataset_id": "console-qa", "url": {"uri": "data:application/jsonl;base64," + base64.b64encode(jsonl).decode()},
        "dataset_schema": {"input_query": {"type": "string"}, "expected_answer": {"type": "string"}}}).status_code == 200
    assert api.post("/v1/eval-tasks", json={"eval_task_id": "console-qa", "dataset_id": "console-qa",
                                            "scoring_functions": ["basic::subset_of"]}).status_code == 200
    job = api.post("/v1/eval/tasks/console-qa/jobs", json={"task_config": {"type": "benchmark", "eval_candidate": {
        "type": "model", "model": MODEL, "sampling_params": {"strategy": {"type": "greedy"}, "max_tokens": 8}}}}).json()
    deadline = time.monotonic() + 120
    while api.get(f"/v1/jobs/{job['job_id']}").json()["status"] in ("scheduled", "in_progress"):
        assert time.monotonic() < deadline
        time.sleep(0.2)

    page.goto("/#/evals")
    row = page.get_by_test_id("eval-jobs").get_by_role("row").filter(has_text="console-qa")
    expect(row).to_contain_text("completed")
    expect(row).to_contain_text("100%")
    row.click()
    expect(page.get_by_test_id("aggregated")).to_contain_text("basic::subset_of")
    expect(page.get_by_test_id("aggregated")).to_contain_text("accuracy")
    expect(page.get_by_test_id("results").locator("tbody tr")).to_have_count(3)
    expect(page.get_by_test_id("results")).to_contain_text("score")
    screenshots(page, "evals")


def test_prompt_logs_by_project_and_session_and_one_log_with_feedback(page, console_server, screenshots):
    api = _api(console_server)
    made = []
    for n in range(3):
        made.append(api.post("/v4/logs", json={
            "project": "support/answer", "config": {"model": MODEL}, "session_reference_id": f"conv-{n % 2}",
            "messages": [{"role": "user", "content": f"Where is my order {n}?"}], "output": f"It ships tomorrow ({n})."}).json())
    api.post("/v4/logs", json={"project": "other", "config": {"model": MODEL}, "output": "unrelated"})
    api.post("/v4/feedback", json={"type": "rating", "value": "good", "data_id": made[2]["id"]})

    page.goto("/#/logs")
    logs = page.get_by_test_id("logs").locator("tbody tr")
    expect(logs.first).to_contain_text("unrelated")  # newest first
    page.get_by_label("Project").select_option(label="support/answer")
    expect(logs).to_have_count(3)
    logs.filter(has_text="(2)").get_by_role("link").click()  # its session: conv-0 holds logs 0 and 2
    expect(logs).to_have_count(2)
    screenshots(page, "logs")
    logs.filter(has_text="(2)").get_by_role("cell").last.click()
    expect(page.get_by_test_id("log-messages")).to_contain_text("Where is my order 2?")
    expect(page.get_by_test_id("log-messages").locator(".msg.assistant")).to_contain_text("It ships tomorrow (2).")
    expect(page.get_by_test_id("feedback")).to_contain_text("good")


def test_a_vector_db_query_shows_the_top_chunks_with_scores(page, console_server, screenshots):
    api = _api(console_server)
    assert api.post("/v1/vector-dbs", json={"vector_db_id": "console-docs", "embedding_model": "all-MiniLM-L6-v2",
                                            "embedding_dimension": 384}).status_code == 200
    chunks = ["The cat sleeps on the warm windowsill.", "Interest rates rose by a quarter point.",
              "Kittens love to chase string."]
    assert api.post("/v1/vector-io/insert", json={"vector_db_id": "console-docs", "chunks": [
        {"content": c, "metadata": {"document_id": f"doc-{i}"}} for i, c in enumerate(chunks)]}).status_code == 200

    page.goto("/#/vectors/console-docs")
    page.get_by_label("Query").fill("feline naps")
    page.get_by_label("Chunks").fill("2")
    page.get_by_role("button", name="Search").click()
    found = page.get_by_test_id("chunk-table").locator("tbody tr")
    expect(found).to_have_count(2)
    expect(found.first).to_contain_text("windowsill")
    expect(found.first).to_contain_text(re.compile(r"0\.\d{4}"))
    screenshots(page, "vectors")
