"""The golden vectors of the wire format (crates/abi/vectors/codec.json) against the guest's
Python operation tables, run under the native CPython 3.13 that the python-wasi build produces
(no wasm). The Rust side is `cargo test -p wasmgears-abi`; the guest's C codec (every encoding
and decoding the guest does) is `cargo test -p wasmgears-sandbox` (its self-test entry)."""
import json
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
VECTORS = ROOT / "crates" / "abi" / "vectors" / "codec.json"
CHECK = """
import sys, gears_selftest
failures = gears_selftest.check(open(sys.argv[1]).read())
print("\\n".join(failures))
sys.exit(1 if failures else 0)
"""


def native_python():
    path = os.environ.get("WASMGEARS_NATIVE_PYTHON")
    if not path:
        pytest.fail("WASMGEARS_NATIVE_PYTHON is not set (make test sets it)")
    return path


def run_check(vectors_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "wasm" / "gears"))
    return subprocess.run([native_python(), "-c", CHECK, str(vectors_path)], env=env,
                          capture_output=True, text=True, timeout=60)


def test_the_python_side_matches_the_vectors():
    out = run_check(VECTORS)
    assert out.returncode == 0, out.stdout + out.stderr
    version = subprocess.run([native_python(), "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True).stdout.strip()
    assert version == "(3, 13)"


def test_a_table_the_python_side_disagrees_with_fails(tmp_path):
    vectors = json.loads(VECTORS.read_text())
    vectors["guest_entries"]["key_event"] = 99  # not the code gears_abi.py has
    altered = tmp_path / "codec.json"
    altered.write_text(json.dumps(vectors))
    out = run_check(altered)
    assert out.returncode == 1
    assert "guest entry codes" in out.stdout
