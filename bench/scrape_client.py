"""The bench's scraper: as lean as Prometheus's own client, so a scrape's time is the
exporter's and not the harness's.

Prometheus (Go) keeps its connection alive between scrapes and inflates gzip in native
code. `requests` adds about 4 ms of Python per 350 KB scrape on the bench machine (its
adapters, urllib3's decoder in pieces, the text decode), which would be timed as if the
exporter spent it. This client sends one GET on a kept connection, inflates the body with
zlib in one call and decodes it once: the same work a real scraper has to do.
"""

from __future__ import annotations

import http.client
import time
import zlib
from types import TracebackType
from urllib.parse import urlsplit


class ScrapeError(RuntimeError):
    pass


class ScrapeClient:
    """One HTTP/1.1 connection, reopened when the server closes it (as HTTP/1.0 does)."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"the bench scrapes plain http on loopback, not {url!r}")
        self.path = parts.path or "/"
        self._conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)

    def get(self, headers: dict[str, str]) -> tuple[float, str]:
        """(seconds, body): from sending the request to the body inflated and decoded."""
        start = time.perf_counter()
        try:
            raw, encoding = self._exchange(headers)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # A kept connection the server closed while idle: what any client retries.
            self._conn.close()
            raw, encoding = self._exchange(headers)
        body = zlib.decompress(raw, wbits=31) if encoding == "gzip" else raw
        text = body.decode()
        return time.perf_counter() - start, text

    def _exchange(self, headers: dict[str, str]) -> tuple[bytes, str | None]:
        self._conn.request("GET", self.path, headers=headers)
        resp = self._conn.getresponse()
        raw = resp.read()
        if resp.status != 200:
            raise ScrapeError(f"GET {self.path}: HTTP {resp.status}")
        return raw, resp.getheader("Content-Encoding")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ScrapeClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
