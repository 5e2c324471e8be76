"""Offset pagination parameters shared by every list endpoint."""

from typing import Annotated

from fastapi import Depends, Query
from pydantic import BaseModel


class Page(BaseModel):
    limit: int
    offset: int


async def page_params(
    limit: Annotated[int, Query(ge=1, le=200, description="Rows per page.")] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="Rows to skip.")] = 0,
) -> Page:
    return Page(limit=limit, offset=offset)


PageDep = Annotated[Page, Depends(page_params)]


NEXT_CURSOR_HEADER = "X-Next-Cursor"


class CursorPage(BaseModel):
    """Keyset pagination: the answer's `X-Next-Cursor` header, sent back as `cursor`,
    continues after its last row (stable while rows are added, unlike an offset)."""

    limit: int
    cursor: str | None


async def cursor_page_params(
    limit: Annotated[int, Query(ge=1, le=200, description="Rows per page.")] = 50,
    cursor: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=128,
            description="The previous page's `X-Next-Cursor` header.",
        ),
    ] = None,
) -> CursorPage:
    return CursorPage(limit=limit, cursor=cursor)


CursorPageDep = Annotated[CursorPage, Depends(cursor_page_params)]
