"""The OPC UA test bench: the node's client and everything about reaching a bench.

    client      the bench client the station loop reads snapshots from (asyncua)
    connection  one asyncua connection with security settings applied
    trust       why a secured bench refused us: the certificate file to fix
    link        a live connection and the feed that keeps its values coming
    data        bench values with their status and source time
    nodeids     node-id parsing with clear errors
    tools       `reman bench browse` and `probe`
    certs       client certificates for signed and encrypted sessions
    simulator   an OPC UA server that behaves like a test bench, for demos and tests

May import: `edge.config`, `edge.contract`, `edge.errors`, `edge.events`, `edge.ids`.
asyncua's exceptions are wrapped here in `edge.errors.BenchError`.
"""
