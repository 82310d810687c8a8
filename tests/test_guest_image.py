"""The precompiled guest is native code: an image (or its directory) others may write is not
loaded; the module compiles the plain wasm (which wasmtime validates) instead and says so."""
import os
import pathlib
import shutil
import stat

import pytest

from conftest import RedisServer, pyexec

ROOT = pathlib.Path(__file__).resolve().parent.parent


def guest_dir():
    path = ROOT / "target" / ".guest-dir"
    if not path.exists():
        pytest.fail("target/.guest-dir is missing (make module writes it)")
    return pathlib.Path(path.read_text().strip())


@pytest.mark.parametrize("loosen", ["file", "directory"])
def test_an_image_others_may_write_is_refused(tmp_path, loosen):
    copy = tmp_path / "guest"
    shutil.copytree(guest_dir(), copy, symlinks=True)
    os.chmod(copy, 0o755)
    target = copy / "gears.cwasm" if loosen == "file" else copy
    os.chmod(target, os.stat(target).st_mode | stat.S_IWGRP | stat.S_IWOTH)
    srv = RedisServer(tmp_path / "srv", module_args=["GuestDir", str(copy)]).start()
    try:
        assert srv.wait_for_log("refusing to load", timeout=5)
        assert "writable by its group or others" in srv.log_text()
        r = srv.client()
        assert pyexec(r, "x = 1") == "OK"
        assert r.ping()
    finally:
        srv.stop()


def test_a_private_image_loads_without_a_warning(tmp_path):
    copy = tmp_path / "guest"
    shutil.copytree(guest_dir(), copy, symlinks=True)
    os.chmod(copy, 0o755)
    os.chmod(copy / "gears.cwasm", 0o644)
    srv = RedisServer(tmp_path / "srv", module_args=["GuestDir", str(copy)]).start()
    try:
        assert srv.wait_for_log("guest loaded from", timeout=5)
        assert "refusing to load" not in srv.log_text()
    finally:
        srv.stop()
