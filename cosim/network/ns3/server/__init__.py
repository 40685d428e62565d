"""cosim-ns3-server: ns-3 in its own process behind a ZeroMQ socket.

SPDX-License-Identifier: GPL-2.0-only -- see LICENSE in this folder. This package links
ns-3 (GPL-2.0-only) and must never import aiconfigurator or cosim.compute.
"""
