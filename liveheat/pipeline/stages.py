"""The stage threads of a run: capture, inference (recorded workers or live), render.

Each is a function of the `Runner` it serves; the runner starts them and joins them.
"""

from __future__ import annotations

import time
from queue import Empty, Queue
from typing import TYPE_CHECKING, Any

from liveheat.pipeline.flow import _END, _POLL, _Inferred, _Job, _Latest

if TYPE_CHECKING:
    from liveheat.pipeline.runner import Runner


# ------------------------------------------------------------------ stages
def capture(r: Runner, q_next: Queue, latest: _Latest | None) -> None:
    try:
        t_next = 0.0
        seq = 0
        since: int | None = None
        while not r._stopping:
            if not r.live and r.max_frames is not None and seq >= r.max_frames:
                break  # recorded: nothing is dropped, so N read = N written
            t_next = r._pace(t_next)
            if latest is None and not r._take_slot():  # recorded: bounded frames in flight
                break
            frame = r.source.read()
            if frame is None:
                break
            now = time.monotonic()
            # live frames carry their capture time; recorded ones their source time
            t_cap = float(frame.timestamp) if r.live else now
            if r.live and not (now - 5.0 < t_cap <= now + 0.01):
                t_cap = now  # a source whose clock is not time.monotonic()
            r.stats._captured(now)
            job = _Job(frame=frame, t_cap=t_cap, seq=seq)
            seq += 1
            if latest is None:  # recorded: every Nth frame is inferred, decided in order
                every = max(1, int(r.settings.every or 1))
                job.infer = since is None or since + 1 >= every
                since = 0 if job.infer else since + 1
            if latest is not None:
                latest.put(job)
                r._put_newest(q_next, job)
            elif not r._put(q_next, job):
                break
            r.stats.dropped_source = int(getattr(r.source, "dropped", 0) or 0)
    except BaseException as e:  # noqa: BLE001 - handed to run()
        r._fail(e)
    finally:
        r.stats.dropped_source = int(getattr(r.source, "dropped", 0) or 0)
        if latest is not None:
            latest.close()
            r._put_newest(q_next, _END)
        else:
            r._put_end(q_next)


def infer_recorded(r: Runner, backbone: Any, q_in: Queue, q_out: Queue) -> None:
    """One of the inference workers: the frames marked for inference get Features."""
    try:
        while True:
            ok, job = r._get(q_in)
            if not ok:
                break
            if job is _END:
                r._put(q_in, _END)  # for the sibling workers
                break
            if job.infer:
                t0 = time.perf_counter()
                job.features = backbone(job.frame.image)
                job.work_s = time.perf_counter() - t0
                r.stats._inferred(time.monotonic())
                job.feat_index, job.feat_t = job.frame.index, job.t_cap
            if not r._put(q_out, job):
                break
    except BaseException as e:  # noqa: BLE001
        r._fail(e)
    finally:
        r._put_end(q_out)


def infer_live(r: Runner, latest: _Latest) -> None:
    try:
        seq = -1
        while not r._stopping:
            if r.settings.paused:
                r._wait_unpaused()
                continue
            every = max(1, int(r.settings.every or 1))
            job, closed = latest.wait_newer(seq + every - 1, _POLL)
            if job is None:
                if closed:
                    break
                continue
            seq = job.seq
            # the job belongs to the render stage: only read here, never written
            features = r._backbones[0](job.frame.image)
            r.stats._inferred(time.monotonic())
            r._newest = _Inferred(features, job.frame.index, job.t_cap)  # atomic swap
    except BaseException as e:  # noqa: BLE001
        r._fail(e)


def render_stage(r: Runner, q_in: Queue, q_out: Queue) -> None:
    # recorded: the inference workers may finish out of order; `pending` puts the frames
    # back in order and gives the frames between two inferences the last map (--every)
    pending: dict[int, _Job] = {}
    expect, ends, last = 0, 0, None
    workers = 1 if r.live else len(r._backbones)
    try:
        while not r._stopping:
            if r.settings.paused:  # the output stage holds the picture meanwhile
                time.sleep(_POLL)
                continue
            try:
                item = q_in.get(timeout=_POLL)
            except Empty:
                continue
            if item is _END:
                ends += 1
                if ends >= workers:
                    break
                continue
            r._saw_depth(q_in.qsize() + 1)
            if r.live:
                newest = r._newest
                if newest is not None:
                    item.features, item.feat_index, item.feat_t = (
                        newest.features,
                        newest.index,
                        newest.t,
                    )
                ready = [item]
            else:
                pending[item.seq] = item
                ready = []
                while expect in pending:
                    job = pending.pop(expect)
                    expect += 1
                    if job.infer:
                        last = job
                    elif last is not None:
                        job.features, job.feat_index, job.feat_t = (
                            last.features,
                            last.feat_index,
                            last.feat_t,
                        )
                    ready.append(job)
            for job in ready:
                r._wait_unpaused()  # no frame is drawn with settings tried while paused
                t0 = time.perf_counter()
                image = r._draw(job)
                r.stats._processed(job.work_s + time.perf_counter() - t0)
                if not r.live:
                    r._slots.release()  # the frame left the reorder buffer
                if r.live:  # newest wins: a slow output shows fresh frames, not old ones
                    r._put_newest(q_out, (image, job))
                elif not r._put(q_out, (image, job)):
                    return
    except BaseException as e:  # noqa: BLE001
        r._fail(e)
    finally:
        r._put_end(q_out)
