"""Every GET the exporter sends to LMX's admin API goes through LmxClient.

One place, so the rules hold for every reader alike: the admin key travels only in the
`X-Admin-Key` header (never a URL, a log line or a repr); redirects are never followed
(requests would carry the header to wherever they point); every read has a connect and
a read timeout; and a failed read becomes an LmxError whose text is safe to log.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Protocol

import requests

from opta_exporter.config import Config

READ_TIMEOUT = 10.0  # a snapshot or relay read; LMX answers these in milliseconds
MAX_BODY_BYTES = 8 * 1024 * 1024  # far above any admin body LMX sends; a hostile one stops here
_READ_SIZE = 65536
# LMX's admin bodies nest a few levels; Python's decoder fails with RecursionError near
# 1,000, unwinding that deep. A hostile body is refused before it gets there.
MAX_JSON_DEPTH = 64
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")


_OVERLOADED_PEEK = 4096  # LMX's shedding body is ~100 bytes; never read more to judge it


class LmxError(Exception):
    """A read that failed. `detail` says why without the path, `str()` with it; neither
    ever holds the key, a URL query or a body. `status` is the HTTP status when LMX
    answered; `overloaded` when that answer was LMX shedding load."""

    def __init__(
        self, path: str, detail: str, status: int | None = None, *, overloaded: bool = False
    ) -> None:
        super().__init__(f"{path}: {detail}")
        self.path = path
        self.detail = detail
        self.status = status
        self.overloaded = overloaded


class Answers(Protocol):
    """Told of every answer (lmx/shedding.py watches them for load shedding)."""

    def answered(self, path: str, status: int, overloaded: bool) -> None: ...


def overloaded(resp: requests.Response) -> bool:
    """LMX's load-shedding answer: 503 with `{"error": {"code": "overloaded"}}`. Reads at
    most a few KiB of the body, and only of a 503."""
    if resp.status_code != 503:
        return False
    try:
        head = next(resp.iter_content(_OVERLOADED_PEEK), b"")
        error = json.loads(head).get("error")
    except (ValueError, AttributeError, requests.RequestException):
        return False
    return isinstance(error, dict) and error.get("code") == "overloaded"


class LmxClient:
    def __init__(
        self,
        base_url: str,
        admin_key: str | None,
        session: requests.Session,
        connect_timeout: float = 5.0,
        answers: Answers | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._admin_key = admin_key
        self._session = session
        self.connect_timeout = connect_timeout
        self._answers = answers

    @classmethod
    def from_config(
        cls, config: Config, session: requests.Session, answers: Answers | None = None
    ) -> LmxClient:
        return cls(config.lmx_url, config.admin_key, session, config.connect_timeout, answers)

    def __repr__(self) -> str:
        key = "set" if self._admin_key is not None else "none"
        return f"LmxClient({self.base_url!r}, admin key {key})"

    def open(
        self,
        path: str,
        *,
        accept: str,
        read_timeout: float,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """A streamed GET whose body the caller reads and closes. requests' exceptions
        pass through: the event stream turns each into its own reconnect reason."""
        return self._get(path, accept, read_timeout, headers)[0]

    def _get(
        self, path: str, accept: str, read_timeout: float, headers: Mapping[str, str] | None
    ) -> tuple[requests.Response, bool]:
        """The answer, and whether it was LMX shedding load (told to `answers` too)."""
        sent = {"Accept": accept, **(headers or {})}
        if self._admin_key is not None:
            sent["X-Admin-Key"] = self._admin_key
        resp = self._session.get(
            self.base_url + path,
            headers=sent,
            stream=True,
            timeout=(self.connect_timeout, read_timeout),
            allow_redirects=False,
        )
        shed = overloaded(resp)
        if self._answers is not None:
            self._answers.answered(path, resp.status_code, shed)
        return resp, shed

    def read(
        self,
        path: str,
        *,
        accept: str,
        read_timeout: float = READ_TIMEOUT,
        max_bytes: int = MAX_BODY_BYTES,
    ) -> bytes:
        """The body of a 200 answer, whole, or LmxError (never requests' exceptions)."""
        try:
            resp, shed = self._get(path, accept, read_timeout, None)
            with resp:
                status = resp.status_code
                if status in (401, 403):
                    raise LmxError(path, f"HTTP {status}, admin key refused", status)
                if status != 200:
                    detail = "HTTP 503, LMX is shedding load" if shed else f"HTTP {status}"
                    raise LmxError(path, detail, status, overloaded=shed)
                body = bytearray()
                for chunk in resp.iter_content(_READ_SIZE):
                    body += chunk
                    if len(body) > max_bytes:
                        raise LmxError(path, f"body over {max_bytes} bytes", status)
                return bytes(body)
        except requests.Timeout:
            raise LmxError(path, "timed out") from None
        except requests.RequestException as exc:
            raise LmxError(path, f"cannot connect or read ({type(exc).__name__})") from None

    def read_text(self, path: str, *, max_bytes: int = MAX_BODY_BYTES) -> str:
        """A text body; bytes that are not UTF-8 become U+FFFD rather than a failed read."""
        return self.read(path, accept="text/plain", max_bytes=max_bytes).decode(
            "utf-8", errors="replace"
        )

    def read_json(self, path: str) -> dict[str, Any]:
        """A JSON object body: anything else (a list, a proxy's HTML) is an LmxError."""
        body = self.read(path, accept="application/json")
        if nests_deeper(body, MAX_JSON_DEPTH):  # never reach the decoder's recursion limit
            raise LmxError(path, "body nests too deeply to be LMX's JSON", 200)
        try:
            value = json.loads(body)
        except ValueError:
            raise LmxError(path, "body is not JSON", 200) from None
        if not isinstance(value, dict):
            raise LmxError(path, "body is not a JSON object", 200)
        return value


def nests_deeper(body: bytes, limit: int) -> bool:
    """Would the JSON in `body` nest more than `limit` arrays and objects? Strings and
    everything else are cut away in C first; only brackets are walked, and only when
    there are more of them than `limit` (an ordinary body is never walked)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    for char in _NOT_BRACKET.sub(b"", _JSON_STRING.sub(b"", body)):
        depth += 1 if char in b"[{" else -1
        if depth > limit:
            return True
    return False
