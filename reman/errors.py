"""The `reman` command's own exceptions (the parts it composes have theirs).

RemanError (edge.errors)
└── DemoError      the demo could not start one of its parts
"""

from __future__ import annotations

from edge.errors import RemanError


class DemoError(RemanError):
    """The demo could not start"""
