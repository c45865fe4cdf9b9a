"""The station's configuration: pydantic models (`station`) and the file loader (`files`).

Validated once at start-up; problems are reported as FILE:LINE: KEY: message.
May import: `edge.contract` (broker settings, the YAML loader, the error tree).
"""
