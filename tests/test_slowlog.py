"""The time a client waits for its script's work is the command's own: a long RG.PYEXECUTE,
run() or RG.TRIGGER shows in Redis's SLOWLOG with its duration, as Redis reports any blocking
module command that measures its background time (RM_BlockedClientMeasureTimeStart/End)."""
from conftest import pyexec

BUSY = "import time\nt = time.time()\nwhile time.time() - t < 0.3:\n    pass\n"


def slow_entries(r, name):
    entries = [(e["duration"], e["command"].decode() if isinstance(e["command"], bytes) else e["command"])
               for e in r.slowlog_get(128)]
    return [(duration, command) for duration, command in entries if command.split()[0].lower() == name.lower()]


def test_long_commands_are_in_slowlog_with_their_duration(clean):
    r = clean
    r.config_set("slowlog-log-slower-than", 200_000)  # microseconds
    try:
        r.slowlog_reset()
        assert pyexec(r, BUSY + "GB('ShardsIDReader').run()") == [["1"], []]
        assert pyexec(r, "GB('ShardsIDReader').run()") == [["1"], []]  # fast: not logged
        script = ("import time\ndef busy(x):\n    t = time.time()\n    while time.time() - t < 0.3:\n"
                  "        pass\n    return 'done'\n"
                  "GB('CommandReader').map(busy).register(trigger='slowtrigger')")
        assert pyexec(r, script) == "OK"
        assert r.execute_command("RG.TRIGGER", "slowtrigger") == ["done"]
        [(duration, command)] = slow_entries(r, "RG.PYEXECUTE")
        assert duration >= 300_000 and "time.time()" in command
        [(duration, command)] = slow_entries(r, "RG.TRIGGER")
        assert duration >= 300_000 and command == "RG.TRIGGER slowtrigger"
    finally:
        r.config_set("slowlog-log-slower-than", 10_000)
