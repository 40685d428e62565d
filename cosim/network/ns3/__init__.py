"""ns-3 packet-level backend: wire protocol, client (Ns3Backend), server, lean ns-3 loader.

Importing this package imports neither ns-3 nor the client's dependencies; import
`cosim.network.ns3.client` for `Ns3Backend` (the orchestrator side, MIT) and run
`cosim-ns3-server` (cosim.network.ns3.server, GPL-2.0-only: it links ns-3).
"""
