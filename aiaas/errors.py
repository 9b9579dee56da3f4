"""One error hierarchy for all of aiaas.

Every error carries the HTTP status it maps to and a short machine-readable ``type``; the API layer renders it
per protocol (KServe V2: ``{"error": "message"}``; OpenAI-style and management: ``{"error": {...}}``).
"""

from __future__ import annotations

from typing import Any


def clip(text: str, limit: int = 80) -> str:
    """A user-supplied string cut for an error message or a log line (``...`` and its length when cut)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


class AiaasError(Exception):
    status_code: int = 500
    type: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.headers: dict[str, str] = dict(headers or {})

    def to_openai(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def to_v2(self) -> dict[str, Any]:
        return {"error": self.message}


class InvalidInput(AiaasError):
    """The client sent something wrong: a bad tensor, a bad config, a bad argument."""

    status_code = 400
    type = "invalid_request_error"


class AuthenticationError(AiaasError):
    status_code = 401
    type = "authentication_error"

    def __init__(self, message: str, **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(message, **kw)


class PaymentRequired(AiaasError):
    status_code = 402
    type = "budget_exceeded"


class PermissionDenied(AiaasError):
    status_code = 403
    type = "permission_error"


class NotFound(AiaasError):
    status_code = 404
    type = "not_found_error"


class Conflict(AiaasError):
    status_code = 409
    type = "conflict_error"


class PayloadTooLarge(AiaasError):
    status_code = 413
    type = "payload_too_large"


class RateLimited(AiaasError):
    status_code = 429
    type = "rate_limit_error"


class InferenceError(AiaasError):
    """The model itself failed on an input the protocol accepted."""

    status_code = 500
    type = "inference_error"


class ServiceUnavailable(AiaasError):
    """Not ready, loading, draining or overloaded; retry later."""

    status_code = 503
    type = "service_unavailable"

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        if retry_after is not None:
            self.headers.setdefault("Retry-After", str(max(1, round(retry_after))))


class DeadlineExceeded(AiaasError):
    status_code = 504
    type = "timeout"
