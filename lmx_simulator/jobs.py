"""Downloads and quantize jobs as LMX runs them: what a test starts, advances and ends.

A running job's progress is only in the listings (/admin/models/downloads; /admin/quantize
has none at all): the stream hears of a download only when it ends, and of a quantize job
when it starts and ends, with a `percent` of 0 or 100 and nothing in between.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

GIB = 1024**3
HF_CACHE = "/Users/lmx/.cache/huggingface/hub"  # where snapshot_download puts a repo
QUEUED, RUNNING, CANCELLING = "queued", "running", "cancelling"


@dataclass
class Download:
    download_id: str
    repo_id: str
    total_bytes: int
    files_total: int
    started_at: float
    status: str = "downloading"  # then completed | failed
    downloaded_bytes: int = 0
    files_completed: int = 0
    progress_percent: float = 0.0
    error: str | None = None
    error_code: str | None = None
    completed_at: float | None = None

    def entry(self) -> dict[str, object]:
        return {
            "download_id": self.download_id,
            "repo_id": self.repo_id,
            "status": self.status,
            "progress_percent": self.progress_percent,
            "downloaded_bytes": self.downloaded_bytes,
            "total_bytes": self.total_bytes,
            "files_completed": self.files_completed,
            "files_total": self.files_total,
            "error": self.error,
            "error_code": self.error_code,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
        }


@dataclass
class QuantizeJob:
    job_id: str
    source_model: str
    bits: int
    group_size: int
    mode: str
    started_at: float
    status: str = QUEUED  # running, cancelling, completed, failed, cancelled
    queue_position: int | None = None  # 1.. while queued, 0 while running, else None

    def entry(self) -> dict[str, object]:
        return {
            "job_id": self.job_id,
            "source_model": self.source_model,
            "bits": self.bits,
            "group_size": self.group_size,
            "mode": self.mode,
            "status": self.status,
            "started_at": self.started_at,
            "queue_position": self.queue_position,
        }


class JobTracker:
    """Mixed into LmxSimulator, which sets `_downloads` and `_jobs` up; writes hold `_cond`,
    events go out after the state changed."""

    _cond: threading.Condition
    _downloads: dict[str, Download]
    _jobs: dict[str, QuantizeJob]
    publish: Callable[[str, dict[str, object]], None]

    # -- downloads ---------------------------------------------------------------------
    def start_download(
        self, repo_id: str, *, total_bytes: int = 4 * GIB, files_total: int = 8
    ) -> str:
        """A download LMX has begun; it publishes nothing at the start. Returns its id."""
        download_id = secrets.token_urlsafe(16)
        with self._cond:
            self._downloads[download_id] = Download(
                download_id, repo_id, total_bytes, files_total, time.time()
            )
        return download_id

    def advance_download(
        self, download_id: str, downloaded_bytes: int, *, files_completed: int | None = None
    ) -> None:
        """Progress shows in the listing only (LMX never sends `download_progress`)."""
        with self._cond:
            d = self._downloads[download_id]
            d.downloaded_bytes = downloaded_bytes
            d.progress_percent = round(100.0 * downloaded_bytes / d.total_bytes, 1)
            if files_completed is not None:
                d.files_completed = files_completed

    def finish_download(self, download_id: str, *, local_path: str | None = None) -> None:
        with self._cond:
            d = self._downloads[download_id]
            d.status, d.completed_at, d.progress_percent = "completed", time.time(), 100.0
            d.downloaded_bytes, d.files_completed = d.total_bytes, d.files_total
            path = local_path or f"{HF_CACHE}/models--{d.repo_id.replace('/', '--')}"
            data: dict[str, object] = {
                "download_id": download_id,
                "repo_id": d.repo_id,
                "local_path": path,
                "duration_sec": round(d.completed_at - d.started_at, 1),
            }
        self.publish("download_completed", data)

    def fail_download(self, download_id: str, error: str, *, error_code: str | None = None) -> None:
        with self._cond:
            d = self._downloads[download_id]
            d.status, d.completed_at = "failed", time.time()
            d.error, d.error_code = error, error_code
            data: dict[str, object] = {
                "download_id": download_id,
                "repo_id": d.repo_id,
                "error": error,
            }
        self.publish("download_failed", data)

    def downloads_document(self, *, include_inactive: bool = False) -> dict[str, object]:
        """Running downloads only, unless finished ones are asked for too."""
        with self._cond:
            listed = [
                d.entry()
                for d in self._downloads.values()
                if include_inactive or d.status == "downloading"
            ]
        return {"downloads": listed}

    # -- quantize ----------------------------------------------------------------------
    def start_quantize(
        self, source_model: str, *, bits: int = 4, group_size: int = 64, mode: str = "affine"
    ) -> str:
        """Queue a job; like LMX's single slot it runs at once if no other job runs, and
        then (only then) `quantize_progress` says `quantizing` with percent 0."""
        job_id = secrets.token_hex(6)
        with self._cond:
            job = QuantizeJob(job_id, source_model, bits, group_size, mode, time.time())
            self._jobs[job_id] = job
            events = self._next_quantize()
        self._send_quantize(events)
        return job_id

    def finish_quantize(self, job_id: str) -> None:
        self._end_quantize(job_id, "completed", "completed", 100)

    def fail_quantize(self, job_id: str, message: str) -> None:
        """LMX's failure status on the stream is free text; the listing says `failed`."""
        self._end_quantize(job_id, "failed", f"failed: {message}", 0)

    def cancel_quantize(self, job_id: str) -> None:
        """A running job goes to `cancelling` first (call again to end it); a queued one
        is cancelled at once."""
        with self._cond:
            job = self._jobs[job_id]
            if job.status == RUNNING:
                job.status = CANCELLING
                events = [(job.source_model, CANCELLING, 0)]
            else:
                events = []
        if events:
            self._send_quantize(events)
        else:
            self._end_quantize(job_id, "cancelled", "cancelled", 0)

    def quantize_document(self) -> dict[str, object]:
        with self._cond:
            jobs = sorted(self._jobs.values(), key=lambda j: j.started_at, reverse=True)
            return {"jobs": [j.entry() for j in jobs], "count": len(jobs)}

    def _end_quantize(self, job_id: str, status: str, said: str, percent: int) -> None:
        with self._cond:
            job = self._jobs[job_id]
            job.status, job.queue_position = status, None
            events = [(job.source_model, said, percent), *self._next_quantize()]
        self._send_quantize(events)

    def _next_quantize(self) -> list[tuple[str, str, int]]:
        """Renumber the queue and start its head if the slot is free; with `_cond` held."""
        queued = [j for j in self._jobs.values() if j.status == QUEUED]
        events = []
        if queued and not any(j.status in (RUNNING, CANCELLING) for j in self._jobs.values()):
            head = queued.pop(0)
            head.status, head.queue_position = RUNNING, 0
            events.append((head.source_model, "quantizing", 0))
        for position, job in enumerate(queued, start=1):
            job.queue_position = position
        return events

    def _send_quantize(self, events: list[tuple[str, str, int]]) -> None:
        for model_id, status, percent in events:
            self.publish(
                "quantize_progress", {"model_id": model_id, "status": status, "percent": percent}
            )
