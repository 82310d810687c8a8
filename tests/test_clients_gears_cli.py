"""gears-cli 1.2.0 from PyPI, unchanged, against the module (../shared/notes/clients.md T-CLI
steps 1-8): `run` with results, registrations, errors and syntax errors, `--requirements`
files with blank lines, `install-requirements`, `export-requirements` to RedisGears 1.2's zip
(MetaData.json + Data.bin) and `import-requirements` into a server with an empty wheelhouse,
and an ACL user. The requirement is six 1.17.0's real wheel in the server's wheelhouse."""
import glob
import json
import os
import re
import subprocess
import zipfile

import pytest

from conftest import as_dict, pyexec

BIN = os.environ.get("WASMGEARS_CLIENTS_BIN")
WHEELS = os.environ.get("WASMGEARS_TEST_WHEELS")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def server_with_six(make_server):
    if not BIN or not WHEELS:
        pytest.fail("WASMGEARS_CLIENTS_BIN / WASMGEARS_TEST_WHEELS are not set (make test sets them)")
    assert glob.glob(os.path.join(WHEELS, "six-*.whl")), "six's wheel is missing from " + WHEELS
    return make_server("WheelhouseDir", WHEELS)


def gears_cli(srv, *args, user=None, password=None):
    argv = [os.path.join(BIN, "gears-cli"), args[0], "--host", "127.0.0.1", "--port", str(srv.port)]
    if user:
        argv += ["--user", user, "--password", password]
    done = subprocess.run(argv + list(args[1:]), capture_output=True, text=True, timeout=120)
    return done.returncode, ANSI.sub("", done.stdout + done.stderr)


def script(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_run_results_registrations_and_errors(server_with_six, tmp_path):
    srv = server_with_six
    rc, out = gears_cli(srv, "run", script(tmp_path, "shards.py", "GB('ShardsIDReader').run()"))
    assert rc == 0 and "Results" in out and '"1"' in out
    reg = "GB().foreach(lambda r: execute('incr', 'c')).register(prefix='x:*', mode='sync')"
    rc, out = gears_cli(srv, "run", script(tmp_path, "reg.py", reg))
    assert rc == 0 and out.strip() == "OK"
    c = srv.client()
    c.set("x:1", "v")
    assert c.get("c") == "1"
    rc, out = gears_cli(srv, "run", script(tmp_path, "err.py", "GB('ShardsIDReader').map(lambda x: 1/0).run()"))
    assert rc == 1 and "Errors" in out and "ZeroDivisionError" in out
    rc, out = gears_cli(srv, "run", script(tmp_path, "syntax.py", "GB(.run()"))
    assert rc == 1 and "failed running gear function" in out and "SyntaxError" in out


def test_requirements_from_a_file_with_blank_lines_and_as_arguments(server_with_six, tmp_path):
    srv = server_with_six
    six_version = script(tmp_path, "six.py", "import six\nGB('ShardsIDReader').map(lambda x: six.__version__).run()")
    req = tmp_path / "req.txt"
    req.write_text("six\n\n")
    rc, out = gears_cli(srv, "run", six_version, "--requirements", str(req))
    assert rc == 0 and "1.17.0" in out, out
    rc, out = gears_cli(srv, "run", six_version, "REQUIREMENTS", "six")
    assert rc == 0 and "1.17.0" in out, out


def test_install_requirements_then_pydumpreqs(server_with_six):
    srv = server_with_six
    rc, out = gears_cli(srv, "install-requirements", "six")
    assert rc == 0 and "Done" in out, out
    [req] = [as_dict(entry) for entry in srv.client().execute_command("RG.PYDUMPREQS")]
    assert req["Name"] == "six" and req["IsInstalled"] == "yes"


def test_an_acl_user_with_a_password(server_with_six, tmp_path):
    srv = server_with_six
    c = srv.client()
    assert c.execute_command("ACL", "SETUSER", "foo", "on", ">pass", "+@all", "~*") == "OK"
    shards = script(tmp_path, "shards.py", "GB('ShardsIDReader').run()")
    rc, out = gears_cli(srv, "run", shards, user="foo", password="pass")
    assert rc == 0 and '"1"' in out, out
    rc, out = gears_cli(srv, "run", shards, user="foo", password="wrong")
    assert rc == 1 and "Cannot connect to Redis" in out
    assert pyexec(c, "GB('ShardsIDReader').run()") == [["1"], []]


def test_export_then_import_into_an_empty_wheelhouse(server_with_six, make_server, tmp_path):
    srv = server_with_six
    rc, out = gears_cli(srv, "install-requirements", "six")
    assert rc == 0, out
    exported = tmp_path / "exported"
    exported.mkdir()
    rc, out = gears_cli(srv, "export-requirements", "--requirement", "six", "--save-directory", str(exported))
    assert rc == 0, out
    [zip_path] = glob.glob(str(exported / "*.zip"))
    assert os.path.basename(zip_path) == "redisgears-requirement-v2-six-any.zip"
    with zipfile.ZipFile(zip_path) as zf:
        meta = json.loads(zf.read("MetaData.json"))
        data = zf.read("Data.bin")
    assert sorted(meta) == sorted(["GearReqVersion", "Name", "IsDownloaded", "IsInstalled", "CompiledOs",
                                   "Wheels", "Path", "RefCount", "IsInReqDictionary"])
    assert meta["Name"] == "six" and meta["Wheels"] == ["six-1.17.0-py2.py3-none-any.whl"]
    assert data[:8] == bytes([2, 0, 0, 0, 0, 0, 0, 0])  # PY_REQ_VERSION, as 1.2 writes it
    assert b"six-1.17.0-py2.py3-none-any.whl" in data
    everything = tmp_path / "all"
    everything.mkdir()
    rc, out = gears_cli(srv, "export-requirements", "--all", "--save-directory", str(everything))
    assert rc == 0 and len(glob.glob(str(everything / "*.zip"))) == 1, out
    c = srv.client()
    with pytest.raises(Exception, match="requirement does not exists"):
        c.execute_command("RG.PYEXPORTREQ", "nosuch")

    empty = tmp_path / "empty-wheelhouse"
    empty.mkdir()
    fresh = make_server("WheelhouseDir", empty)
    fc = fresh.client()
    assert "is not in the wheelhouse" in str(pytest.raises(Exception, fc.execute_command,
                                                           "RG.PYEXECUTE", "import six", "REQUIREMENTS", "six").value)
    rc, out = gears_cli(fresh, "import-requirements", "--requirements-path", str(exported),
                        os.path.basename(zip_path))
    assert rc == 0 and "imported successfully" in out, out
    assert os.listdir(empty) == ["six-1.17.0-py2.py3-none-any.whl"]
    assert fc.execute_command("RG.PYEXECUTE", "import six", "REQUIREMENTS", "six") == "OK"
    [req] = [as_dict(e) for e in fc.execute_command("RG.PYDUMPREQS")]
    assert req["Name"] == "six"


def test_import_refuses_bad_data_and_wheels_that_are_not_pure(server_with_six, tmp_path):
    c = server_with_six.client()
    with pytest.raises(Exception, match="Bad serialization format on reading requirement version"):
        c.execute_command("RG.PYIMPORTREQ", "abc")
    with pytest.raises(Exception, match="Requirement version is not compatible, upgrade to newer RedisGears."):
        c.execute_command("RG.PYIMPORTREQ", bytes([9, 0, 0, 0, 0, 0, 0, 0]))

    def bundle(file):
        def buf(b):
            return len(b).to_bytes(8, "little") + b
        return (b"\x02" + bytes(7) + buf(b"evil\0") + buf(b"any\0") + (1).to_bytes(8, "little")
                + (1).to_bytes(8, "little") + buf(file.encode() + b"\0") + buf(b"PK"))
    for file in ["../escape-1.0-py3-none-any.whl", "native-1.0-cp313-cp313-linux_x86_64.whl"]:
        with pytest.raises(Exception, match="only pure-Python wheels"):
            c.execute_command("RG.PYIMPORTREQ", bundle(file))
    assert not os.path.exists(os.path.join(WHEELS, "..", "escape-1.0-py3-none-any.whl"))
    assert c.ping()


def test_export_requirements_of_a_registration(server_with_six, tmp_path):
    # gears-cli eval()s the registration's PD and exports each of its depsList's names.
    srv = server_with_six
    c = srv.client()
    assert pyexec(c, "import six\nGB('CommandReader').register(trigger='v')", "REQUIREMENTS", "six") == "OK"
    [rid] = [entry[1] for entry in c.execute_command("RG.DUMPREGISTRATIONS")]
    out_dir = tmp_path / "by-registration"
    out_dir.mkdir()
    rc, out = gears_cli(srv, "export-requirements", "--registration-id", rid, "--save-directory", str(out_dir))
    assert rc == 0, out
    assert os.listdir(out_dir) == ["redisgears-requirement-v2-six-any.zip"]
