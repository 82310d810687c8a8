"""Imports from a session's requirements: pure-Python wheels the host hands over as bytes,
read in memory (the sandbox has no writable filesystem and needs none)."""
import importlib.abc
import importlib.util
import io
import sys
import zipfile


class _WheelLoader(importlib.abc.Loader):
    def __init__(self, wheel, member, origin):
        self.wheel, self.member, self.origin = wheel, member, origin

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        source = self.wheel.read(self.member)
        module.__file__ = self.origin
        exec(compile(source, self.origin, "exec"), module.__dict__)


class WheelFinder(importlib.abc.MetaPathFinder):
    """Finds `a.b` as `a/b/__init__.py` or `a/b.py` inside one of the wheels."""

    def __init__(self, wheels):
        self.wheels = [(name, zipfile.ZipFile(io.BytesIO(data))) for name, data in wheels]

    def find_spec(self, fullname, path=None, target=None):
        base = fullname.replace(".", "/")
        for name, wheel in self.wheels:
            members = wheel.NameToInfo
            for member, is_package in ((base + "/__init__.py", True), (base + ".py", False)):
                if member in members:
                    origin = "wheel://%s/%s" % (name, member)
                    loader = _WheelLoader(wheel, member, origin)
                    return importlib.util.spec_from_loader(fullname, loader, origin=origin, is_package=is_package)
        return None


def _as_bytes(value):
    # Replies arrive as str when they are valid UTF-8, else as bytearray.
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def install(wheels):
    """Makes the wheels [(name, data), ...] importable (first on sys.meta_path)."""
    if wheels:
        sys.meta_path.insert(0, WheelFinder([(_as_bytes(n).decode(), _as_bytes(d)) for n, d in wheels]))
