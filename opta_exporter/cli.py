"""Flags, logging, signals: everything between the shell and the Exporter."""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import queue
import signal
import sys
from importlib import resources
from types import FrameType

import requests

from opta_exporter import __version__
from opta_exporter.check import run_check
from opta_exporter.config import OPTIONS, ConfigError, config_from_values
from opta_exporter.daemon import Exporter, ListenError
from opta_exporter.logs import setup_logging
from opta_exporter.web.webconfig import load_web_config

log = logging.getLogger("opta_exporter")

# Written at build time (never computed here: no git at runtime); absent, the env twins
# below, set by whoever builds (a container's ENV, a package recipe); else "unknown".
BUILD_INFO_FILE = "build_info.json"
BUILD_ENV = {"revision": "OPTA_EXPORTER_BUILD_REVISION", "date": "OPTA_EXPORTER_BUILD_DATE"}


def build_info(env: dict[str, str] | None = None) -> dict[str, str]:
    """revision and date of this build: the build's file, else its env vars, else unknown."""
    env = dict(os.environ) if env is None else env
    baked: dict[str, object] = {}
    try:
        text = (resources.files("opta_exporter") / BUILD_INFO_FILE).read_text(encoding="utf-8")
        loaded = json.loads(text)
        baked = loaded if isinstance(loaded, dict) else {}
    except (OSError, ValueError):
        pass
    info = {}
    for key, var in BUILD_ENV.items():
        value = baked.get(key)
        info[key] = str(value) if isinstance(value, str) and value else env.get(var) or "unknown"
    return info


def version_text(env: dict[str, str] | None = None) -> str:
    """As Prometheus' own tools say it (`node_exporter --version`)."""
    info = build_info(env)
    return (
        f"opta-exporter, version {__version__} (revision: {info['revision']})\n"
        f"  build date:       {info['date']}\n"
        f"  python version:   {platform.python_version()}\n"
        f"  platform:         {sys.platform}/{platform.machine()}"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="opta-exporter",
        description="Prometheus exporter for Opta LMX. Every setting has an environment "
        "twin (shown in brackets); the admin key comes from a file or OPTA_LMX_ADMIN_KEY, "
        "never from the command line.",
        epilog="Every exported figure has a source a running LMX provides: families fed "
        "only by inputs LMX never sends (request_completed and memory_warning events, "
        "unnamed envelopes: per-request, TTFT, temperature and live tokens/s figures) "
        "were retired; requests, latency and tokens are relayed from LMX's /admin/metrics, "
        "and the throughput window is computed from its token counter. --window.size became "
        "--window.duration. See CHANGELOG.md.",
    )
    parser.add_argument(
        "--version", action="store_true", help="Say the version and build, then exit."
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="Validate the configuration, reach LMX once, say what works, exit non-zero "
        "on any failure.",
    )
    for opt in OPTIONS:
        # an option without a default says in its help what unset means
        default = f" (default {opt.default})" if opt.default is not None else ""
        help_text = f"{opt.help}{default} [{opt.env}]"
        if opt.kind == "switch":
            parser.add_argument(
                opt.flag,
                dest=opt.dest,
                default=None,
                action="store_const",
                const="true",
                help=help_text,
            )
        else:
            parser.add_argument(
                opt.flag,
                dest=opt.dest,
                default=None,
                metavar="VALUE",
                action="append" if opt.kind == "repeatable" else "store",
                help=help_text,
            )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        print(version_text())
        return 0
    values = {
        dest: ",".join(value) if isinstance(value, list) else value
        for dest, value in vars(args).items()
    }  # a repeated flag: its values as its env twin holds them
    try:
        config = config_from_values(values)
        web = load_web_config(config.web_config_file) if config.web_config_file else None
    except ConfigError as exc:
        print(f"opta-exporter: error: {exc}", file=sys.stderr)  # one line, before any thread
        return 2
    if args.check:
        return run_check(config, requests.Session(), print)
    setup_logging(config.log_level, config.log_format)
    # The handler only queues the signal; the main thread says what it does. SIGHUP (a
    # closed terminal, `kill -HUP`, a reload habit) must not kill the exporter: its default
    # action is death, and systemd counts death by SIGHUP as a clean exit, so
    # Restart=on-failure would leave the service down. Handlers go in before the Exporter
    # exists, so a signal during start-up is acted on once it serves.
    signals: queue.SimpleQueue[int] = queue.SimpleQueue()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        signals.put(signum)  # SimpleQueue.put is safe in a signal handler

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    try:
        exporter = Exporter(config, web=web)
    except ListenError as exc:
        log.error("cannot listen on %s: %s", exc.address, exc.strerror)
        return 1
    exporter.start()
    log.info(
        "opta-exporter %s serving %s on %s, following %s",
        __version__,
        config.telemetry_path,
        ", ".join(server.address for server in exporter.servers),
        config.lmx_url,
    )
    while signals.get() == signal.SIGHUP:
        log.info("SIGHUP ignored: nothing is reloaded; restart the exporter to apply changes")
    log.info("stopping")
    exporter.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
