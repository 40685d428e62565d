"""Regenerate the table of bad inputs in docs/errors.md (between the GENERATED markers):
each case is run through `cosim` (cosim.cli.main, in this process) and its exit code and
stderr line are written as they come out, with the temporary folder shown as `<dir>`.

Usage: python scripts/errors_example.py [--check]
"""

from __future__ import annotations

import contextlib
import io
import socket
import sys
import tempfile
from pathlib import Path

from cosim.files import update_generated

DOC = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
BEGIN = "<!-- GENERATED: scripts/errors_example.py -->"
END = "<!-- END GENERATED: errors_example -->"
QUICK = ["workload.num_requests=4", "output.progress=false"]
TOPOLOGY = "num_nodes: 2\nnvlink: {gb_s: 900}\nnic: {gbps: 400}\n"
TRACE_LINE = b'{"timestamp": 0, "input_length": 10, "output_length": 5, "hash_ids": [1]}\n'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# (what is wrong, overrides, files to write under <dir>: name -> bytes)
CASES: tuple[tuple[str, list[str], dict[str, bytes]], ...] = (
    ("unknown key added with `+`", ["+workload.foo=1"], {}),
    ("unknown key", ["workload.foo=1"], {}),
    ("wrong type", ["workload.num_requests=many"], {}),
    ("no such option", ["topology=no_such_fabric"], {}),
    ("deployment larger than its topology", ["deployment.replicas=4"], {}),
    ("topology file: not YAML", ["topology=bad_yaml"], {"bad_yaml.yaml": b"num_nodes: [\n"}),
    ("topology file: required field missing", ["topology=no_rate"],
     {"no_rate.yaml": b"num_nodes: 2\nnic: {gbps: 400}\n"}),
    ("topology file: wrong type", ["topology=bad_type"],
     {"bad_type.yaml": TOPOLOGY.replace("num_nodes: 2", "num_nodes: two").encode()}),
    ("topology file: unknown key", ["topology=bad_key"],
     {"bad_key.yaml": (TOPOLOGY + "spine_count: 4\n").encode()}),
    ("trace: a line nested 5,000 deep", ["workload=mooncake_sample",
                                         "workload.trace.path=<dir>/t.jsonl"],
     {"t.jsonl": TRACE_LINE + b"[" * 5000 + b"]" * 5000 + b"\n"}),
    ("trace: a 5,000-digit integer", ["workload=mooncake_sample",
                                      "workload.trace.path=<dir>/t.jsonl"],
     {"t.jsonl": TRACE_LINE + b'{"timestamp": ' + b"9" * 5000
      + b', "input_length": 1, "output_length": 1}\n'}),
    ("trace: a byte that is not UTF-8", ["workload=mooncake_sample",
                                         "workload.trace.path=<dir>/t.jsonl"],
     {"t.jsonl": TRACE_LINE + b"\xff\xfe\n"}),
    ("trace: timestamps out of order", ["workload=mooncake_sample",
                                        "workload.trace.path=<dir>/t.jsonl"],
     {"t.jsonl": TRACE_LINE.replace(b": 0,", b": 9,") + TRACE_LINE}),
    ("infeasible configuration (summary.json written)",
     ["deployment.layout.dp=1", "deployment.layout.ep=1"], {}),
    ("ns-3 endpoint that does not answer", ["network=ns3",
                                            "network.ns3.endpoints=[tcp://127.0.0.1:<port>]",
                                            "network.ns3.connect_timeout_s=2"], {}),
)


def run_case(argv: list[str], files: dict[str, bytes]) -> tuple[int, str]:
    """(exit code, last stderr line with the temporary folder as <dir>) of one case."""
    from cosim.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for name, body in files.items():
            (d / name).write_bytes(body)
        port = str(_free_port())
        args = [a.replace("<dir>", tmp).replace("<port>", port) for a in argv]
        old_argv, err = sys.argv, io.StringIO()
        env = {"COSIM_TOPOLOGY_PATH": tmp, "COSIM_CACHE_DIR": str(d / "cache")}
        with _environ(env), contextlib.redirect_stderr(err), \
                contextlib.redirect_stdout(io.StringIO()):
            sys.argv = ["cosim", *args, *QUICK, f"hydra.run.dir={d / 'run'}"]
            try:
                main()
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
            finally:
                sys.argv = old_argv
        lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
        line = lines[-1] if lines else ""
        return code, line.replace(tmp, "<dir>").replace(f":{port}", ":<port>")


@contextlib.contextmanager
def _environ(values: dict[str, str]):
    import os

    import cosim.config

    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    cosim.config._registered = False  # topologies are read again from COSIM_TOPOLOGY_PATH
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        cosim.config._registered = False


def rows(cases=CASES) -> list[str]:
    """One table row per case: what is wrong, the overrides, exit code, stderr line."""
    out = []
    for label, argv, files in cases:
        code, line = run_case(argv, files)
        shown = " ".join(argv).replace("|", "\\|")
        out.append(f"| {label} | `{shown}` | {code} | `{line.replace('|', chr(92) + '|')}` |")
    return out


def render(cases=CASES) -> str:
    return "\n".join(["| input | overrides | exit | stderr |", "|---|---|---|---|",
                      *rows(cases)])


def main(argv: list[str]) -> int:
    return update_generated(DOC, BEGIN, END, render(), "--check" in argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
