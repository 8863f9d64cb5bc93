"""The LMX stand-in against real sockets: downloads and quantize jobs (lmx_simulator/jobs.py)
-- progress only in the listings, the events LMX sends at the ends (and, for quantize, the
start), the single quantize slot and its queue."""

from __future__ import annotations

from typing import Any

import requests

from lmx_simulator import LmxSimulator
from tests.unit.lmx_simulator import shapes
from tests.unit.lmx_simulator.harness import Harness, event

GIB = 1024**3


def body(sim: LmxSimulator, path: str) -> Any:
    r = requests.get(sim.url + path, timeout=3)
    assert r.status_code == 200
    return r.json()


def test_download_progress_advances_in_the_listing_then_completes(h: Harness) -> None:
    sim = h.sim()
    c = h.client(sim)
    assert sim.wait_for_subscribers(1)
    did = sim.start_download("org/model-4bit", total_bytes=8 * GIB, files_total=4)
    (entry,) = body(sim, "/admin/models/downloads")["downloads"]
    shapes.assert_shape(entry, shapes.DOWNLOAD)
    assert (entry["download_id"], entry["status"], entry["progress_percent"]) == (
        did,
        "downloading",
        0.0,
    )
    sim.advance_download(did, 3 * GIB, files_completed=1)
    (entry,) = body(sim, "/admin/models/downloads")["downloads"]
    assert (entry["progress_percent"], entry["downloaded_bytes"], entry["total_bytes"]) == (
        37.5,
        3 * GIB,
        8 * GIB,
    )
    assert (entry["files_completed"], entry["files_total"], entry["completed_at"]) == (1, 4, None)
    sim.finish_download(did, local_path="/hf/models--org--model-4bit")
    name, data = event(c.read_chunk())
    assert name == "download_completed"
    assert set(data) == {"download_id", "repo_id", "local_path", "duration_sec"}
    assert (data["download_id"], data["repo_id"], data["local_path"]) == (
        did,
        "org/model-4bit",
        "/hf/models--org--model-4bit",
    )
    assert body(sim, "/admin/models/downloads") == {"downloads": []}
    (done,) = body(sim, "/admin/models/downloads?include_inactive=true")["downloads"]
    shapes.assert_shape(done, shapes.DOWNLOAD)
    assert (done["status"], done["progress_percent"], done["downloaded_bytes"]) == (
        "completed",
        100.0,
        8 * GIB,
    )
    assert done["completed_at"] >= done["started_at"]


def test_download_failure(h: Harness) -> None:
    sim = h.sim()
    c = h.client(sim)
    assert sim.wait_for_subscribers(1)
    did = sim.start_download("org/gone")
    sim.fail_download(did, "HTTP 404", error_code="repo_not_found")
    assert event(c.read_chunk()) == (
        "download_failed",
        {"download_id": did, "repo_id": "org/gone", "error": "HTTP 404"},
    )
    (failed,) = body(sim, "/admin/models/downloads?include_inactive=1")["downloads"]
    assert (failed["status"], failed["error"], failed["error_code"]) == (
        "failed",
        "HTTP 404",
        "repo_not_found",
    )
    assert body(sim, "/admin/models/downloads?include_inactive=false") == {"downloads": []}


def test_quantize_job_moves_through_statuses_with_events_only_at_the_ends(h: Harness) -> None:
    sim = h.sim()
    c = h.client(sim)
    assert sim.wait_for_subscribers(1)
    first = sim.start_quantize("org/src", bits=8, group_size=32)
    second = sim.start_quantize("org/other")
    assert event(c.read_chunk()) == (
        "quantize_progress",
        {"model_id": "org/src", "status": "quantizing", "percent": 0},
    )
    listing = body(sim, "/admin/quantize")
    shapes.assert_shape(listing, shapes.QUANTIZE)
    assert listing["count"] == 2
    jobs = {j["job_id"]: j for j in listing["jobs"]}
    assert (jobs[first]["status"], jobs[first]["queue_position"], jobs[first]["bits"]) == (
        "running",
        0,
        8,
    )
    assert (jobs[second]["status"], jobs[second]["queue_position"]) == ("queued", 1)
    sim.finish_quantize(first)
    assert [event(c.read_chunk()) for _ in range(2)] == [
        ("quantize_progress", {"model_id": "org/src", "status": "completed", "percent": 100}),
        ("quantize_progress", {"model_id": "org/other", "status": "quantizing", "percent": 0}),
    ]
    sim.fail_quantize(second, "out of memory")
    assert event(c.read_chunk()) == (
        "quantize_progress",
        {"model_id": "org/other", "status": "failed: out of memory", "percent": 0},
    )
    statuses = {
        j["job_id"]: (j["status"], j["queue_position"])
        for j in body(sim, "/admin/quantize")["jobs"]
    }
    assert statuses == {first: ("completed", None), second: ("failed", None)}


def test_quantize_cancel_goes_through_cancelling_when_running(h: Harness) -> None:
    sim = h.sim()
    c = h.client(sim)
    assert sim.wait_for_subscribers(1)
    running = sim.start_quantize("org/a")
    waiting = sim.start_quantize("org/b")
    assert event(c.read_chunk())[1]["status"] == "quantizing"
    sim.cancel_quantize(waiting)
    assert event(c.read_chunk())[1] == {"model_id": "org/b", "status": "cancelled", "percent": 0}
    sim.cancel_quantize(running)
    assert event(c.read_chunk())[1] == {"model_id": "org/a", "status": "cancelling", "percent": 0}
    jobs = {j["job_id"]: j["status"] for j in body(sim, "/admin/quantize")["jobs"]}
    assert jobs == {running: "cancelling", waiting: "cancelled"}
    sim.cancel_quantize(running)
    assert event(c.read_chunk())[1] == {"model_id": "org/a", "status": "cancelled", "percent": 0}
