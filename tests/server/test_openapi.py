"""The OpenAPI document says what the routes accept."""

from stack.server import openapi_document
from stack.server._openapi import discriminated_unions


def test_each_union_member_requires_the_tag_that_selects_it():
    doc = openapi_document()
    schemas = doc["components"]["schemas"]
    checked = set()
    for tag, names in discriminated_unions(doc):
        for name in names:
            assert tag in schemas[name].get("required", []), f"{name} documents its tag {tag!r} as optional"
            checked.add(name)
    assert {"TextContentItem", "ImageContentItem", "UserMessage"} <= checked
