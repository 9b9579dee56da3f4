"""Input validation for everything governance stores: names, roles, scopes, periods, amounts, times.

Names are validated (not escaped) because they end up in URLs, Redis keys, log lines and file-like
identifiers; a strict whitelist makes path traversal, SQL metacharacters and control characters impossible by
construction. Every failure is an ``InvalidInput`` naming the parameter, never a 500.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import get_args

from aiaas.errors import InvalidInput
from aiaas.service.governance.base import Role

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$")
MODEL_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$")
ROLES: tuple[str, ...] = get_args(Role)
SCOPES = ("key", "tenant")
PERIODS = ("day", "month", "total")
GROUP_BY = ("model", "key", "day")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_name(value: object, param: str = "name") -> str:
    if not isinstance(value, str) or not NAME_RE.fullmatch(value) or value in (".", ".."):
        raise InvalidInput(
            f"invalid {param} {_shown(value)}: use 1-64 characters of letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            param=param,
            code="invalid_name",
        )
    return value


def check_model(value: object, param: str = "model") -> str:
    if not isinstance(value, str) or not MODEL_RE.fullmatch(value):
        raise InvalidInput(
            f"invalid {param} {_shown(value)}: use 1-128 characters of letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            param=param,
            code="invalid_name",
        )
    return value


def check_choice(value: object, choices: tuple[str, ...], param: str) -> str:
    if value not in choices:
        raise InvalidInput(f"invalid {param} {_shown(value)}: expected one of {', '.join(choices)}", param=param)
    return str(value)


def check_role(value: object) -> str:
    return check_choice(value, ROLES, "role")


def check_scope(value: object) -> str:
    return check_choice(value, SCOPES, "scope")


def check_number(value: float | int | None, param: str, *, integer: bool = False, maximum: float = 1e12) -> None:
    """None means 'no limit'; otherwise a finite, non-negative number (an integer where counts are meant)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"invalid {param}: expected a number", param=param)
    if integer and not float(value).is_integer():
        raise InvalidInput(f"invalid {param} {value}: expected a whole number", param=param)
    if math.isnan(value) or math.isinf(value) or value < 0 or value > maximum:
        raise InvalidInput(f"invalid {param} {value}: expected a number between 0 and {maximum:g}", param=param)


def check_models(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    if len(values) > 1000:
        raise InvalidInput("too many models in the allow-list (at most 1000)", param="models")
    return sorted({check_model(v, "models") for v in values})


def parse_time(value: str | datetime | None, param: str) -> datetime | None:
    """ISO 8601 (a date or a date-time, with or without offset) -> naive UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        if len(value) > 64:
            raise InvalidInput(f"invalid {param}: expected an ISO 8601 date or time", param=param)
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(
                f"invalid {param} {_shown(value)}: expected an ISO 8601 date or time, e.g. 2025-01-31T12:00:00Z",
                param=param,
            ) from None
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt
