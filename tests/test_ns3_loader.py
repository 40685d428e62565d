"""The lean ns-3 loader works from a virtualenv whose path contains "test".

The wheel's own loader (`from ns import ns`) drops every library whose absolute path holds
"test" and then fails; cosim's loader takes the libraries from the wheel's lib64 by absolute
path. The venv here gets a hard-linked copy of the installed wheel (so ns-3's files really
live under .../test_venv/...), cosim from this checkout (a .pth line, as an editable install
writes), and the dev environment's other packages after them.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ns3, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]

_PROGRAM = r"""
import sys
from cosim.network.ns3.loader import load_ns3, loaded_library_paths
ns = load_ns3()
ns.cppyy.cppdef('''
namespace loader_check {
using namespace ns3;
static int received = 0;
bool Rx(Ptr<NetDevice>, Ptr<const Packet> p, uint16_t, const Address&) {
    received += p->GetSize(); return true; }
int OnePacket() {
    NodeContainer nodes; nodes.Create(2);
    PointToPointHelper p2p;
    p2p.SetDeviceAttribute("DataRate", DataRateValue(DataRate(uint64_t(7000000000))));
    p2p.SetChannelAttribute("Delay", TimeValue(NanoSeconds(500)));
    NetDeviceContainer devs = p2p.Install(nodes);
    devs.Get(1)->SetReceiveCallback(MakeCallback(&Rx));
    Ptr<NetDevice> tx = devs.Get(0);
    Simulator::Schedule(Seconds(0), [tx]() {
        tx->Send(Create<Packet>(1000), tx->GetBroadcast(), 0x0800); });
    Simulator::Run();
    return received;
}
}
''')
got = ns.cppyy.gbl.loader_check.OnePacket()
arrival_ps = ns.Simulator.Now().GetPicoSeconds()
print("received", got, "arrival_ps", arrival_ps)
for p in loaded_library_paths():
    print("lib", p)
"""


def _link_tree(src: Path, dst: Path) -> None:
    """Hard-link `src` into `dst` (instant, no space); copy where links are impossible."""
    for root, _dirs, files in os.walk(src):
        out = dst / Path(root).relative_to(src)
        out.mkdir(parents=True, exist_ok=True)
        for f in files:
            try:
                os.link(Path(root) / f, out / f)
            except OSError:
                shutil.copy2(Path(root) / f, out / f)


def test_loader_works_from_a_path_containing_test(tmp_path):
    spec = importlib.util.find_spec("ns3")
    if spec is None:
        pytest.skip("the ns3 wheel (Linux x86-64) is not installed")
    wheel = Path(next(iter(spec.submodule_search_locations)))
    venv = tmp_path / "test_venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip())
    _link_tree(wheel, site / "ns3")
    dev_site = sysconfig.get_paths()["purelib"]
    # cosim from this checkout first (what `pip install -e` writes), then everything else.
    (site / "cosim_checkout.pth").write_text(f"{REPO}\n")
    (site / "zz_dev_env.pth").write_text(f"import site; site.addsitedir({dev_site!r})\n")

    out = subprocess.run([str(py), "-c", _PROGRAM], capture_output=True, text=True,
                         timeout=120, env={k: v for k, v in os.environ.items()
                                           if k not in ("PYTHONPATH", "PYTHONHOME")})
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    first = lines[0].split()
    assert first[:2] == ["received", "1000"]
    # 1000 B + 2 B PPP header at 7 Gbit/s = 1145.143 ns, plus 500 ns: only a picosecond
    # time resolution resolves the fraction (nanoseconds would give 1145 or 1146 ns).
    assert abs(int(first[3]) - (1002 * 8 / 7e9 + 500e-9) * 1e12) <= 1
    libs = [ln.split(None, 1)[1] for ln in lines if ln.startswith("lib ")]
    assert libs and all(str(venv) in p for p in libs), libs
    assert "test" in str(venv)
