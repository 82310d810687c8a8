"""RG.PYSTATS, INFO rg python stats, RG.PYPROFILE (spec §1.1, §1.7)."""
import pytest
import redis

from conftest import as_dict, pyexec


def test_pystats_and_info(r):
    before = as_dict(r.execute_command("RG.PYSTATS"))
    assert set(before) == {"TotalAllocated", "PeakAllocated", "CurrAllocated"}
    assert pyexec(r, "x = bytearray(8 << 20)") == "OK"
    after = as_dict(r.execute_command("RG.PYSTATS"))
    assert after["TotalAllocated"] >= before["TotalAllocated"] + (8 << 20)
    assert after["PeakAllocated"] >= 8 << 20
    info = r.info("rg")
    assert {"rg_TotalAllocated", "rg_PeakAllocated", "rg_CurrAllocated"} <= set(info)


def test_pyprofile(r):
    r.execute_command("RG.CONFIGSET", "ProfileExecutions", "1")
    try:
        script = ("def busy(x):\n    return sum(range(1000))\n"
                  "GB('CommandReader').map(busy).register(trigger='prof')")
        assert pyexec(r, script, "ID", "prof") == "OK"
        for _ in range(3):
            r.execute_command("RG.TRIGGER", "prof")
        text = r.execute_command("RG.PYPROFILE", "STATS", "prof")
        assert "busy" in text and "function calls" in text
        assert "cumulative" in r.execute_command("RG.PYPROFILE", "STATS", "prof", "cumulative")
        assert r.execute_command("RG.PYPROFILE", "RESET", "prof") == "OK"
        with pytest.raises(redis.ResponseError, match="no profile stats"):
            r.execute_command("RG.PYPROFILE", "STATS", "prof")
        with pytest.raises(redis.ResponseError, match="session does not exists"):
            r.execute_command("RG.PYPROFILE", "STATS", "nosuch")
        with pytest.raises(redis.ResponseError, match="Wrong subcommand"):
            r.execute_command("RG.PYPROFILE", "BOGUS", "prof")
    finally:
        r.execute_command("RG.CONFIGSET", "ProfileExecutions", "0")
        for entry in r.execute_command("RG.DUMPREGISTRATIONS"):
            r.execute_command("RG.UNREGISTER", entry[1])
