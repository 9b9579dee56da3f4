"""Queue order and core accounting, with the launch replaced by a fake (no processes)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from aiaas.errors import Conflict, InvalidInput
from aiaas.jobs.store import InMemoryJobStore
from aiaas.training.launcher import Scheduler

from .conftest import blobs_csv, tabular_request


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Scheduler:
    s = Scheduler(InMemoryJobStore(), tmp_path / "jobs", cores=4)

    def launch(job_id: str, resume: bool = False) -> None:
        s.store.update(job_id, state="running")
        s.runners[job_id] = SimpleNamespace(spec=s.store.get(job_id).spec, done=False, resume=resume)  # type: ignore[assignment]

    monkeypatch.setattr(s, "_launch", launch)
    return s


def test_priority_order_without_overcommit(fake: Scheduler, tmp_path: Path) -> None:
    data = blobs_csv(tmp_path / "t.csv", 20)
    low = fake.submit(tabular_request(data, resources={"workers": 2, "threads_per_worker": 1}, priority=0))
    high = fake.submit(tabular_request(data, resources={"workers": 2, "threads_per_worker": 1}, priority=5))
    big = fake.submit(tabular_request(data, resources={"workers": 2, "threads_per_worker": 2}, priority=1))
    assert fake.tick() == [high.id]  # big (4 cores) is next and does not fit: it blocks low, no starvation
    assert fake.used_cores() == 2
    fake.runners[high.id].done = True  # type: ignore[attr-defined]
    assert fake.tick() == [big.id]
    assert fake.tick() == []
    fake.runners[big.id].done = True  # type: ignore[attr-defined]
    assert fake.tick() == [low.id]


def test_too_big_for_the_machine_is_refused(fake: Scheduler, tmp_path: Path) -> None:
    data = blobs_csv(tmp_path / "t.csv", 20)
    with pytest.raises(InvalidInput, match=r"needs 8 cores .* training may use 4"):
        fake.submit(tabular_request(data, resources={"workers": 4, "threads_per_worker": 2}))
    assert fake.store.list() == []


def test_cancel_queued_and_terminal(fake: Scheduler, tmp_path: Path) -> None:
    job = fake.submit(tabular_request(blobs_csv(tmp_path / "t.csv", 20)))
    assert fake.cancel(job.id).state == "cancelled"
    with pytest.raises(Conflict, match="already cancelled"):
        fake.cancel(job.id)
    assert fake.tick() == []


def test_cancel_while_validating_wins(fake: Scheduler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cancel that lands while the data is being validated keeps the job cancelled (never queued after it)."""
    import threading

    from aiaas.training import launcher

    entered, release = threading.Event(), threading.Event()
    real = launcher.validate_job

    def slow_validate(spec):  # type: ignore[no-untyped-def]
        entered.set()
        assert release.wait(10)
        return real(spec)

    monkeypatch.setattr(launcher, "validate_job", slow_validate)
    result: dict[str, object] = {}
    t = threading.Thread(
        target=lambda: result.update(job=fake.submit(tabular_request(blobs_csv(tmp_path / "t.csv", 20))))
    )
    t.start()
    assert entered.wait(10)
    (job,) = fake.store.list()
    assert job.state == "validating"
    assert fake.cancel(job.id).state == "cancelled"
    release.set()
    t.join(10)
    assert result["job"].state == "cancelled"  # type: ignore[attr-defined]
    assert fake.store.get(job.id).state == "cancelled"
    assert not Path(job.job_dir).exists()
    assert fake.tick() == []


def test_recover_resumes_running_jobs(fake: Scheduler, tmp_path: Path) -> None:
    job = fake.submit(tabular_request(blobs_csv(tmp_path / "t.csv", 20)))
    fake.store.update(job.id, state="running")
    assert fake.recover() == [job.id]
    assert fake.runners[job.id].resume is True  # type: ignore[attr-defined]
