"""TLS and basic auth from the web config file, on a real scrape of an exporter against the
simulator."""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

import bcrypt
import pytest
import requests

from lmx_simulator import LmxSimulator
from opta_exporter.daemon import Exporter
from opta_exporter.web.webconfig import load_web_config
from tests.conftest import WAIT
from tests.helpers import S3CRET_HASH


def test_tls_and_basic_auth_scrape(
    tmp_path: Path,
    cert: tuple[Path, Path],
    sim: LmxSimulator,
    make_exporter: Callable[..., Exporter],
) -> None:
    cert_file, key_file = cert
    web_file = tmp_path / "web.yml"
    web_file.write_text(
        f"tls_server_config:\n  cert_file: {cert_file}\n  key_file: {key_file}\n"
        f"basic_auth_users:\n  prom: '{S3CRET_HASH}'\n"
    )
    web = load_web_config(str(web_file))
    exporter = make_exporter(sim, web=web)
    url = f"https://127.0.0.1:{exporter.server.port}/metrics"
    ok = requests.get(url, auth=("prom", "s3cret"), verify=str(cert_file), timeout=WAIT)
    assert ok.status_code == 200
    assert "opta_lmx_up" in ok.text
    assert requests.get(url, verify=str(cert_file), timeout=WAIT).status_code == 401
    wrong = requests.get(url, auth=("prom", "nope"), verify=str(cert_file), timeout=WAIT)
    assert wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"].startswith("Basic")
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{exporter.server.port}/metrics", timeout=WAIT)
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(url, auth=("prom", "s3cret"), timeout=WAIT)  # untrusted self-signed
    assert ssl.OPENSSL_VERSION


def _auth_exporter(
    tmp_path: Path, sim: LmxSimulator, make_exporter: Callable[..., Exporter]
) -> str:
    """An exporter whose /metrics needs prom:s3cret; its URL."""
    web_file = tmp_path / "web.yml"
    web_file.write_text(f"basic_auth_users:\n  prom: '{S3CRET_HASH}'\n")
    exporter = make_exporter(sim, web=load_web_config(str(web_file)))
    return f"http://127.0.0.1:{exporter.server.port}/metrics"


def test_password_over_72_bytes_is_a_401_without_a_traceback(
    tmp_path: Path,
    sim: LmxSimulator,
    make_exporter: Callable[..., Exporter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """bcrypt 5 raises on such a password: it was a 500 and a traceback per request."""
    url = _auth_exporter(tmp_path, sim, make_exporter)
    with caplog.at_level(logging.DEBUG, logger="opta_exporter"), requests.Session() as session:
        for n in range(200):
            password = "x" * (73 + n)
            assert session.get(url, auth=("prom", password), timeout=WAIT).status_code == 401
        assert session.get(url, auth=("prom", "s3cret"), timeout=WAIT).status_code == 200
    said = [r for r in caplog.records if r.name.startswith("opta_exporter.web")]
    assert len(said) <= 1  # one line for the spell, at most
    assert all(r.levelno < logging.ERROR and r.exc_info is None for r in said)


def test_guesses_run_few_bcrypt_checks_and_a_known_scraper_is_served(
    tmp_path: Path,
    sim: LmxSimulator,
    make_exporter: Callable[..., Exporter],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Eight guesses in flight: two bcrypt checks run, the rest are refused; a scraper whose
    pair is remembered gets 200 throughout. bcrypt is replaced by a check the test holds."""
    real_checkpw = bcrypt.checkpw
    running, most = 0, 0
    changed = threading.Condition()
    release = threading.Event()

    def checkpw(password: bytes, hashed: bytes) -> bool:
        nonlocal running, most
        if password == b"s3cret":
            return real_checkpw(password, hashed)
        with changed:
            running += 1
            most = max(most, running)
            changed.notify_all()
        release.wait(WAIT)
        with changed:
            running -= 1
        return False

    monkeypatch.setattr(bcrypt, "checkpw", checkpw)
    url = _auth_exporter(tmp_path, sim, make_exporter)
    scraper = requests.Session()
    assert scraper.get(url, auth=("prom", "s3cret"), timeout=WAIT).status_code == 200
    statuses: list[int] = []

    def guess(n: int) -> None:
        status = requests.get(url, auth=("prom", f"guess-{n}"), timeout=WAIT).status_code
        with changed:
            statuses.append(status)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    try:
        with changed:
            assert changed.wait_for(lambda: running >= 2, WAIT)
        for _ in range(20):
            assert scraper.get(url, auth=("prom", "s3cret"), timeout=WAIT).status_code == 200
    finally:
        release.set()
        for thread in threads:
            thread.join(WAIT)
        scraper.close()
    assert most == 2
    assert len(statuses) == 8
    assert all(status in (401, 429) for status in statuses)
