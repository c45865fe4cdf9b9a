"""Sparkplug B 3.0 beside the JSON contract: the node as an edge node, its station as a device.

    metrics   the device's metric catalogue and the DDATA companion of each inspection record
    bdseq     the birth/death sequence number, kept in a file across restarts
    client    the Sparkplug connection: NDEATH as its Last Will, births, STATE, Node Control

May import edge.contract, edge.config, edge.events, edge.errors and edge.journal.outbox (the
message type); the wire format is edge.contract.sparkplug. docs/sparkplug.md is the reference.
"""
