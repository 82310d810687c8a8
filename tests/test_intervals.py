"""Intervals a script asks for: registerTE periods and StreamReader retry intervals past the
longest one (2**31 - 1 seconds, gears_abi.MAX_INTERVAL_SECS) are refused when registered;
asyncio timers that far away (or at infinity) only wait, the session's loop goes on."""
import pytest

from conftest import pyexec, pyexec_err

LONGEST = 2**31 - 1


def assert_serving(r):
    assert r.ping()
    assert pyexec(r, "execute('set', 'after', 'ok')") == "OK"
    assert r.get("after") == "ok"


@pytest.mark.parametrize("seconds", [10**19, 2**64 + 5, LONGEST + 1])
def test_a_time_event_period_past_the_longest_is_refused(r, seconds):
    err = pyexec_err(r, f"registerTE({seconds}, lambda: None)")
    assert f"time argument must be a positive long of at most {LONGEST} seconds" in err
    assert r.info("rg")["rg_ntimeevents"] == 0
    assert_serving(r)


def test_the_host_refuses_a_period_past_the_longest_whatever_the_guest_sends(r):
    # The guest is not trusted: the raw request, bypassing registerTE's own check.
    script = ("import gears_host\n"
              "try:\n"
              f"    gears_host.request('time_event', '{10**19}', '', '0')\n"
              "except gears_host.error as e:\n"
              "    execute('set', 'refused', str(e))\n")
    assert pyexec(r, script) == "OK"
    assert r.get("refused") == f"time argument must be a positive long of at most {LONGEST} seconds"
    assert r.info("rg")["rg_ntimeevents"] == 0
    assert_serving(r)


def test_the_longest_period_is_accepted(fresh_server):
    r = fresh_server.client()
    assert pyexec(r, f"registerTE({LONGEST}, lambda: None)") == "OK"
    assert r.info("rg")["rg_ntimeevents"] == 1
    assert_serving(r)


@pytest.mark.parametrize("option, value, message", [
    ("onFailedRetryInterval", 10**19, f"onFailedRetryInterval argument must be at most {LONGEST} (seconds)"),
    ("onFailedRetryInterval", LONGEST + 1, f"onFailedRetryInterval argument must be at most {LONGEST} (seconds)"),
    ("duration", 10**19, f"duration argument must be at most {LONGEST * 1000} (ms)"),
])
def test_a_stream_interval_past_the_longest_is_refused(clean, option, value, message):
    r = clean
    script = (f"GB('StreamReader').foreach(lambda x: None).register(prefix='s:', onFailedPolicy='retry', "
              f"{option}={value})")
    assert message in pyexec_err(r, script)
    assert r.execute_command("RG.DUMPREGISTRATIONS") == []
    assert_serving(r)


def test_the_host_refuses_a_retry_interval_past_the_longest_whatever_the_guest_sends(clean):
    r = clean
    fields = ["reader", "StreamReader", "mode", "async", "prefix", "s:", "batch", "1", "duration", "0",
              "trimStream", "1", "onFailedPolicy", "retry", "onFailedRetryInterval", str(10**19)]
    script = ("import gears_host\n"
              "try:\n"
              f"    gears_host.request('create_registration', *{fields!r})\n"
              "except gears_host.error as e:\n"
              "    execute('set', 'refused', str(e))\n")
    assert pyexec(r, script) == "OK"
    assert r.get("refused") == "registration field onFailedRetryInterval is not valid"
    assert r.execute_command("RG.DUMPREGISTRATIONS") == []
    assert_serving(r)


@pytest.mark.parametrize("delay", ["math.inf", "1e300", "math.nan"])
def test_an_asyncio_timer_at_infinity_leaves_the_sessions_loop_working(clean, delay):
    r = clean
    script = ("import math\n"
              "def start(x):\n"
              f"    runCoroutine(asyncio.sleep({delay}))\n"
              "    return 'started'\n"
              "async def nap(x):\n"
              "    await asyncio.sleep(0.05)\n"
              "    return 'awake'\n"
              "GB('CommandReader').map(start).register(trigger='forever')\n"
              "GB('CommandReader').map(nap).register(trigger='nap')\n")
    assert pyexec(r, script) == "OK"
    assert r.execute_command("RG.TRIGGER", "forever") == ["started"]
    assert r.execute_command("RG.TRIGGER", "nap") == ["awake"]
    assert r.execute_command("RG.TRIGGER", "forever") == ["started"]
    assert r.execute_command("RG.TRIGGER", "nap") == ["awake"]
    assert_serving(r)
