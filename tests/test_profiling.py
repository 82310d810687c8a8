"""ProfileExecutions: RG.GETEXECUTION reports where an execution spent its time."""
from conftest import pyexec, wait_for

SLOW = ("import time\n"
        "def slow(x):\n"
        "    time.sleep(0.05)\n"
        "    return x\n"
        "GB('PythonReader').map(slow).run(lambda: (x for x in range(4)))\n")


def plan_of(r, eid):
    assert wait_for(lambda: r.execute_command("RG.GETEXECUTION", eid)[0][3][1] == "done", 10)
    plan = r.execute_command("RG.GETEXECUTION", eid)[0][3]
    return dict(zip(plan[::2], plan[1::2]))


def step_durations(plan):
    return [(dict(zip(s[::2], s[1::2]))["arg"], dict(zip(s[::2], s[1::2]))["duration"]) for s in plan["steps"]]


def test_step_durations_with_profiling(r):
    r.execute_command("RG.CONFIGSET", "ProfileExecutions", "1")
    try:
        eid = pyexec(r, SLOW, "UNBLOCKING")
        plan = plan_of(r, eid)
    finally:
        r.execute_command("RG.CONFIGSET", "ProfileExecutions", "0")
    durations = step_durations(plan)
    slow = [ms for arg, ms in durations if "slow" in arg]
    assert slow and slow[0] >= 150, durations  # 4 records x 50 ms in that step
    others = [ms for arg, ms in durations if "slow" not in arg]
    assert all(ms < 150 for ms in others), durations
    assert plan["total_duration"] >= 150


def test_no_step_durations_without_profiling(r):
    eid = pyexec(r, SLOW, "UNBLOCKING")
    plan = plan_of(r, eid)
    assert all(ms == 0 for _, ms in step_durations(plan))
    assert plan["total_duration"] >= 150
