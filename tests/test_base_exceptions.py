"""sys.exit(), KeyboardInterrupt or any other BaseException raised by a script's callback is an
error of that record or run, exactly like an Exception: it never escapes into the session,
which stays usable for every later trigger."""
import pytest
import redis

from conftest import pyexec, pyexec_err, wait_for

# id -> (statement, the exception's name the error shows)
RAISERS = {
    "exit": ("sys.exit()", "SystemExit"),
    "exit3": ("sys.exit(3)", "SystemExit"),
    "interrupt": ("raise KeyboardInterrupt('ctrl-c')", "KeyboardInterrupt"),
    "generator-exit": ("raise GeneratorExit()", "GeneratorExit"),
    "own": ("raise Custom('mine')", "Custom"),
}
PRELUDE = "import sys\nclass Custom(BaseException):\n    pass\n"


def trigger_error(r, name):
    with pytest.raises(redis.ResponseError) as info:
        r.execute_command("RG.TRIGGER", name)
    return str(info.value)


@pytest.fixture(params=list(RAISERS))
def raiser(request):
    return RAISERS[request.param]


def test_in_a_map_step_it_is_that_records_error(r, raiser):
    statement, kind = raiser
    script = PRELUDE + ("def f(x):\n"
                        "    if x == 2:\n"
                        f"        {statement}\n"
                        "    return x * 10\n"
                        "GB('PythonReader').map(f).run(lambda: (x for x in [1, 2, 3]))\n")
    results, errors = pyexec(r, script)
    assert results == ["10"]  # as 1.2: no record is read after the first error
    assert len(errors) == 1 and kind in errors[0]
    assert pyexec(r, "execute('set', 'after', 'ok')") == "OK"


def test_in_a_reader_it_is_the_runs_error(r, raiser):
    statement, kind = raiser
    script = PRELUDE + ("def read():\n"
                        "    yield 'a'\n"
                        f"    {statement}\n"
                        "GB('PythonReader').run(read)\n")
    results, errors = pyexec(r, script)
    assert results == ["a"]
    assert len(errors) == 1 and kind in errors[0]


@pytest.mark.parametrize("step", ["map", "filter", "foreach", "flatmap"])
def test_in_a_triggered_step_the_session_stays_usable(clean, raiser, step):
    r = clean
    statement, kind = raiser
    script = PRELUDE + ("def boom(x):\n"
                        f"    {statement}\n"
                        f"GB('CommandReader').{step}(boom).register(trigger='boom')\n"
                        "GB('CommandReader').map(lambda x: 'fine').register(trigger='fine')\n")
    assert pyexec(r, script) == "OK"
    for _ in range(2):
        err = trigger_error(r, "boom")
        assert kind in err and "unusable" not in err
    assert r.execute_command("RG.TRIGGER", "fine") == ["fine"]


def test_in_an_async_step_the_session_stays_usable(clean, raiser):
    r = clean
    statement, kind = raiser
    script = PRELUDE + ("async def boom(x):\n"
                        "    await asyncio.sleep(0.01)\n"
                        f"    {statement}\n"
                        "async def early(x):\n"
                        f"    {statement}\n"
                        "GB('CommandReader').map(boom).register(trigger='boom')\n"
                        "GB('CommandReader').map(early).register(trigger='early')\n"
                        "GB('CommandReader').map(lambda x: 'fine').register(trigger='fine')\n")
    assert pyexec(r, script) == "OK"
    for name in ("boom", "early", "boom"):
        err = trigger_error(r, name)
        assert kind in err and "unusable" not in err
    assert r.execute_command("RG.TRIGGER", "fine") == ["fine"]


def test_in_a_coroutine_behind_a_gears_future_it_fails_the_record(clean, raiser):
    r = clean
    statement, kind = raiser
    script = PRELUDE + ("async def boom():\n"
                        "    await asyncio.sleep(0.01)\n"
                        f"    {statement}\n"
                        "def step(x):\n"
                        "    f = gearsFuture()\n"
                        "    runCoroutine(boom(), f)\n"
                        "    return f\n"
                        "async def loose():\n"
                        f"    {statement}\n"
                        "def fire_and_forget(x):\n"
                        "    runCoroutine(loose())\n"
                        "    return 'fired'\n"
                        "GB('CommandReader').map(step).register(trigger='boom')\n"
                        "GB('CommandReader').map(fire_and_forget).register(trigger='loose')\n"
                        "GB('CommandReader').map(lambda x: 'fine').register(trigger='fine')\n")
    assert pyexec(r, script) == "OK"
    err = trigger_error(r, "boom")
    assert kind in err and "unusable" not in err
    assert r.execute_command("RG.TRIGGER", "loose") == ["fired"]
    assert r.execute_command("RG.TRIGGER", "fine") == ["fine"]


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_in_a_time_event_callback_it_stops_the_event_only(server, clean, raiser, asynchronous):
    r = clean
    statement, kind = raiser
    script = PRELUDE + ("ticks = []\n"
                        f"{'async ' if asynchronous else ''}def tick():\n"
                        "    ticks.append(1)\n"
                        "    execute('set', 'ticks', len(ticks))\n"
                        "    if len(ticks) == 2:\n"
                        f"        {statement}\n"
                        "registerTE(1, tick, 'te')\n"  # the key: flushing it stops the event
                        "GB('CommandReader').map(lambda x: len(ticks)).register(trigger='count')\n")
    assert pyexec(r, script) == "OK"
    assert wait_for(lambda: r.get("ticks") == "2", timeout=10)
    if asynchronous:
        # Its coroutine ran on the session's loop: the event goes on, the loop too.
        assert wait_for(lambda: r.get("ticks") == "3", timeout=10)
    else:
        assert wait_for(lambda: r.info("rg")["rg_ntimeevents"] == 0, timeout=5)
        assert server.wait_for_log("stopped: ", timeout=5)
        assert kind in server.log_text().split("stopped: ")[-1]
    count = int(r.execute_command("RG.TRIGGER", "count")[0])
    assert count >= 2


def test_in_on_registered_it_is_only_logged(clean, server, raiser):
    # 1.2 (RedisGearsPy_OnRegistered) logs what onRegistered raises; the registration stays
    r = clean
    statement, kind = raiser
    script = PRELUDE + ("def ready():\n"
                        f"    {statement}\n"
                        "GB('CommandReader').map(lambda x: x).register(trigger='t', onRegistered=ready)\n")
    before = server.log_text().count("Failed calling onRegistered")
    assert pyexec(r, script) == "OK"
    assert len(r.execute_command("RG.DUMPREGISTRATIONS")) == 1
    assert wait_for(lambda: server.log_text().count("Failed calling onRegistered") > before)
    assert kind in server.log_text().rsplit("Failed calling onRegistered", 1)[1].splitlines()[0]
    assert pyexec(r, "execute('set', 'after', 'ok')") == "OK"
