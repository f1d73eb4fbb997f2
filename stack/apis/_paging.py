"""The shape of polystack's offset-paged lists: ``limit`` items from ``offset``, ``has_more``
when more follow (the page was read with one item more than it shows)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class OffsetPage(BaseModel):
    """Subclasses add ``data: list[Item]``."""

    object: Literal["list"] = "list"
    has_more: bool = False
