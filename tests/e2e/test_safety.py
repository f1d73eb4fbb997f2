"""Safety end to end: a real ``polystack run`` with ``inline::pattern-guard``,
driven by llama-stack-client 0.1.0 (register a shield, list it, run it)."""

from __future__ import annotations

import textwrap

import pytest
from llama_stack_client import APIStatusError, LlamaStackClient

from tests.support import ServerProcess

RUN_CONFIG = """\
version: '2'
image_name: safety-e2e
apis: [safety]
providers:
  safety:
  - provider_id: pattern-guard
    provider_type: inline::pattern-guard
    config:
      rules:
      - name: codenames
        keywords: [Project Falcon]
        violation_level: warn
        user_message: Codenames stay inside the company.
"""


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    home = tmp_path_factory.mktemp("safety-home")
    run_yaml = home / "run.yaml"
    run_yaml.write_text(textwrap.dedent(RUN_CONFIG))
    with ServerProcess(str(run_yaml), home=home) as server:
        yield LlamaStackClient(base_url=server.base_url)


def test_register_list_and_run_a_pattern_guard_shield(client):
    shield = client.shields.register(shield_id="no-secrets", provider_id="pattern-guard",
                                      params={"detectors": ["credit_card", "secret"], "rules": ["codenames"]})
    assert shield.identifier == "no-secrets" and shield.provider_id == "pattern-guard"
    listed = {s.identifier: s for s in client.shields.list()}
    assert listed["no-secrets"].params == {"detectors": ["credit_card", "secret"], "rules": ["codenames"]}

    response = client.safety.run_shield(
        shield_id="no-secrets", params={},
        messages=[{"role": "user", "content": "Project Falcon launches Monday; bill card 4111-1111-1111-1111"}])
    violation = response.violation
    assert violation.violation_level == "error"
    assert violation.user_message.startswith("The message contains a payment card number")
    assert violation.metadata["violation_type"] == "credit_card,codenames"
    card, rule = violation.metadata["matches"]
    assert card["samples"] == ["************1111"] and rule["samples"] == ["Project Falcon"]

    clean = client.safety.run_shield(shield_id="no-secrets", params={},
                                     messages=[{"role": "user", "content": "mail me at jane@example.com"}])
    assert clean.violation is None  # the shield leaves the e-mail detector out

    narrowed = client.safety.run_shield(shield_id="no-secrets", params={"detectors": [], "rules": ["codenames"]},
                                        messages=[{"role": "user", "content": "project falcon"}])
    assert narrowed.violation.violation_level == "warn"
    assert narrowed.violation.user_message == "Codenames stay inside the company."


def test_bad_params_are_a_400(client):
    client.shields.register(shield_id="pii", provider_id="pattern-guard")
    with pytest.raises(APIStatusError) as info:
        client.safety.run_shield(shield_id="pii", params={"detectors": ["retina-scans"]},
                                 messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 400
    assert info.value.response.json()["detail"].startswith("params.detectors: unknown detector 'retina-scans'")
