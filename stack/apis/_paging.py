"""The shape of polystack's offset-paged lists: ``limit`` items from ``offset``, ``has_more``
when more follow (the page was read with one item more than it shows)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field


class OffsetPage(BaseModel):
    """Subclasses add ``data: list[Item]``."""

    object: Literal["list"] = "list"
    has_more: bool = False


#: the largest offset a list takes: SQL stores hold 64-bit integers, and no list is this long
MAX_OFFSET = 2**31 - 1
Offset = Annotated[int, Field(ge=0, le=MAX_OFFSET, description="Items to skip")]
