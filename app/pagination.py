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
