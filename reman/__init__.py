"""The `reman` command: the composition root of reman-edge.

Owns: the command line (`cli`, one error policy for every command), the commands by area
(`commands/`), the demo that runs a whole station on one machine (`demo`), the check of any of
the three kinds of config file (`configcheck`), and the generator of the JSON Schemas and the
config reference (`schemas`).

May import: everything (`edge`, `gateway`, `vision`). Nothing imports it.
"""
