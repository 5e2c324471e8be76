from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

RegistrationStatus = Literal["registered", "won", "lost"]


class _WithoutUnset(BaseModel):
    """Optional fields (the contract's `"field"?`) are left out while None."""

    optional_fields: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _drop_absent(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if v is not None or k not in self.optional_fields}


class RegistrationRead(_WithoutUnset):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)
    optional_fields = frozenset({"pass"})

    status: RegistrationStatus
    registered_at: datetime
    pass_: str | None = Field(
        default=None,
        alias="pass",
        description="A winner's pass (X-Seckill-Pass), valid from the event's start for "
        "purchase_window_seconds.",
    )


class DrawRead(_WithoutUnset):
    optional_fields = frozenset({"seed"})

    seed_commitment: str | None = Field(
        description="Hex SHA-256 of the seed (UTF-8); null before registration opens."
    )
    registrants: int
    winners: int | None = Field(description="How many won; null before the draw.")
    seed: str | None = Field(default=None, description="Revealed after the draw.")
