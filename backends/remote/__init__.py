"""Builds on other machines: over ssh, and through llama.cpp's RPC servers.

    ssh.py        one shared ssh connection per host; commands and llama-bench over it
    probe.py      probing a build and reading a model on another host
    telemetry.py  a host's telemetry sampled over ssh
    rpc.py        rpc-server endpoints: started here, checked, and named when they fail

Nothing is imported here: each module is imported where it is used.
"""
