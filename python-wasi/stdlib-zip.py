"""Writes the guest's stdlib: every module of Lib/ compiled to .pyc, in one deflated zip.

usage: stdlib-zip.py <Lib dir> <build lib dir with _sysconfigdata> <out.zip>
Tests, GUI toolkits and packaging tools are left out: a sandboxed script cannot use them.
"""
import importlib.util
import pathlib
import sys
import zipfile

SKIP_TOP = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "venv", "pydoc_data",
            "lib2to3", "__phello__", "turtle.py", "site-packages"}


def compile_into(zf, root, path):
    rel = path.relative_to(root)
    if rel.parts[0] in SKIP_TOP or "tests" in rel.parts or "test" in rel.parts[1:]:
        return
    source = path.read_bytes()
    code = compile(source, "/lib/python313.zip/" + rel.as_posix(), "exec", dont_inherit=True)
    data = importlib._bootstrap_external._code_to_timestamp_pyc(code, 0, len(source))
    info = zipfile.ZipInfo(rel.with_suffix(".pyc").as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def main(lib, buildlib, out):
    with zipfile.ZipFile(out, "w") as zf:
        for root in (pathlib.Path(lib), pathlib.Path(buildlib)):
            for path in sorted(root.rglob("*.py")):
                compile_into(zf, root, path)


if __name__ == "__main__":
    main(*sys.argv[1:4])
