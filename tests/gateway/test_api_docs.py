"""The API docs in Chromium on a plant network without internet: every asset comes from the
gateway, and the page lists the API."""

from __future__ import annotations

import pytest
from playwright.sync_api import Route, expect

from tests.support.browser import shot

pytestmark = pytest.mark.browser


def test_swagger_ui_renders_with_nothing_fetched_from_outside_the_gateway(as_user, web):
    gw, _ = web
    page = as_user("olly")  # operator, the least role
    outside: list[str] = []

    def only_the_gateway(route: Route) -> None:
        if route.request.url.startswith(gw.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.context.route("**/*", only_the_gateway)
    page.goto("/docs")
    expect(page.locator('[data-path="/api/inspections"]').first).to_be_visible()
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("reman-edge")
    shot(page, "gateway-api-docs")
    page.goto("/redoc")  # ReDoc's script would come from a CDN: the same page instead
    expect(page).to_have_url(f"{gw.url}/docs")
    expect(page.locator('[data-path="/api/inspections"]').first).to_be_visible()
    assert outside == []
