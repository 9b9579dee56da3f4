"""No Python traceback for a user's mistake: the CLI's last line of defence.

Commands turn the errors they expect into a red message and exit code 1 themselves; anything that still
escapes (a validation error deep in a service, a file that cannot be read, a database that is down) is
printed the same way, in one line. ``AIAAS_DEBUG=1`` shows the traceback for bug reports.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def describe(exc: BaseException) -> str:
    """One line that says what went wrong, without the stack."""
    from aiaas.errors import AiaasError

    if isinstance(exc, AiaasError):
        return exc.message
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    errors = getattr(exc, "errors", None)
    if type(exc).__name__ == "ValidationError" and callable(errors):  # pydantic's, without importing pydantic
        return "; ".join(_validation_problem(getattr(exc, "title", ""), e) for e in errors()[:5])
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def _validation_problem(title: str, error: dict[str, Any]) -> str:
    """``AIAAS_GOVERNANCE: Input should be 'db' or 'off' (got 'sometimes')`` for a setting, else the field path."""
    loc = ".".join(str(part) for part in error.get("loc", ()))
    where = f"AIAAS_{loc.upper()}" if title == "Settings" else loc
    got = f" (got {error['input']!r})" if "input" in error and not isinstance(error["input"], dict) else ""
    return f"{where}: {error.get('msg', 'invalid')}{got}"


def run_without_traceback(app: Any) -> None:
    try:
        app(standalone_mode=True)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from None
    except Exception as exc:
        if os.environ.get("AIAAS_DEBUG"):
            raise
        sys.stderr.write(f"error: {describe(exc)}\n(set AIAAS_DEBUG=1 to see the traceback)\n")
        raise SystemExit(1) from None
