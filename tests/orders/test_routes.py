"""The orders' paths: an order id is matched by its shape, so `/orders/quote` is the
quote's path alone and 405 / OPTIONS name exactly the methods each path serves."""

import httpx
import pytest
from fastapi import FastAPI

from app.store.order_ids import new_order_id, new_regular_order_id
from tests.support.factories import Auth, assert_problem

ORDERS = "/api/v1/orders"
AN_ORDER = f"{ORDERS}/{new_order_id(7)}"


def allowed(response: httpx.Response) -> set[str]:
    return {method.strip() for method in response.headers["allow"].split(",")}


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        (f"{ORDERS}/quote", {"POST"}),
        (ORDERS, {"GET", "POST"}),
        (AN_ORDER, {"GET"}),
        (f"{ORDERS}/{new_regular_order_id()}", {"GET"}),
        (f"{AN_ORDER}/pay", {"POST"}),
        (f"{AN_ORDER}/cancel", {"POST"}),
    ],
)
async def test_options_names_the_methods_of_the_path(
    client: httpx.AsyncClient, auth: Auth, path: str, methods: set[str]
) -> None:
    response = await client.options(path, headers=auth.headers())

    assert_problem(response, 405, "method_not_allowed")
    assert allowed(response) == methods


async def test_get_quote_is_not_an_order_lookup(client: httpx.AsyncClient, auth: Auth) -> None:
    response = await client.get(f"{ORDERS}/quote", headers=auth.headers())

    assert_problem(response, 405, "method_not_allowed")
    assert allowed(response) == {"POST"}


@pytest.mark.parametrize(
    "order_id", ["nope", "01jd0000000000000000000000", "01JD0000000000000000000000-", "%00"]
)
async def test_what_is_not_an_order_id_is_not_found(
    client: httpx.AsyncClient, auth: Auth, order_id: str
) -> None:
    for method, path in (
        ("GET", f"{ORDERS}/{order_id}"),
        ("POST", f"{ORDERS}/{order_id}/pay"),
        ("POST", f"{ORDERS}/{order_id}/cancel"),
    ):
        response = await client.request(method, path, headers=auth.headers())
        assert_problem(response, 404, "not_found")


async def test_the_document_keeps_the_order_id_parameter(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    assert {"get"} == set(paths[f"{ORDERS}/{{order_id}}"])
    assert {"post"} == set(paths[f"{ORDERS}/{{order_id}}/pay"])
    assert {"post"} == set(paths[f"{ORDERS}/quote"])
    parameter = paths[f"{ORDERS}/{{order_id}}"]["get"]["parameters"][0]
    assert (parameter["name"], parameter["in"]) == ("order_id", "path")
