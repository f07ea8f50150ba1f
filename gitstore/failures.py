"""Failures as data: an exception or an error dict becomes ``failure.json`` in the task's version.

:func:`failure_record` classifies the failure (``error``, ``timeout``, ``quota_exhausted``,
``validation_error``, ``cancelled``, ``out_of_memory``, ``network``), masks secrets in its message
and traceback, caps the traceback with an explicit marker, and lists the artifacts the failure
refers to. :func:`gitstore.runner.record_task` stores it beside the task's other artifacts, in the
same version, so a failed task's diff, log and failure are read together.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Iterable, Mapping
from typing import Any

from gitstore.meta import now_iso
from gitstore.secrets import Masker

__all__ = [
    "FAILURE_NAME",
    "KINDS",
    "MESSAGE_MAX",
    "TRACEBACK_MAX",
    "classify",
    "failure_record",
    "render_failure",
]

FAILURE_NAME = "failure.json"
# The end of a traceback names the failing frame and the error: keep the last this many chars.
TRACEBACK_MAX = 4000
_MARKER = re.compile(r"\[gitstore: (\d+) characters cut here\]\n")
# A message's start says what went wrong: render_failure keeps the first this many chars.
MESSAGE_MAX = 2000
KINDS = (
    "error",
    "timeout",
    "quota_exhausted",
    "validation_error",
    "cancelled",
    "out_of_memory",
    "network",
)

# (kind, words in a class name, words in a message), checked in this order: a rate limit that
# says "try again after a timeout" is a quota problem, not a timeout.
_RULES: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    (
        "quota_exhausted",
        ("ratelimit", "quota", "resourceexhausted", "toomanyrequests"),
        ("quota", "rate limit", "rate-limit", "ratelimit", "too many requests", "429", "exhausted"),
    ),
    ("timeout", ("timeout", "timedout", "deadlineexceeded"), ("timed out", "timeout", "deadline")),
    ("cancelled", ("cancelled", "canceled", "keyboardinterrupt"), ()),
    ("out_of_memory", ("memoryerror", "outofmemory"), ("out of memory",)),
    ("network", ("connection", "network", "socket", "dns"), ("connection refused", "unreachable")),
    ("validation_error", ("validation", "schema", "valueerror", "decodeerror"), ("invalid",)),
]


def classify(failure: BaseException | Mapping[str, Any]) -> str:
    """The kind of a failure, one of :data:`KINDS` (``error`` when nothing more is known).

    An exception is judged by its class names (its own and its bases) and its ``subtype`` and
    ``code`` attributes, then its message; a dict by its ``kind`` if it is one of KINDS, else by
    its ``type``, ``subtype`` and ``code`` (an ``error`` dict's too, as provider APIs nest
    them: ``{"error": {"code": "provider_quota_exceeded"}}``), then its ``message``.
    """
    if isinstance(failure, BaseException):
        names = " ".join(c.__name__.lower() for c in type(failure).__mro__)
        names += " " + " ".join(_codes(vars(failure) if hasattr(failure, "__dict__") else {}))
        text = str(failure).lower()
    else:
        if failure.get("kind") in KINDS:
            return str(failure["kind"])
        nested = failure.get("error")
        inner: Mapping[str, Any] = nested if isinstance(nested, Mapping) else {}
        names = " ".join([str(failure.get("type", "")).lower(), *_codes(failure), *_codes(inner)])
        message = failure.get("message", inner.get("message", nested or ""))
        text = str(message).lower()
    for kind, name_words, _ in _RULES:
        if any(w in names for w in name_words):
            return kind
    for kind, _, text_words in _RULES:
        if any(w in text for w in text_words):
            return kind
    return "error"


def _codes(fields: Mapping[str, Any]) -> list[str]:
    """The ``type``-like fields a provider error carries, lower-cased, separators as spaces and
    removed alike (``provider_quota_exceeded`` matches "quota", ``RESOURCE_EXHAUSTED``
    "resourceexhausted")."""
    out = []
    for key in ("subtype", "code", "type"):
        value = fields.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            text = str(value).lower()
            out += [text, text.replace("_", "").replace("-", "")]
    return out


def failure_record(
    failure: BaseException | Mapping[str, Any],
    *,
    artifacts: Iterable[str] = (),
    masker: Masker | None = None,
) -> dict[str, Any]:
    """The JSON-able content of ``failure.json``.

    Keys: ``kind``, ``type``, ``message``, ``traceback`` (the last :data:`TRACEBACK_MAX`
    characters, after a marker line saying how many were cut), ``traceback_truncated``,
    ``artifacts`` (names of the task's artifacts the failure refers to), ``details`` (a dict's
    other keys), ``masked_secrets`` (how many secrets were masked), ``recorded_at``.
    ``masker`` masks message, traceback and details (None: stored as given).
    """
    count = 0

    def clean(text: str) -> str:
        nonlocal count
        if masker is None:
            return text
        out, n = masker.mask(text.encode("utf-8", "surrogateescape"))
        count += n
        return out.decode("utf-8", "replace")

    details: dict[str, Any] = {}
    if isinstance(failure, BaseException):
        type_name = type(failure).__name__
        message = str(failure)
        tb = "".join(traceback.format_exception(failure))
    else:
        type_name = str(failure.get("type", "error"))
        message = str(failure.get("message", failure.get("error", "")))
        tb = str(failure.get("traceback", ""))
        skip = {"type", "message", "error", "traceback", "kind"}
        details = {k: _clean_value(v, clean) for k, v in failure.items() if k not in skip}
    tb = clean(tb)
    cut = len(tb) > TRACEBACK_MAX
    if cut:
        tb = f"[gitstore: {len(tb) - TRACEBACK_MAX} characters cut here]\n" + tb[-TRACEBACK_MAX:]
    message = clean(message)
    return {
        "kind": classify(failure),
        "type": type_name,
        "message": message,
        "traceback": tb,
        "traceback_truncated": cut,
        "artifacts": sorted(set(artifacts)),
        "details": details,
        "masked_secrets": count,
        "recorded_at": now_iso(),
    }


def _clean_value(value: Any, clean: Any) -> Any:
    """``value`` with every string in it masked (dicts and lists walked)."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, Mapping):
        return {str(k): _clean_value(v, clean) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean_value(v, clean) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return clean(repr(value))


def render_failure(
    record: Mapping[str, Any],
    *,
    message_max: int = MESSAGE_MAX,
    traceback_max: int = TRACEBACK_MAX,
) -> str:
    """A failure record (:func:`failure_record`, or ``failure.json`` read back) as plain text
    for a person or a model's prompt: one ``key: value`` line each, then the traceback.

    Nothing is cut silently: a message longer than ``message_max`` keeps its start and a
    traceback longer than ``traceback_max`` its end, each with a marker line
    ``[gitstore: N characters cut here]`` where the cut is (a traceback the record already cut
    keeps its own marker). The record's text is shown as stored (masked when it was recorded).
    """
    lines = [f"failure: {record.get('kind', 'error')}"]
    lines.append(f"type: {record.get('type', '')}")
    message = str(record.get("message", ""))
    if len(message) > message_max:
        cut = len(message) - message_max
        message = f"{message[:message_max]}\n[gitstore: {cut} characters cut here]"
    lines.append(f"message: {message}")
    artifacts = record.get("artifacts") or []
    if artifacts:
        lines.append(f"artifacts: {', '.join(str(a) for a in artifacts)}")
    details = record.get("details") or {}
    if isinstance(details, Mapping):
        for key, value in sorted(details.items()):
            lines.append(f"{key}: {value}")
    if record.get("recorded_at"):
        lines.append(f"recorded_at: {record['recorded_at']}")
    tb = str(record.get("traceback") or "").rstrip("\n")
    if tb:
        # A traceback the record already cut starts with its marker: count that cut in.
        before = _MARKER.match(tb)
        prior = int(before.group(1)) if before else 0
        body = tb[before.end() :] if before else tb
        if len(body) > traceback_max:
            cut = prior + len(body) - traceback_max
            tb = f"[gitstore: {cut} characters cut here]\n{body[-traceback_max:]}"
        lines += ["traceback:", tb]
    return "\n".join(lines) + "\n"
