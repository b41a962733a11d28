"""The exception hierarchy.

Every error Truceline raises on purpose derives from :class:`TrucelineError`; each carries a message
that is safe to show to users (it names the record, the field and the fix) and an HTTP status for the
API edge::

    TrucelineError
    ├── ValidationError          bad input: a record, a field, a value (400/422)
    │   ├── AgreementError       an agreement folder that cannot be used
    │   └── RecordError          one incident / detection record
    ├── AuthenticationError      no or bad credentials (401)
    ├── PermissionDeniedError    the caller's role may not do this (403)
    ├── NotFoundError            (404)
    ├── ConflictError            (409)
    ├── PayloadTooLargeError     a request or batch over its bound (413)
    └── UnavailableError         the database is not reachable yet (503)

Any error may name the ``field`` at fault, the ``value`` received and the ``fix``; the API's one
error handler puts them in the JSON body.
"""

from __future__ import annotations

__all__ = [
    "AgreementError",
    "AuthenticationError",
    "ConflictError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RecordError",
    "TrucelineError",
    "UnavailableError",
    "ValidationError",
    "safe_text",
]


def safe_text(text: str) -> str:
    """``text`` as it can be stored and shown: lone surrogates and NUL written as escapes.

    Received text is echoed in messages and rejects (an id, a value); a lone surrogate (``"\\ud800"``
    in JSON, or a byte that is not UTF-8) cannot be encoded as UTF-8 and PostgreSQL refuses NUL in
    text, so both are shown as their escapes (``\\ud800``, ``\\x00``) instead.
    """
    if text.isascii() and "\x00" not in text:  # the common case costs one scan
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


class TrucelineError(Exception):
    """Root of Truceline's errors; ``str(err)`` is safe to show to a user."""

    status_code: int = 500
    field: str | None = None
    value: object = None
    fix: str | None = None

    def __init__(
        self, message: str, *, field: str | None = None, value: object = None, fix: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if field is not None:
            self.field = field
        if value is not None:
            self.value = value
        if fix is not None:
            self.fix = fix


class ValidationError(TrucelineError):
    """Input that cannot be accepted as it is."""

    status_code = 422


class AgreementError(ValidationError):
    """An agreement folder or one of its files is invalid.

    Parameters
    ----------
    message
        What is wrong and how to fix it.
    file
        The file at fault (``agreement.yaml`` or a geometry file), when known.
    field
        The dotted path of the offending field, when known.
    """

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None) -> None:
        where = ", ".join(p for p in (file, f"field {field}" if field else None) if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.file = file
        self.field = field


class RecordError(ValidationError):
    """One input record (a row, a feature) is invalid; the rest of its batch is not affected."""

    def __init__(self, message: str, *, record: str | None = None, field: str | None = None) -> None:
        where = ", ".join(
            p for p in (f"record {record}" if record else None, f"field {field}" if field else None) if p
        )
        super().__init__(f"{where}: {message}" if where else message)
        self.record = record
        self.field = field


class AuthenticationError(TrucelineError):
    """No credentials where they are needed, or credentials that are unknown, expired or revoked."""

    status_code = 401


class PermissionDeniedError(TrucelineError):
    """The caller is known but their role does not allow the action."""

    status_code = 403


class NotFoundError(TrucelineError):
    status_code = 404


class ConflictError(TrucelineError):
    status_code = 409


class PayloadTooLargeError(TrucelineError):
    """A request body or a batch larger than the server accepts."""

    status_code = 413


class UnsupportedMediaTypeError(TrucelineError):
    """A request body sent as a media type the route does not take."""

    status_code = 415


class UnavailableError(TrucelineError):
    """A dependency (the database) is not ready."""

    status_code = 503
