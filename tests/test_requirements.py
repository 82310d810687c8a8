"""REQUIREMENTS from a local wheelhouse of pure-Python wheels; RG.PYDUMPREQS."""
import zipfile

import pytest

from conftest import RedisServer, pyexec, pyexec_err


def make_wheel(directory, name, version, modules):
    path = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for member, source in modules.items():
            z.writestr(member, source)
        z.writestr(f"{name}-{version}.dist-info/METADATA", f"Name: {name}\nVersion: {version}\n")
    return path


@pytest.fixture
def wheel_server(tmp_path):
    house = tmp_path / "wheels"
    house.mkdir()
    make_wheel(house, "tinylib", "1.0", {"tinylib/__init__.py": "VERSION = '1.0'\n"})
    make_wheel(house, "tinylib", "1.2", {"tinylib/__init__.py": "from tinylib.sub import hello\nVERSION = '1.2'\n",
                                         "tinylib/sub.py": "def hello():\n    return 'hi from a wheel'\n"})
    make_wheel(house, "solo", "0.1", {"solo.py": "X = 42\n"})
    srv = RedisServer(tmp_path / "srv", ("WheelhouseDir", house)).start()
    yield srv
    srv.stop()


def test_requirements_import_from_the_wheelhouse(wheel_server):
    r = wheel_server.client()
    script = ("import tinylib, solo\n"
              "GB('CommandReader').map(lambda x: [tinylib.VERSION, tinylib.hello(), solo.X])"
              ".register(trigger='reqs', convertToStr=False)")
    assert pyexec(r, script, "ID", "withreqs", "REQUIREMENTS", "tinylib", "solo") == "OK"
    assert r.execute_command("RG.TRIGGER", "reqs") == [["1.2", "hi from a wheel", 42]]
    [req_a, req_b] = [dict(zip(e[::2], e[1::2])) for e in r.execute_command("RG.PYDUMPREQS")]
    assert {req_a["Name"], req_b["Name"]} == {"tinylib", "solo"}
    assert req_a["RefCount"] == 1 and req_a["IsInstalled"] == "yes" and len(r.execute_command("RG.PYDUMPREQS")[0]) == 18
    assert req_a["GearReqVersion"] == 2  # PY_REQ_VERSION of RedisGears 1.2
    [s] = r.execute_command("RG.PYDUMPSESSIONS")
    assert sorted(dict(zip(s[::2], s[1::2]))["requirements"]) == ["solo", "tinylib"]
    # pinned version
    assert pyexec(r, "import tinylib\nGB('PythonReader').run(lambda: iter([tinylib.VERSION]))",
                  "REQUIREMENTS", "tinylib==1.0") == [["1.0"], []]
    # other sessions do not see them
    assert "No module named 'tinylib'" in pyexec_err(r, "import tinylib")
    # they come back after a restart
    r.save()
    wheel_server.stop()
    r = wheel_server.start().client()
    assert r.execute_command("RG.TRIGGER", "reqs") == [["1.2", "hi from a wheel", 42]]


def test_missing_requirement_is_an_error(wheel_server):
    r = wheel_server.client()
    err = pyexec_err(r, "GB('CommandReader').register(trigger='x')", "REQUIREMENTS", "numpy")
    assert err == "Could not satisfy requirements, numpy is not in the wheelhouse"
    assert r.execute_command("RG.DUMPREGISTRATIONS") == []
