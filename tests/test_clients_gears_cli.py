"""gears-cli 1.2.0 from PyPI, unchanged, against the module (../shared/notes/clients.md T-CLI
steps 1-5 and 8): `run` with results, registrations, errors and syntax errors, `--requirements`
files with blank lines, `install-requirements`, and an ACL user. The requirement is six 1.17.0's
real wheel in the server's wheelhouse. Export/import of requirements (RG.PYEXPORTREQ/IMPORTREQ)
is not there yet (issue #18)."""
import glob
import os
import re
import subprocess

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
