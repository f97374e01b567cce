"""The scheduling policies of chatd's threads: the I/O threads normal, the
store's threads SCHED_BATCH (a submit does not preempt the loop), password
hashing SCHED_IDLE (a login storm does not slow message delivery)."""
import os

import pytest

import harness
from api import login, register


def thread_policies(pid):
    """The scheduling policy (field 41 of /proc/<pid>/task/<tid>/stat) of
    each of the process's threads."""
    policies = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except FileNotFoundError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        policies.append(int(fields[38]))  # field 41, counted from 3 after ')'
    return policies


SCHED_OTHER, SCHED_BATCH, SCHED_IDLE = 0, 3, 5


@pytest.mark.parametrize("idle", ["1", "0"])
def test_hashing_threads_run_at_idle_priority(make_server, idle):
    # With ARGON2_IDLE_PRIORITY=1 the threads that hash run at SCHED_IDLE, so
    # an I/O thread waking preempts them; every other thread stays normal.
    srv = make_server("sqlite", env={"ARGON2_IDLE_PRIORITY": idle, "ARGON2_CONCURRENCY": "2",
                                       "STORE_READERS": "2"})
    user = register(srv)
    assert login(srv, user.email, user.password).status_code == 200
    # Both hashing threads start with the first hash and lower themselves
    # as they start.
    want = 2 if idle == "1" else 0
    harness.wait_until(lambda: thread_policies(srv.proc.pid).count(SCHED_IDLE) == want, 10,
                       what=f"{want} threads at SCHED_IDLE")
    policies = thread_policies(srv.proc.pid)
    assert policies.count(SCHED_BATCH) == 1 + 2, policies  # the writer, STORE_READERS=2
    assert policies.count(SCHED_OTHER) == len(policies) - want - 3, policies


@pytest.mark.parametrize("readers", ["1", "3"])
def test_store_threads_run_sched_batch(make_server, readers):
    srv = make_server("sqlite", env={"STORE_READERS": readers})
    want = 1 + int(readers)
    harness.wait_until(lambda: thread_policies(srv.proc.pid).count(SCHED_BATCH) == want, 10,
                       what=f"{want} store threads at SCHED_BATCH")
    # The main thread, the I/O loop, stays at the normal policy.
    with open(f"/proc/{srv.proc.pid}/stat") as f:
        stat = f.read()
    assert int(stat[stat.rindex(")") + 2:].split()[38]) == SCHED_OTHER
