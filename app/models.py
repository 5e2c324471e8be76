"""Every table, imported in one place so Alembic and the tests see the whole schema."""

from app.db import Base
from app.events.models import Event, EventItem
from app.inventory.models import Sku, StockMovement
from app.orders.models import Order, OrderTransition

__all__ = ["Base", "Event", "EventItem", "Order", "OrderTransition", "Sku", "StockMovement"]
