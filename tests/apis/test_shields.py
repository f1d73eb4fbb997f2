"""Shields: the shield resource, its run-config entry and the Protocol."""

import pytest
from pydantic import ValidationError

from stack.apis.shields import ListShieldsResponse, Shield, ShieldInput, Shields


def test_shield_resource_serialises_with_its_type():
    shield = Shield(
        identifier="llama-guard",
        provider_resource_id="meta-llama/Llama-Guard-3-1B",
        provider_id="llama-guard",
        params={"excluded_categories": ["S7"]},
    )
    assert shield.shield_id == "llama-guard"
    assert shield.provider_shield_id == "meta-llama/Llama-Guard-3-1B"
    data = shield.model_dump(mode="json")
    assert data["type"] == "shield"
    listed = ListShieldsResponse.model_validate({"data": [data]})
    assert listed.data == [shield]


def test_shield_with_another_resource_type_is_rejected():
    with pytest.raises(ValidationError):
        Shield.model_validate(
            {"identifier": "x", "provider_resource_id": "x", "provider_id": "p", "type": "model"}
        )


def test_run_config_shield_entries_load_like_llama_stack_run_yaml():
    # as in llama-stack 0.1.0's ollama-run-with-safety.yaml and together-run.yaml
    assert ShieldInput.model_validate({"shield_id": "CodeScanner", "provider_id": "code-scanner"})
    minimal = ShieldInput.model_validate({"shield_id": "meta-llama/Llama-Guard-3-8B"})
    assert minimal.provider_id is None and minimal.provider_shield_id is None


def test_run_config_shield_typo_is_rejected():
    with pytest.raises(ValidationError) as err:
        ShieldInput.model_validate({"shield_id": "s", "provider": "llama-guard"})
    assert "provider" in str(err.value)


def test_an_object_with_the_methods_satisfies_the_protocol():
    class Registry:
        async def list_shields(self): ...
        async def get_shield(self, identifier): ...
        async def register_shield(self, shield_id, provider_shield_id=None, provider_id=None, params=None): ...

    assert isinstance(Registry(), Shields)
    assert not isinstance(object(), Shields)
