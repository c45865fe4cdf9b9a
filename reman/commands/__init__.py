"""The `reman` subcommands by area; each module lists its click commands in `COMMANDS`.

Each command parses options and calls one library function of `edge`, `gateway` or `vision`.
"""
