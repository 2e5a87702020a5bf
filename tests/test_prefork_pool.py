"""The prefork pool's rule, with no processes: which workers ``plan`` starts and stops
(MAX_REQUESTS, reloads, REUSE_PORT lanes, crashes), and the arbiter driven turn by turn
with fork() faked. (Split from test_prefork_model.py, which runs real masters.)"""

from __future__ import annotations

import os
import socket
from typing import Any

from qactuar import Config
from qactuar.models.arbiter import Arbiter
from qactuar.models.pool import Plan, WorkerRecord, plan
from qactuar.models.prefork import PreforkSockets
from qactuar.models.slot import WorkerSlot, WorkerState

# the pool rule (no processes) ------------------------------------------------------------


def record(pid: int, state: int = WorkerState.READY, generation: int = 0,
           started: float = 0.0, **flags: Any) -> WorkerRecord:
    slot = WorkerSlot()
    slot.state = state
    return WorkerRecord(pid, slot, generation, 0, started or float(pid),
                        ready=state != WorkerState.BOOTING, **flags)


def stops(todo: Plan) -> list[tuple[int, str]]:
    return [(w.pid, why) for w, why in todo.stop]


def test_plan_starts_a_replacement_before_a_retiring_worker_stops():
    retiring = record(1, WorkerState.RETIRING)
    other = record(2)
    assert plan([retiring, other], 0, 2) == Plan(start=1)
    new = record(3, WorkerState.BOOTING)
    assert stops(plan([retiring, other, new], 0, 2)) == []
    new.slot.state, new.ready = WorkerState.READY, True
    todo = plan([retiring, other, new], 0, 2)
    assert (todo.start, stops(todo)) == (0, [(1, "replaced: MAX_REQUESTS")])


def test_plan_reload_replaces_old_workers_one_new_one_at_a_time():
    old = [record(1), record(2)]
    assert plan(old, 1, 2).start == 2
    new = [record(3, generation=1), record(4, WorkerState.BOOTING, generation=1)]
    assert stops(plan(old + new, 1, 2)) == [(1, "replaced: reload")]  # the oldest first
    old_booting = record(5, WorkerState.BOOTING)
    assert stops(plan([old_booting, *new], 1, 2)) == [(5, "outdated before it served")]


def test_plan_with_lanes_stops_an_old_worker_only_once_its_lanes_successor_serves():
    # REUSE_PORT: the new worker on a lane must be ready before the old one
    # on that lane stops, or the lane's clients wait for it to start
    lanes = [socket.socket() for _ in range(3)]
    try:
        old = [record(1, lane=lanes[0]), record(2, lane=lanes[1])]
        # right after a reload to fewer workers the oldest stops at once; the
        # master stops before it starts, so no new worker takes its lane
        todo = plan([*old, record(5, lane=lanes[2])], 1, 2)
        assert (todo.start, stops(todo)) == (2, [(1, "replaced: reload")])
        new = [record(3, WorkerState.BOOTING, generation=1, lane=lanes[0]),
               record(4, generation=1, lane=lanes[1])]
        # worker 1 is the oldest, but its successor is still starting
        assert stops(plan(old + new, 1, 2)) == [(2, "replaced: reload")]
        # a lane handed over goes before one nobody took (that one closes)
        old.append(record(5, lane=lanes[2]))
        assert stops(plan(old + new, 1, 2)) == [(2, "replaced: reload"), (5, "replaced: reload")]
        new[0].slot.state, new[0].ready = WorkerState.READY, True
        assert stops(plan(old + new, 1, 2)) == [
            (1, "replaced: reload"), (2, "replaced: reload"), (5, "replaced: reload")]
    finally:
        for lane in lanes:
            lane.close()


def test_plan_stops_old_workers_while_a_start_is_still_pending():
    # A new worker that cannot start yet (fork failing, boot back-off) must
    # not keep every old one: the resources it waits for may be theirs.
    old = [record(1), record(2)]
    new = record(3, generation=1)
    todo = plan([*old, new], 1, 2)
    assert (todo.start, stops(todo)) == (1, [(1, "replaced: reload")])
    # with lanes too: a reload from three workers to one
    lanes3 = [socket.socket() for _ in range(3)]
    try:
        three = [record(7 + i, lane=lane) for i, lane in enumerate(lanes3)]
        todo = plan(three, 1, 1)
        assert (todo.start, stops(todo)) == (1, [(7, "replaced: reload"), (8, "replaced: reload")])
    finally:
        for lane in lanes3:
            lane.close()
    # with lanes: the retiring worker whose lane's successor serves goes
    lanes = [socket.socket() for _ in range(2)]
    try:
        retiring = [record(4, WorkerState.RETIRING, lane=lanes[0]),
                    record(5, WorkerState.RETIRING, lane=lanes[1])]
        successor = record(6, lane=lanes[0])
        todo = plan([*retiring, successor], 0, 2)
        assert (todo.start, stops(todo)) == (1, [(4, "replaced: MAX_REQUESTS")])
    finally:
        for lane in lanes:
            lane.close()


def test_a_crashed_workers_replacement_takes_its_lane_while_the_one_before_drains(monkeypatch):
    # The master's turns with processes faked: a reload hands lane L from w1
    # to w2; w1 is draining when w2 crashes. w2's replacement must get L
    # (and serve its queue), not a new lane while L closes.
    import qactuar.models.arbiter as arbiter_module

    fake_os = type(os)("fake_os")
    fake_os.__dict__.update(os.__dict__)
    pids = iter(range(900_000, 900_100))
    fake_os.fork = lambda: next(pids)  # type: ignore[attr-defined]
    fake_os.kill = lambda pid, signum: None  # type: ignore[attr-defined]
    monkeypatch.setattr(arbiter_module, "os", fake_os)
    config = Config()
    config.update({"HOST": "127.0.0.1", "PORT": 0, "WORKERS": 1, "REUSE_PORT": True}, "test")
    sockets = PreforkSockets(config)
    sockets.bind()
    arbiter = Arbiter(config, "x:app", None, sockets)

    def started() -> WorkerRecord:
        arbiter.maintain()
        worker = arbiter.workers[max(arbiter.workers)]
        worker.slot.state, worker.ready = WorkerState.READY, True
        return worker

    try:
        w1 = started()
        lane = w1.lane
        arbiter.generation += 1  # what a SIGHUP does
        w2 = started()
        assert w2.lane is lane
        arbiter.maintain()
        assert w1.stop_sent  # replaced: reload; it drains
        del arbiter.workers[w2.pid]  # w2 crashed (reaped)
        w3 = started()
        assert w3.lane is lane and lane in sockets.sockets and lane.fileno() >= 0
        # a SIGHUP while a crashed worker's replacement still boots: that
        # replacement stops (outdated) and the new one takes its lane
        del arbiter.workers[w1.pid]  # w1 done draining
        del arbiter.workers[w3.pid]  # w3 crashed
        arbiter.maintain()
        booting = arbiter.workers[max(arbiter.workers)]
        assert booting.lane is lane and not booting.ready
        arbiter.generation += 1
        w5 = started()
        assert booting.stop_sent  # outdated before it served
        assert w5.lane is lane and lane in sockets.sockets and lane.fileno() >= 0
    finally:
        for worker in arbiter.workers.values():
            worker.slot.close()
        for sock in sockets.sockets:
            sock.close()


def _random_turn(arbiter: Arbiter, rnd: Any, event: str, history: list[str]) -> None:
    """Apply ``event`` to the master's faked workers, run its turn, check the lanes."""
    workers = list(arbiter.workers.values())
    worker = rnd.choice(workers) if workers else None
    if event == "ready" and worker and not worker.leaving:
        worker.slot.state, worker.ready = WorkerState.READY, True
    elif event == "crash" and worker:
        del arbiter.workers[worker.pid]
        worker.slot.close()
    elif event == "kill" and worker:
        worker.killed = "hung"
    elif event == "retire" and worker and worker.ready and not worker.leaving:
        worker.slot.state = WorkerState.RETIRING
    elif event == "reload":
        arbiter.generation += 1
    elif event == "ttin":
        arbiter.num_workers += 1
    elif event == "ttou" and arbiter.num_workers > 1:
        arbiter.num_workers -= 1
    elif event == "reap":
        for gone in [w for w in workers if w.stop_sent or w.killed]:
            del arbiter.workers[gone.pid]
            gone.slot.close()
    arbiter.spawn_after = 0.0
    before, lanes_before = set(arbiter.workers), set(arbiter.listen.sockets)
    arbiter.maintain()
    history.append(event)
    open_lanes = set(arbiter.listen.sockets)
    if open_lanes - lanes_before:
        # a new lane while one closes: that one's queue was reset for nothing
        assert lanes_before <= open_lanes, history
    for pid in set(arbiter.workers) - before:
        assert arbiter.workers[pid].lane in open_lanes, history
    held = {w.lane for w in arbiter.workers.values() if not (w.stop_sent or w.killed)}
    assert held <= open_lanes, history
    assert not held or open_lanes <= held, history  # no lane listens for nobody


def test_lanes_stay_served_through_random_turns(monkeypatch):
    # The master's turns with processes faked, 150 random histories of 40
    # events (ready, crash, hang killed, retire, reload, TTIN/TTOU, reap; 5%
    # of forks fail), each checked by _random_turn; then the pool settles to
    # its target with one lane per worker.
    import random

    import qactuar.models.arbiter as arbiter_module

    fake_os = type(os)("fake_os")
    fake_os.__dict__.update(os.__dict__)
    pids = iter(range(800_000, 900_000))
    rnd = random.Random()

    def fork() -> int:
        if rnd.random() < 0.05:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        return next(pids)

    fake_os.fork = fork  # type: ignore[attr-defined]
    fake_os.kill = lambda pid, signum: None  # type: ignore[attr-defined]
    monkeypatch.setattr(arbiter_module, "os", fake_os)
    monkeypatch.setattr(arbiter_module.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(arbiter_module.logger, "disabled", True)
    events = ["ready", "crash", "kill", "retire", "reload", "ttin", "ttou", "reap", "tick", "tick"]
    for seed in range(150):
        rnd.seed(seed)
        config = Config()
        config.update({"HOST": "127.0.0.1", "PORT": 0, "REUSE_PORT": True,
                       "WORKERS": rnd.randint(1, 3)}, "test")
        sockets = PreforkSockets(config)
        sockets.bind()
        arbiter = Arbiter(config, "x:app", None, sockets)
        history = [f"seed {seed}"]
        try:
            for _ in range(40):
                _random_turn(arbiter, rnd, rnd.choice(events), history)
            for _ in range(30):  # no more trouble: workers start, old ones go
                for event in ("ready", "reap", "ready", "tick"):
                    _random_turn(arbiter, rnd, event, history)
                for worker in arbiter.workers.values():
                    if not worker.leaving:
                        worker.slot.state, worker.ready = WorkerState.READY, True
            current = [w for w in arbiter.workers.values()
                       if w.generation == arbiter.generation and not w.leaving]
            assert len(current) == arbiter.num_workers, history
            assert all(w.ready for w in current), history
            assert len(sockets.sockets) == arbiter.num_workers, history
        finally:
            for worker in arbiter.workers.values():
                worker.slot.close()
            for sock in sockets.sockets:
                sock.close()


def test_plan_fewer_workers_stops_a_booting_one_first_then_the_oldest():
    workers = [record(1), record(2), record(3, WorkerState.BOOTING)]
    assert stops(plan(workers, 0, 2)) == [(3, "fewer workers wanted")]
    assert stops(plan(workers[:2], 0, 1)) == [(1, "fewer workers wanted")]


def test_plan_replaces_dead_and_killed_workers_and_leaves_stopping_ones_alone():
    workers = [record(1, killed="timeout"), record(2, stop_sent=1.0), record(3)]
    assert plan(workers, 0, 3) == Plan(start=2)
