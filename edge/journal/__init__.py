"""The station's system of record: the SQLite journal (WAL) and what is read out of it.

    journal   inspection records, overrides and events, committed with their outbox rows
    outbox    the ordered queue of messages waiting for the broker's acknowledgement
    dataset   `reman dataset export`: labelled images for training
    republish `reman journal republish`: journaled records queued again, to rebuild a copy
    passport  `reman passport`: a core's passport from the journal, its images hashed

May import: `edge.contract`, `edge.decision`, `edge.errors`, `edge.events`, `edge.ids`.
sqlite3's exceptions are wrapped here in `edge.errors.JournalError`.
"""
