"""Fault-injection suite for edge-gateway (run through scripts/faults).

Modules:
    procs      processes the suite starts (mosquitto, the daemon, fake upstreams), cleanup, free ports
    clients    MQTT clients: simulated devices (publish, resend, count acks) and the upstream recorder
    fakebroker a minimal MQTT 3.1.1 broker that acks slowly, and a TCP server that never answers
    checks     the delivery check (lost, duplicates, order violations) and what exactly it checks
    hostile    generated hostile payloads/topics and an oracle of what the daemon must answer
    scenarios  the scenarios, one function each
    runner     command line, result table, exit status
"""
