"""docs/providers/huggingface-post-training.md documents every config key; docs/apis/post-training.md
and ``polystack openapi`` every route of the family."""

from __future__ import annotations

import re
from pathlib import Path

from providers.inline.post_training.huggingface.config import (
    HuggingFacePostTrainingConfig,
)
from stack.apis import get_protocol, iter_webmethods
from stack.server import openapi_document

DOCS = Path(__file__).resolve().parents[4] / "docs"
ROW_KEY = re.compile(r"^\|\s*`([^`]+)`\s*\|", re.MULTILINE)


def test_every_config_key_has_a_row():
    text = (DOCS / "providers" / "huggingface-post-training.md").read_text()
    assert set(HuggingFacePostTrainingConfig.model_fields) - set(ROW_KEY.findall(text)) == set()
    assert "inline::huggingface" in text


def test_every_route_is_on_the_api_page_and_in_the_openapi_document():
    page = (DOCS / "apis" / "post-training.md").read_text()
    paths = openapi_document()["paths"]
    for _name, wm, _fn in iter_webmethods(get_protocol("post_training")):
        assert f"{wm.method} {wm.route}" in page
        assert wm.method.lower() in paths[wm.route]
