"""Ids of stored things (MongoDB ObjectIds) have one spelling: 24 lower-case hex digits.

Any other spelling of the same id (upper case, say) is not that thing: it is refused, so
two spellings can never make two cart lines for one product.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, StringConstraints
from pydantic_core import PydanticCustomError

_CANONICAL = re.compile(r"[0-9a-f]{24}")


def is_canonical(value: object) -> bool:
    return isinstance(value, str) and _CANONICAL.fullmatch(value) is not None


def _canonical(value: str) -> str:
    if not is_canonical(value):
        raise PydanticCustomError("id", "Not an id: ids are 24 lower-case hexadecimal characters.")
    return value


# In request bodies: a malformed id is invalid input (422), never a lookup.
EntityId = Annotated[str, StringConstraints(max_length=64), AfterValidator(_canonical)]


# Distinct products in one cart, so in one order and in one stock reservation: the cart
# refuses more lines and the catalog reserves no more, so the two can never disagree.
MAX_ORDER_LINES = 50
