"""`liveheat batch --ray`: the same tasks as the local pool, as Ray tasks.

One Ray task per video and per chunk of images (`batch_jobs.run_task`), each asking for one
CPU; a Ray worker process keeps its model loaded between tasks, and onnxruntime gets the CPUs
Ray gave the task. Ray is an extra (`pip install 'liveheat[ray]'`), imported only here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from liveheat.errors import LiveheatError
from liveheat.pipeline.batch_jobs import Job, _record, remove_temporaries, run_task
from liveheat.settings.fields import Settings


def _remote_task(jobs: Sequence[Job], settings: Settings) -> list[dict]:
    """Runs inside a Ray worker: onnxruntime threads = the CPUs Ray assigned this task."""
    import ray

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    return run_task(jobs, settings, threads=max(1, int(cpus)))


def connect(address: str | None) -> tuple[Any, bool, float]:
    """Join or start Ray: (the ray module, whether this call started it, seconds it took).

    `address`: None or "local" starts a local Ray on this machine's usable cores; "auto"
    joins the cluster in RAY_ADDRESS (or the one running here); "ray://HOST:PORT" joins that
    cluster through Ray Client. A Ray already initialised in this process is used as it is.
    """
    import time

    try:
        import ray
    except ImportError:
        raise LiveheatError(
            "--ray needs Ray: pip install 'liveheat[ray]' (or pip install ray)"
        ) from None
    if ray.is_initialized():
        return ray, False, 0.0
    from liveheat._common.system import quiet_stderr, usable_cores

    t0 = time.perf_counter()
    kw: dict[str, Any] = dict(
        logging_level=logging.ERROR, log_to_driver=False, configure_logging=True
    )
    if address in (None, "", "local"):
        kw.update(num_cpus=usable_cores(), include_dashboard=False)
    else:
        kw["address"] = address
    try:
        if os.environ.get("LIVEHEAT_DEBUG"):
            ray.init(**kw)
        else:
            with quiet_stderr():  # Ray's start-up lines
                ray.init(**kw)
    except Exception as e:  # noqa: BLE001 - no cluster there, a refused connection
        msg = " ".join(str(e).split())[:300]
        where = "a local Ray" if address in (None, "", "local") else f"Ray at {address!r}"
        raise LiveheatError(f"cannot start {where}: {msg}") from None
    return ray, True, time.perf_counter() - t0


def run(
    tasks: Iterable[Sequence[Job]],
    settings: Settings,
    address: str | None,
    on_done: Callable[[list[dict]], None],
    on_start: Callable[[float], None] | None = None,
) -> None:
    """Run every task on Ray; `on_done(records)` here as each ends. On an exception here
    (Ctrl-C) the pending tasks are cancelled and their temporary files removed."""
    ray, started, seconds = connect(address)
    if on_start is not None:
        on_start(seconds)
    remote = ray.remote(num_cpus=1, max_retries=0)(_remote_task)
    pending: dict[Any, Sequence[Job]] = {}
    try:
        for jobs in tasks:
            pending[remote.remote(tuple(jobs), settings)] = jobs
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                jobs = pending.pop(ref)
                try:
                    records = ray.get(ref)
                except Exception as e:  # noqa: BLE001 - a worker died: its jobs failed
                    why = " ".join(str(e).split())[:200] or type(e).__name__
                    records = [_record(j, "failed", error=f"Ray task failed: {why}") for j in jobs]
                on_done(records)
    except BaseException:
        for ref in pending:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001, S110 - already finished or gone
                pass
        for jobs in pending.values():
            for job in jobs:
                remove_temporaries(job)
        raise
    finally:
        if started:
            ray.shutdown()
