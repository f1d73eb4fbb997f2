"""``polystack eval run`` against a real HTTP server (uvicorn on loopback) serving the eval test doubles."""

from __future__ import annotations

import threading
import time

import pytest
import uvicorn

from stack.cli import main
from stack.cli_eval import progress_bar, results_table
from tests.providers.inline.eval.test_meta_reference import doubles_app
from tests.support import free_port


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path / "home"))
    port = free_port()
    config = uvicorn.Config(doubles_app(tmp_path), host="127.0.0.1", port=port, log_level="warning")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not running.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    running.should_exit = True
    thread.join(10)


def test_eval_run_shows_progress_and_a_results_table(server, capsys):
    code = main(["eval", "run", "capitals-task", "--model", "atlas-1", "--url", server])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "100.0%" in err and "[" + "#" * 30 + "]" in err
    assert out.splitlines() == [
        "scoring function | aggregate | value ",
        "-----------------+-----------+-------",
        "exact            | accuracy  | 0.5000",
        "4 rows",
    ]


def test_eval_run_errors_name_the_problem(server, capsys):
    assert main(["eval", "run", "no-such-task", "--model", "atlas-1", "--url", server]) == 1
    assert "404" in capsys.readouterr().err
    assert main(["eval", "run", "capitals-task", "--model", "nope", "--url", server]) == 1
    assert "400 task_config.eval_candidate.model:" in capsys.readouterr().err
    assert main(["eval", "run", "capitals-task", "--model", "atlas-1", "--url", "http://127.0.0.1:9"]) == 1
    assert "cannot reach http://127.0.0.1:9" in capsys.readouterr().err


def test_progress_bar_and_table_shapes():
    assert progress_bar(0.5, "2 of 4 rows generated", width=10).startswith("[#####.....]  50.0% 2 of 4 rows generated")
    table = results_table({"generations": [{}], "scores": {"f": {"aggregated_results": {"median": 2, "n": {"a": 1}}}}})
    assert table.splitlines()[2:] == ["f                | median    | 2       ", 'f                | n         | {"a": 1}', "1 rows"]
