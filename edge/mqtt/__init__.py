"""MQTT on the node: the broker link and what travels over it.

    client     the station's paho client (persistent session, Last Will, link state)
    publisher  drains the journal's outbox to the broker in order, marking on PUBACK
    handshake  the PLC handshake (result ready, ack, timeouts)
    commands   trigger, ack, override and label commands from `.../set` topics
    mosquitto  starts a mosquitto of the project's own on a free port (demo, tests)

May import: `edge.contract`, `edge.config`, `edge.errors`, `edge.events`, `edge.journal`.
paho's exceptions are wrapped here in `edge.errors.BrokerError`.
"""
