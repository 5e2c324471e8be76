"""`seckill dev`'s banner: its commands work as printed, after a restart too, and README's
payment-notification example works with what it prints."""

import asyncio
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from app.cli.processes import welcome
from app.container import Container
from app.events.demo import ensure_demo_event, first_open_item_id
from app.flows.writer import OrderWriter
from tests.support.lifecycle import order_row
from tests.support.serving import serving

README = Path(__file__).resolve().parent.parent / "README.md"

pytestmark = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("bash", "curl", "openssl", "python3")),
    reason="runs the printed shell commands",
)


def try_lines(banner: str) -> str:
    """The shell commands under "Try (in another terminal):"."""
    block = banner.split("Try (in another terminal):\n", 1)[1].split("\n(", 1)[0]
    return "\n".join(line.strip() for line in block.splitlines())


def without_pay(commands: str) -> str:
    return re.sub(r"curl [^\n]*\\\n[^\n]*/pay\n", "", commands)


def readme_webhook_example(base: str) -> str:
    section = README.read_text().split("### Payment notifications (webhook)", 1)[1]
    example = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return example.replace("http://127.0.0.1:8000", base)


async def shell(script: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "bash", "-euo", "pipefail", "-c", script, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode == 0, (script, out, err)
    return out.decode()


@pytest.fixture
async def demo(app: FastAPI, app_services: Container) -> AsyncIterator[tuple[str, int | None]]:
    """The demo sale behind a real server, its order writer running: (base URL, item)."""
    await ensure_demo_event(app_services)
    item_id = await first_open_item_id(app_services)
    writer = OrderWriter(
        redis=app_services.redis,
        sessionmaker=app_services.sessionmaker,
        settings=app_services.settings,
    )
    stop = asyncio.Event()
    running = asyncio.create_task(writer.run(stop))
    try:
        async with serving(app, app_services.settings) as (host, port):
            yield f"http://{host}:{port}", item_id
    finally:
        stop.set()
        await running


async def test_the_banner_names_the_dashboard_and_the_webhook_secret(
    app_services: Container,
) -> None:
    banner = welcome(app_services.settings, "http://127.0.0.1:8000", True, 1)
    assert "http://127.0.0.1:8000/dashboard" in banner
    secret = app_services.settings.payment_webhook_secret.get_secret_value()
    assert f"export SECKILL_PAYMENT_WEBHOOK_SECRET={secret}\n" in banner
    assert "/api/v1/orders/$ORDER/pay" in banner


async def test_the_banner_buys_and_pays_after_every_restart(
    demo: tuple[str, int | None], app_services: Container
) -> None:
    """The demo limits each shopper to one or two units: with one shopper for every start,
    the printed purchase answered 409 `limit_exceeded` from the third start on."""
    base, _ = demo
    shoppers = set()
    for _start in range(3):
        banner = welcome(app_services.settings, base, False, await first_open_item_id(app_services))
        output = await shell(try_lines(banner) + '\necho\necho "$ORDER"')
        order = await order_row(app_services, output.strip().splitlines()[-1])
        assert order.status == "paid", output
        shoppers.add(order.user_id)
    assert len(shoppers) == 3


async def test_readmes_webhook_example_works_against_the_demo(
    demo: tuple[str, int | None], app_services: Container
) -> None:
    base, item_id = demo
    banner = welcome(app_services.settings, base, True, item_id)
    stored = (
        f'until curl -s -H "Authorization: Bearer $TOKEN" {base}/api/v1/orders/$ORDER'
        " | grep -q pending_payment; do sleep 0.05; done"
    )
    answer = await shell(
        "\n".join((without_pay(try_lines(banner)), stored, readme_webhook_example(base)))
    )
    assert answer.endswith('{"outcome":"recorded"}'), answer


async def test_the_banner_prints_no_secret_of_the_operators_own(app_services: Container) -> None:
    own = "an-operators-own-webhook-secret-0123456789"
    settings = app_services.settings.model_copy(update={"payment_webhook_secret": SecretStr(own)})
    banner = welcome(settings, "http://127.0.0.1:8000", True, 1)
    assert own not in banner
