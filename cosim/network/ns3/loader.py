"""A lean loader for the ns-3 Python wheel (`pip install ns3`): only the modules cosim uses.

Why not `from ns import ns`: the wheel's loader globs every library it can find and then
drops each one whose absolute path contains "test" (so ns-3 fails to import from a checkout
or virtualenv under such a path), and it includes every module's headers (7-11 s). This
loader takes the libraries straight from the wheel's own `lib64`, includes only the module
headers asked for (core, network, point-to-point by default; internet and traffic-control
for TCP), registers `Ptr` as a smart pointer as the wheel does, and sets the time resolution
to picoseconds (at the default nanoseconds a 1500 B frame on a 450 GB/s link serialises in
3.000 ns instead of 3.333 ns).

Import this module only in the ns-3 server process or in tests that need ns-3: loading
takes seconds and leaves the process at hundreds of MB.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import threading
from pathlib import Path

#: Modules of the default (lossless, source-routed) fabric.
BASE_MODULES: tuple[str, ...] = ("core", "network", "point-to-point")
#: Extra modules for the ns-3 TCP transport.
TCP_MODULES: tuple[str, ...] = ("internet", "traffic-control")

_INSTALL_HINT = (
    "the ns-3 wheel is not installed in this Python environment. On Linux x86-64 install it "
    "with `pip install 'cosim[ns3]'` (or `pip install 'ns3>=3.44,<3.45'`). The wheel exists "
    "for Linux x86-64 only: on macOS or aarch64 run `cosim-ns3-server --endpoint "
    "tcp://0.0.0.0:PORT --keys DIR` on a Linux x86-64 host and set "
    "network.ns3.endpoints=[tcp://HOST:PORT] and network.ns3.curve (docs/ns3.md, "
    "Authentication), or use network=analytical."
)

_lock = threading.Lock()
_loaded_modules: set[str] = set()
_ns = None


class Ns3NotAvailable(ImportError):
    """The ns-3 wheel cannot be used here; the message says what to install instead."""


def wheel_prefix() -> Path:
    """Root folder of the installed `ns3` wheel (it holds lib64/ and include/)."""
    spec = importlib.util.find_spec("ns3")
    if spec is None or not spec.submodule_search_locations:
        raise Ns3NotAvailable(_INSTALL_HINT)
    # Deliberately not resolving symlinks: the path is used as given, "test" or not.
    prefix = Path(next(iter(spec.submodule_search_locations)))
    if not (prefix / "include" / "ns3").is_dir():
        raise Ns3NotAvailable(f"{prefix} holds no include/ns3 folder; reinstall the ns3 wheel. "
                              + _INSTALL_HINT)
    return prefix


def _lib_dir(prefix: Path) -> Path:
    for variant in ("lib64", "lib"):
        if (prefix / variant).is_dir():
            return prefix / variant
    raise Ns3NotAvailable(f"{prefix} holds no lib64/ or lib/ folder; reinstall the ns3 wheel")


_NEEDED_NS3 = re.compile(rb"\x00(libns3[\w.]*-[\w-]+\.so)\x00")


def _ns3_dependencies(lib_dir: Path, library: str) -> list[str]:
    """ns-3 libraries that `library` names as dependencies (its dynamic string table)."""
    data = (lib_dir / library).read_bytes()
    return [m.decode() for m in _NEEDED_NS3.findall(data) if m.decode() != library]


def _library_order(lib_dir: Path, modules: tuple[str, ...]) -> list[str]:
    """The wheel libraries of `modules` and their ns-3 dependencies, dependencies first."""
    names = {p.name for p in lib_dir.glob("libns3*.so")}
    by_module = {}
    for name in names:
        m = re.match(r"libns3[\d.]*(?:-dev)?-(.+)\.so$", name)
        if m:
            by_module[m.group(1)] = name
    order: list[str] = []
    seen: set[str] = set()

    def visit(lib: str) -> None:
        if lib in seen:
            return
        seen.add(lib)
        for dep in _ns3_dependencies(lib_dir, lib):
            if dep in names:
                visit(dep)
        order.append(lib)

    for module in modules:
        if module not in by_module:
            raise Ns3NotAvailable(f"the ns3 wheel in {lib_dir} has no '{module}' module library")
        visit(by_module[module])
    return order


def load_ns3(modules: tuple[str, ...] = BASE_MODULES):
    """Load the ns-3 modules `modules` (plus their dependencies) and return the `ns3` namespace.

    Idempotent; a later call with more modules adds them. The returned namespace carries
    `cppyy` as an attribute (`ns.cppyy.cppdef(...)`), like the wheel's `ns` object.
    """
    global _ns
    with _lock:
        missing = [m for m in modules if m not in _loaded_modules]
        if _ns is not None and not missing:
            return _ns
        if sys.platform != "linux":
            raise Ns3NotAvailable(_INSTALL_HINT)
        prefix = wheel_prefix()
        lib_dir = _lib_dir(prefix)
        try:
            import cppyy
            import libcppyy
        except ImportError as e:  # cppyy is a dependency of the wheel
            raise Ns3NotAvailable(f"cppyy is missing ({e}). " + _INSTALL_HINT) from e

        first = _ns is None
        if first:
            # As the wheel's loader does: ns3::Ptr<T> behaves as a smart pointer in Python.
            libcppyy.AddSmartPtrType("Ptr")
            cppyy.add_library_path(str(lib_dir))
            cppyy.add_include_path(str(prefix / "include"))
            # The wheel's core links GSL and stats links SQLite; define what the wheel's
            # loader would define so that headers see the same configuration.
            cppyy.cppdef("#ifndef HAVE_GSL\n#define HAVE_GSL 1\n#endif\n"
                         "#ifndef HAVE_SQLITE3\n#define HAVE_SQLITE3 1\n#endif\n")
        # Libraries before headers: the headers' static initialisers (e.g. the time
        # resolution helper in nstime.h) need the libraries' symbols when they run.
        for library in _library_order(lib_dir, tuple(missing)):
            # Absolute paths: no search, no filtering on the path's text.
            cppyy.load_library(os.fspath(lib_dir / library))
        for module in missing:
            cppyy.include(f"ns3/{module}-module.h")
        _loaded_modules.update(missing)
        ns = cppyy.gbl.ns3
        if first:
            ns.Time.SetResolution(ns.Time.PS)
            ns.cppyy = cppyy
            _ns = ns
        return _ns


def loaded_library_paths() -> list[str]:
    """Paths of the ns-3 libraries mapped into this process (from /proc/self/maps)."""
    paths = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                part = line.rstrip("\n").split(None, 5)
                if len(part) == 6 and "libns3" in part[5]:
                    paths.add(part[5])
    except OSError:
        pass
    return sorted(paths)
