"""The edge node of an inspection station, in subpackages named for its parts.

    contract/   the MQTT contract and what the node shares with the gateway (the gateway's door)
    config/     the station config models and their loader
    bench/      the OPC UA test bench: client, connection, node ids, certificates, simulator
    mqtt/       the MQTT client, outbox publisher, PLC handshake, commands, mosquitto launcher
    journal/    the SQLite journal with its outbox, and exports (datasets)
    decision/   product families and the disposition rules
    station/    the station loop, camera, core-id reading, image quality, health
    node.py     composes the parts into one asyncio process
    errors.py, events.py, ids.py   the exception tree, events, time-ordered ids

May import: `vision` and itself. Never `gateway` or `reman` (import-linter holds this).
"""
