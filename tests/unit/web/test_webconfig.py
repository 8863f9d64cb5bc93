"""The exporter-toolkit web config file (web/webconfig.py): basic auth and every refusal."""

from __future__ import annotations

import base64
import logging
import threading
from pathlib import Path

import bcrypt
import pytest

from opta_exporter.config import ConfigError
from opta_exporter.web.webconfig import (
    MAX_PASSWORD_BYTES,
    SPELL_QUIET,
    AuthResult,
    BasicAuth,
    bcrypt_cost,
    load_web_config,
)
from tests.conftest import WAIT
from tests.helpers import S3CRET_HASH


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_auth_accepts_only_the_right_pair() -> None:
    auth = BasicAuth({"prom": S3CRET_HASH.encode()})
    assert auth.allows(basic("prom", "s3cret"))
    assert auth.allows(basic("prom", "s3cret"))  # cached: no second bcrypt
    assert not auth.allows(basic("prom", "wrong"))
    assert not auth.allows(basic("other", "s3cret"))
    assert not auth.allows(None)
    assert not auth.allows("Bearer abc")
    assert not auth.allows("Basic !!!not-base64")
    assert not auth.allows("Basic " + base64.b64encode(b"no-colon").decode())


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("basic_auth_users: [1, 2]", "mapping"),
        ("basic_auth_users:\n  prom: plaintext", "bcrypt"),
        ("basic_auth_users:\n  prom: $2b$12$short", "bcrypt"),  # bcrypt would raise per request
        ("basic_auth_users:\n  prom: 12", "bcrypt"),
        ("surprise: 1", "unknown keys"),
        ("tls_server_config:\n  cert_file: a.pem", "key_file"),
        ("tls_server_config:\n  cert_file: a.pem\n  key_file: b.pem", "TLS"),
        ("tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher: x", "unknown"),
        ("{unclosed", "not YAML"),
    ],
)
def test_bad_web_config_is_a_config_error(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "web.yml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        load_web_config(str(path))


def test_missing_web_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_web_config(str(tmp_path / "absent.yml"))


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_password_over_72_bytes_is_a_quiet_401(caplog: pytest.LogCaptureFixture) -> None:
    """bcrypt 5 raises on such a password: it must be a plain refusal, said once per spell."""
    clock = FakeClock()
    long_password = "p" * 72 + "é"  # 74 bytes, 73 characters
    hashed = bcrypt.hashpw(long_password.encode()[:72], bcrypt.gensalt(rounds=4))
    calls: list[bytes] = []

    def checker(password: bytes, hashed: bytes) -> bool:
        calls.append(password)
        return bcrypt.checkpw(password, hashed)

    auth = BasicAuth({"prom": hashed}, checker=checker, clock=clock)
    with caplog.at_level(logging.DEBUG, logger="opta_exporter"):
        for _ in range(100):
            assert auth.check(basic("prom", long_password)) is AuthResult.DENIED
            assert auth.check(basic("nobody", "x" * 1000)) is AuthResult.DENIED
    assert calls == []  # never reaches bcrypt
    assert len(caplog.records) == 1
    assert caplog.records[0].levelno == logging.WARNING
    assert long_password not in caplog.text
    clock.now += SPELL_QUIET  # a new spell is said again
    assert not auth.allows(basic("prom", "q" * 200))
    assert len(caplog.records) == 2
    # 72 bytes is still a password bcrypt checks in full
    assert auth.allows(basic("prom", long_password.encode()[:72].decode()))
    assert len(calls[0]) == MAX_PASSWORD_BYTES


def test_unknown_user_costs_what_the_dearest_configured_hash_costs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Timing must not tell a known name from an unknown one: the dummy hash an unknown
    user is checked against has the configured cost (it had 10 against configured 12)."""
    cheap = bcrypt.hashpw(b"a", bcrypt.gensalt(rounds=4))
    dear = bcrypt.hashpw(b"b", bcrypt.gensalt(rounds=6))
    checked: list[bytes] = []

    def checkpw(password: bytes, hashed: bytes) -> bool:
        checked.append(hashed)
        return False

    monkeypatch.setattr(bcrypt, "checkpw", checkpw)
    auth = BasicAuth({"cheap": cheap, "dear": dear})
    assert not auth.allows(basic("nobody", "guess"))
    assert checked[-1] not in (cheap, dear)
    assert int(checked[-1][4:6]) == 6  # "$2b$06$..."
    assert bcrypt_cost(checked[-1]) == bcrypt_cost(dear) == 6
    assert bcrypt_cost(b"$2b$12$" + b"." * 53) == 12


class Blocking:
    """An injected bcrypt: the right password passes at once; any other guess is held in
    the check until the test releases it, and the most checks at once are counted."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.good_checks = 0
        self.changed = threading.Condition()
        self.release = threading.Event()

    def __call__(self, password: bytes, hashed: bytes) -> bool:
        if password == b"s3cret":
            self.good_checks += 1
            return bcrypt.checkpw(password, hashed)
        with self.changed:
            self.running += 1
            self.most = max(self.most, self.running)
            self.changed.notify_all()
        self.release.wait(WAIT)
        with self.changed:
            self.running -= 1
        return False


def test_bcrypt_checks_at_once_are_bounded_and_a_known_pair_never_waits() -> None:
    checker = Blocking()
    auth = BasicAuth({"prom": S3CRET_HASH.encode()}, max_checks=2, wait=0.0, checker=checker)
    assert auth.check(basic("prom", "s3cret")) is AuthResult.OK  # remembered from now on
    results: list[AuthResult] = []
    done = threading.Condition()

    def guess(n: int) -> None:
        result = auth.check(basic("prom" if n % 2 else "nobody", f"guess-{n}"))
        with done:
            results.append(result)
            done.notify_all()

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    try:
        with checker.changed:
            assert checker.changed.wait_for(lambda: checker.running == 2, WAIT)
        with done:  # the six others are turned away, not queued behind bcrypt
            assert done.wait_for(lambda: len(results) == 6, WAIT)
        assert results == [AuthResult.BUSY] * 6
        for _ in range(20):  # both checks still running: the known pair passes regardless
            assert auth.check(basic("prom", "s3cret")) is AuthResult.OK
        assert checker.running == 2
        assert checker.good_checks == 1  # from the cache, no bcrypt
    finally:
        checker.release.set()
        for thread in threads:
            thread.join(WAIT)
    assert sorted(r.value for r in results) == ["busy"] * 6 + ["denied"] * 2
    assert checker.most == 2
    # the slots are free again: a new guess is checked, not refused as busy
    checker.release.set()
    assert auth.check(basic("prom", "later")) is AuthResult.DENIED


def test_a_guess_waits_for_a_free_check_then_is_busy(caplog: pytest.LogCaptureFixture) -> None:
    checker = Blocking()
    auth = BasicAuth({"prom": S3CRET_HASH.encode()}, max_checks=1, wait=0.01, checker=checker)
    holder = threading.Thread(target=auth.check, args=(basic("prom", "first"),))
    holder.start()
    try:
        with checker.changed:
            assert checker.changed.wait_for(lambda: checker.running == 1, WAIT)
        with caplog.at_level(logging.WARNING, logger="opta_exporter"):
            for _ in range(3):
                assert auth.check(basic("prom", "second")) is AuthResult.BUSY
        assert len(caplog.records) == 1  # once per spell
        assert "second" not in caplog.text
    finally:
        checker.release.set()
        holder.join(WAIT)
    assert not auth.allows(basic("prom", "third"))
    assert checker.most == 1


def test_a_bad_hash_handed_to_basic_auth_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="bcrypt"):
        BasicAuth({"prom": b"$2b$12$garbage"})


def test_http_server_config_headers_as_exporter_toolkit_allows_them(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_text(
        "http_server_config:\n"
        "  http2: true\n"  # accepted; HTTP/1.1 is what is served
        "  headers:\n"
        "    X-Frame-Options: sameorigin\n"
        "    X-Content-Type-Options: nosniff\n"
        "    Strict-Transport-Security: max-age=31536000\n"
        "    Content-Security-Policy: \"default-src 'none'\"\n"
        "    X-XSS-Protection: ''\n"  # blank: unset, as the toolkit documents
    )
    assert load_web_config(str(path)).headers == (
        ("X-Frame-Options", "sameorigin"),
        ("X-Content-Type-Options", "nosniff"),
        ("Strict-Transport-Security", "max-age=31536000"),
        ("Content-Security-Policy", "default-src 'none'"),
    )


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ("Authorization: x", "'Authorization' can not be configured"),
        ("Content-Type: text/html", "'Content-Type' can not be configured"),
        ("Content-Length: '3'", "'Content-Length' can not be configured"),
        ("Set-Cookie: a=b", "can not be configured"),
        ("x-frame-options: deny", "can not be configured"),  # names as the toolkit spells them
        ("X-Frame-Options: allow", "expected one of deny, sameorigin"),
        ("X-Content-Type-Options: sniff", "expected one of nosniff"),
        ("Content-Security-Policy: 3", "one-line string"),
        ('Content-Security-Policy: "a\\r\\nX-Evil: 1"', "one-line string"),
        ("[1, 2]", "mapping"),
    ],
)
def test_headers_the_toolkit_forbids_are_a_config_error(
    tmp_path: Path, headers: str, fragment: str
) -> None:
    path = tmp_path / "web.yml"
    path.write_text(f"http_server_config:\n  headers:\n    {headers}\n")
    if headers.startswith("["):
        path.write_text(f"http_server_config:\n  headers: {headers}\n")
    with pytest.raises(ConfigError, match=fragment):
        load_web_config(str(path))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("http_server_config:\n  http3: true", "unknown http_server_config keys"),
        ("http_server_config:\n  http2: maybe", "http2 must be true or false"),
        ("http_server_config: 1", "mapping"),
    ],
)
def test_http_server_config_refuses_what_it_does_not_know(
    tmp_path: Path, text: str, fragment: str
) -> None:
    path = tmp_path / "web.yml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        load_web_config(str(path))
