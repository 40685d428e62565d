"""Fabric: topologies, network backends (analytical, ns-3), result cache, wire protocol."""
