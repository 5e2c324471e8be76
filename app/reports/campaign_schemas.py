from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, Field

from app.campaigns.models import CampaignStatus, Phase
from app.campaigns.schemas import PhasesRead
from app.members.stats import MembersReport
from app.returns.models import ReturnReason
from app.returns.stats import REFUND_RATE, RETURNS_BY_REASON


class Figures(BaseModel):
    """Orders of one part of a campaign (a phase, a channel) or of all of it."""

    orders: int
    units: int
    paid_orders: int
    gmv: Decimal = Field(description="Amount of paid orders (refunded ones excluded).")
    aov: Decimal | None = Field(description="gmv / paid orders (null without one).")


class ChannelFigures(Figures):
    channel: str | None = Field(
        description="The order's channel: a code the campaign lists, `other` (a code it "
        "does not), or null (no X-Channel)."
    )
    cost: Decimal | None = Field(description="What the channel cost (null: not listed).")
    roi: float | None = Field(description="gmv / cost (null when the cost is 0 or unknown).")


class MoneyTarget(BaseModel):
    target: Decimal
    actual: Decimal
    completion: float | None = Field(description="actual / target (1.0 = reached).")


class CountTarget(BaseModel):
    target: int
    actual: int
    completion: float | None = Field(description="actual / target (1.0 = reached).")


class TargetsProgress(BaseModel):
    """Each target the campaign has (null: it has none for that figure)."""

    gmv: MoneyTarget | None = None
    orders: CountTarget | None = None
    new_buyers: CountTarget | None = None


class CountChange(BaseModel):
    value: int = Field(description="The baseline campaign's figure.")
    change: float | None = Field(
        description="(this - baseline) / baseline (0.1 = 10% more; null when the baseline is 0)."
    )


class MoneyChange(BaseModel):
    value: Decimal | None = Field(description="The baseline campaign's figure.")
    change: float | None = Field(
        description="(this - baseline) / baseline (0.1 = 10% more; null when the baseline is "
        "0 or unknown)."
    )


class Baseline(BaseModel):
    campaign_id: int
    name: str
    orders: CountChange
    units: CountChange
    paid_orders: CountChange
    gmv: MoneyChange
    aov: MoneyChange
    new_buyers: CountChange


class GmvPoint(BaseModel):
    at: datetime
    gmv: Decimal = Field(description="Paid GMV of the orders accepted before `at`.")
    paid_orders: int = Field(description="Paid orders accepted before `at`.")


class GmvSeries(BaseModel):
    """Cumulative paid GMV at the origin, then at the end of each bucket, over the
    campaign's phases (to now while it runs), orders outside them included."""

    bucket_seconds: float
    points: list[GmvPoint]


class CampaignReport(BaseModel):
    campaign_id: int
    name: str
    status: CampaignStatus
    timezone: str
    phases: PhasesRead
    current_phase: Phase | None = Field(description="The phase when the report was made.")
    generated_at: datetime
    orders: int
    units: int
    paid_orders: int
    gmv: Decimal = Field(description="Amount of paid orders (refunded ones excluded).")
    aov: Decimal | None = Field(description="gmv / paid orders.")
    new_buyers: int = Field(
        description="Users whose first paid order ever is one of this campaign's (and who "
        "hold a paid one of it)."
    )
    by_phase: dict[str, Figures] = Field(
        description="By acceptance time: warm_up, peak, return and outside (in none)."
    )
    by_channel: list[ChannelFigures] = Field(
        description="The listed channels (by code), then `other`, then no channel."
    )
    targets: TargetsProgress
    baseline: Baseline | None = None
    series: GmvSeries
    members: MembersReport | None = Field(
        default=None,
        description="Points the campaign's orders issued and took back; invites accepted "
        "from its first phase's start to its last phase's end and rewarded on its orders.",
    )
    returns_by_reason: dict[ReturnReason, int] = Field(description=RETURNS_BY_REASON)
    refund_rate: float | None = Field(description=REFUND_RATE)
