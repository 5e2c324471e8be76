"""GET /shop/{event_id}, the reference storefront page: served as HTML with the pages'
Content-Security-Policy (only the service's own files run on it), its script and
stylesheet from the package, and an unknown event refused as the API refuses it (404
`not_found`, a problem, not a page). tests/access/test_shop_browser.py drives the page."""

import re

import httpx

from app.middleware import PAGE_POLICY
from tests.support.factories import Auth, assert_problem, create_event


async def test_the_shop_page_is_html_under_the_pages_policy(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    event = await create_event(client, auth)
    page = await client.get(f"/shop/{event.id}")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == PAGE_POLICY
    assert "default-src 'none'" in PAGE_POLICY
    # Everything it loads is the service's own, and served with its type.
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sorted(assets) == ["/shop/assets/shop.css", "/shop/assets/shop.js"]
    for asset, media_type in zip(sorted(assets), ["text/css", "text/javascript"], strict=True):
        served = await client.get(asset)
        assert served.status_code == 200, asset
        assert served.headers["content-type"].startswith(media_type)
        assert "http://" not in served.text
        assert "https://" not in served.text


async def test_an_unknown_event_has_no_shop(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/shop/999999"), 404, "not_found")
    assert_problem(await client.get("/shop/0"), 422, "validation_error")
    assert_problem(await client.get("/shop/shop.js"), 422, "validation_error")


async def test_the_shop_page_is_documented_once(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    operation = paths["/shop/{event_id}"]["get"]
    assert operation["tags"] == ["storefront"]
    assert "404" in operation["responses"]
    assert not [path for path in paths if path.startswith("/shop/assets")]
