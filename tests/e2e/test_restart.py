"""A real ``polystack run`` restarted with an edited run config, and stopped with
SIGTERM while a request is in flight. Inference comes from the acme test plugin."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import time

import httpx
import pytest

from tests.support import ServerProcess

RUN_CONFIG = """\
version: '2'
image_name: restart-test
apis:
- inference
providers:
  inference:
  - provider_id: acme
    provider_type: remote::acme
    config:
      greeting: hi
models:
{models}
"""


def write_run_config(path, *model_ids: str):
    models = "".join(f"- model_id: {m}\n  provider_model_id: upstream-{m.split('/')[-1]}\n" for m in model_ids)
    path.write_text(RUN_CONFIG.format(models=models))
    return path


def model_ids(server: ServerProcess) -> set[str]:
    response = httpx.get(server.base_url + "/v1/models", timeout=10)
    assert response.status_code == 200, response.text
    return {m["identifier"] for m in response.json()["data"]}


def chat(server: ServerProcess, model_id: str, text: str) -> httpx.Response:
    return httpx.post(server.base_url + "/v1/inference/chat-completion", timeout=10,
                      json={"model_id": model_id, "messages": [{"role": "user", "content": text}]})


def test_restart_keeps_api_models_and_follows_the_edited_run_config(acme_plugin_path, tmp_path):
    home = tmp_path / "home"
    config = write_run_config(tmp_path / "run.yaml", "acme/from-file-1")

    with ServerProcess(str(config), home=home, pythonpath=[acme_plugin_path]) as server:
        registered = httpx.post(server.base_url + "/v1/models", timeout=10,
                                json={"model_id": "org/from-api", "provider_model_id": "upstream-api"})
        assert registered.status_code == 200, registered.text
        assert model_ids(server) == {"acme/from-file-1", "org/from-api"}

    # the operator edits the file: one run-config model out, another in
    write_run_config(config, "acme/from-file-2")

    with ServerProcess(str(config), home=home, pythonpath=[acme_plugin_path]) as server:
        assert model_ids(server) == {"acme/from-file-2", "org/from-api"}

        gone = httpx.get(server.base_url + "/v1/models/acme/from-file-1", timeout=10)
        assert gone.status_code == 404
        assert "'acme/from-file-1' not found" in gone.json()["detail"]

        kept = httpx.get(server.base_url + "/v1/models/org/from-api", timeout=10).json()
        assert (kept["provider_id"], kept["provider_resource_id"]) == ("acme", "upstream-api")
        # both still route to the provider under the provider's own names
        answer = chat(server, "org/from-api", "still here?").json()
        assert answer["completion_message"]["content"] == "hi [upstream-api]: still here?"
        answer = chat(server, "acme/from-file-2", "new one").json()
        assert answer["completion_message"]["content"] == "hi [upstream-from-file-2]: new one"
        assert chat(server, "acme/from-file-1", "x").status_code == 404


def test_sigterm_lets_an_in_flight_request_finish(acme_plugin_path, tmp_path):
    # The acme provider answers at once, so the request is kept in flight from
    # the client side: headers sent, body withheld until after the SIGTERM.
    config = write_run_config(tmp_path / "run.yaml", "acme/echo-1")
    server = ServerProcess(str(config), home=tmp_path / "home", pythonpath=[acme_plugin_path]).start()
    try:
        body = json.dumps({"model_id": "acme/echo-1",
                           "messages": [{"role": "user", "content": "finish me"}]}).encode()
        head = (f"POST /v1/inference/chat-completion HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
            sock.sendall(head + body[:10])
            time.sleep(0.3)  # let the server take the request in

            server.proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)

            assert server.proc.poll() is None, f"server exited with a request in flight:\n{server.output()}"
            with pytest.raises(httpx.ConnectError):  # draining: no new connections
                httpx.get(server.base_url + "/v1/health", timeout=2)

            sock.sendall(body[10:])
            response = http.client.HTTPResponse(sock)
            response.begin()
            payload = response.read()

        assert response.status == 200, payload
        assert json.loads(payload)["completion_message"]["content"] == "hi [upstream-echo-1]: finish me"
        # then it exits on its own, well before the 30 s graceful timeout
        returncode = server.proc.wait(timeout=10)
        assert returncode in (0, -signal.SIGTERM), server.output()
    finally:
        server.stop()
