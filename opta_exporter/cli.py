"""Flags, logging, signals: everything between the shell and the Exporter."""

from __future__ import annotations

import argparse
import logging
import queue
import signal
import sys
from types import FrameType

import requests

from opta_exporter import __version__
from opta_exporter.check import run_check
from opta_exporter.config import OPTIONS, ConfigError, config_from_values
from opta_exporter.daemon import Exporter
from opta_exporter.logs import setup_logging
from opta_exporter.web.webconfig import load_web_config

log = logging.getLogger("opta_exporter")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="opta-exporter",
        description="Prometheus exporter for Opta LMX. Every flag has an environment twin "
        "(shown in brackets); the admin key comes from a file or OPTA_LMX_ADMIN_KEY, "
        "never from the command line.",
        epilog="Every exported figure has a source a running LMX provides: families fed "
        "only by inputs LMX never sends (request_completed and memory_warning events, "
        "unnamed envelopes: per-request, TTFT, temperature and live tokens/s figures) "
        "were retired; requests, latency and tokens are relayed from LMX's /admin/metrics, "
        "and the throughput window is computed from its token counter. --window.size became "
        "--window.duration. See CHANGELOG.md.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--check",
        action="store_true",
        help="Validate the configuration, reach LMX once, say what works, exit non-zero "
        "on any failure.",
    )
    for opt in OPTIONS:
        default = f"default {opt.default}" if opt.default is not None else "no default"
        parser.add_argument(
            opt.flag,
            dest=opt.dest,
            default=None,
            metavar="VALUE",
            help=f"{opt.help} ({default}) [{opt.env}]",
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_values(vars(args))
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
    except OSError as exc:
        log.error(
            "cannot listen on %s:%d: %s", config.listen_host, config.listen_port, exc.strerror
        )
        return 1
    exporter.start()
    log.info(
        "opta-exporter %s serving %s on port %d, following %s",
        __version__,
        config.telemetry_path,
        exporter.server.port,
        config.lmx_url,
    )
    while signals.get() == signal.SIGHUP:
        log.info("SIGHUP ignored: nothing is reloaded; restart the exporter to apply changes")
    log.info("stopping")
    exporter.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
