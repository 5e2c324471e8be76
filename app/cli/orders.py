"""`seckill orders ...`: operators' order commands (list, show, cancel, refund) through the
same services, audit log and stock returns as the admin API."""

from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from app.cli.shared import in_transaction, operator, run
from app.container import Container
from app.orders import service as orders
from app.orders.models import OrderStatus, TransitionCause
from app.orders.schemas import OrderRead
from app.payments import service as payments

orders_cli = typer.Typer(help="Orders: list (filtered, paged), show, cancel, refund.")
OrderArg = Annotated[str, typer.Argument(help="The order's id.")]


def _line(order: OrderRead) -> str:
    where = f"item {order.item_id}" if order.item_id is not None else "checkout"
    return (
        f"{order.id}\t{order.status}\t{order.user_id}\t{where}\t{order.quantity} unit(s)\t"
        f"{order.amount}\t{order.accepted_at.isoformat()}"
    )


@orders_cli.command("list")
def list_orders(
    event: Annotated[int | None, typer.Option(min=1, help="Only this event's.")] = None,
    item: Annotated[int | None, typer.Option(min=1, help="Only this item's.")] = None,
    user: Annotated[str | None, typer.Option(help="Only this user's.")] = None,
    status: Annotated[OrderStatus | None, typer.Option(help="Only in this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
    cursor: Annotated[str | None, typer.Option(help="Where the last page ended.")] = None,
) -> None:
    """Stored orders, newest first; prints the cursor of the next page last, if any."""

    async def work(services: Container) -> orders.OrderPage:
        async with services.sessionmaker() as session:
            return await orders.list_all_orders(
                session=session,
                event_id=event,
                item_id=item,
                user_id=user,
                status=status,
                cursor=cursor,
                limit=limit,
            )

    page = run(work)
    for order in page.orders:
        print(_line(order))
    if page.next_cursor is not None:
        print(f"next page: --cursor {page.next_cursor}")


@orders_cli.command()
def show(order_id: OrderArg) -> None:
    """One order (queued or stored), as JSON."""

    async def work(services: Container) -> OrderRead:
        async with services.sessionmaker() as session:
            return await orders.get_order(
                session=session, services=services, user=operator(), order_id=order_id
            )

    print(run(work).model_dump_json(indent=2))


@orders_cli.command()
def cancel(order_id: OrderArg) -> None:
    """Cancel a pending_payment order; its units go back."""

    async def cancel_it(services: Container, session: AsyncSession) -> OrderRead:
        cancelled = await orders.cancel(
            session=session,
            services=services,
            user=operator(),
            order_id=order_id,
            cause=TransitionCause.OPERATOR_CANCEL,
        )
        return OrderRead.model_validate(cancelled)

    async def work(services: Container) -> OrderRead:
        return await in_transaction(services, lambda session: cancel_it(services, session))

    print(_line(run(work)))


@orders_cli.command()
def refund(order_id: OrderArg) -> None:
    """Refund a paid order through the gateway; its units go back."""

    async def refund_it(services: Container, session: AsyncSession) -> OrderRead:
        refunded = await payments.refund(
            session=session, services=services, user=operator(), order_id=order_id
        )
        return OrderRead.model_validate(refunded)

    async def work(services: Container) -> OrderRead:
        return await in_transaction(services, lambda session: refund_it(services, session))

    print(_line(run(work)))
