"""Serializer fields every API shares."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

# A signed 64-bit integer: the widest column (BigIntegerField) any number of the API lands in
# or is compared with, and the widest value SQLite binds.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class Int64Field(serializers.IntegerField):
    """An integer that fits a signed 64-bit column. DRF's IntegerField takes any size, and a
    larger one reached the database as a 500 (SQLite cannot bind it, PostgreSQL's bigint
    overflows) instead of a 400 naming the field. Explicit bounds narrow these."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", INT64_MIN)
        kwargs.setdefault("max_value", INT64_MAX)
        super().__init__(**kwargs)
