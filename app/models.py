"""Every table, imported in one place so Alembic and the tests see the whole schema."""

from app.access.draw_models import Draw, DrawRegistration
from app.access.queue_models import QueuePlace
from app.audit_log.models import OperatorAction
from app.campaigns.models import Campaign, CampaignApproval, CampaignChannel, CampaignRules
from app.coupons.models import Coupon, UserCoupon
from app.db import Base
from app.events.models import Event, EventItem
from app.gateways.models import GatewaySettlement
from app.generations.models import CounterGeneration
from app.inventory.models import Sku, StockMovement
from app.jobs.models import Job
from app.lottery.models import CheckIn, Lottery, LotteryDraw, LotteryPrize, LotteryWin
from app.members.invites_models import Invite, InviteCode
from app.members.points_models import PointBalance, PointEntry
from app.orders.models import Order, OrderLine, OrderTransition
from app.payments.reconciliation_models import Reconciliation
from app.promotions.models import Promotion
from app.reminders.models import ReminderBatch, ReminderSubscription
from app.returns.models import OrderReturn

__all__ = [
    "Base",
    "Campaign",
    "CampaignApproval",
    "CampaignChannel",
    "CampaignRules",
    "CheckIn",
    "Coupon",
    "CounterGeneration",
    "Draw",
    "DrawRegistration",
    "Event",
    "EventItem",
    "GatewaySettlement",
    "Invite",
    "InviteCode",
    "Job",
    "Lottery",
    "LotteryDraw",
    "LotteryPrize",
    "LotteryWin",
    "OperatorAction",
    "Order",
    "OrderLine",
    "OrderReturn",
    "OrderTransition",
    "PointBalance",
    "PointEntry",
    "Promotion",
    "QueuePlace",
    "Reconciliation",
    "ReminderBatch",
    "ReminderSubscription",
    "Sku",
    "StockMovement",
    "UserCoupon",
]
