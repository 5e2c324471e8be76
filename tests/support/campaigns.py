"""Typed factories for campaign tests, going through the real API."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.support.factories import Auth

# Two operators of the default approver groups (SECKILL_CAMPAIGN_APPROVER_GROUPS) and the
# one who plans and submits.
PLANNER = ("planner", ())
OPS = ("olivia-ops", ("ops",))
FINANCE = ("fred-finance", ("finance",))


def window(starts_in: timedelta, lasts: timedelta) -> dict[str, str]:
    starts_at = datetime.now(UTC) + starts_in
    return {"starts_at": starts_at.isoformat(), "ends_at": (starts_at + lasts).isoformat()}


def campaign_spec(**overrides: Any) -> dict[str, Any]:
    """Warm-up from an hour ago to a minute ago, a peak of two hours from then, a
    return phase of a day after it."""
    now = datetime.now(UTC)
    peak_starts = now - timedelta(minutes=1)
    peak_ends = peak_starts + timedelta(hours=2)
    spec: dict[str, Any] = {
        "name": "Double 12",
        "timezone": "Asia/Shanghai",
        "phases": {
            "warm_up": {
                "starts_at": (peak_starts - timedelta(hours=1)).isoformat(),
                "ends_at": peak_starts.isoformat(),
            },
            "peak": {"starts_at": peak_starts.isoformat(), "ends_at": peak_ends.isoformat()},
            "return": {
                "starts_at": peak_ends.isoformat(),
                "ends_at": (peak_ends + timedelta(days=1)).isoformat(),
            },
        },
        "rules": "Each account at most 2 phones. No coupons on seckill prices.",
        "targets": {"gmv": "100000.00", "orders": 500, "new_buyers": 100},
        "channels": [{"code": "app", "cost": "1000.00"}, {"code": "wechat", "cost": "500.00"}],
    }
    spec.update(overrides)
    return {k: v for k, v in spec.items() if v is not None}


async def create_campaign(
    client: httpx.AsyncClient, auth: Auth, **overrides: Any
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/admin/campaigns",
        json=campaign_spec(**overrides),
        headers=auth.operator(*_who(PLANNER)),
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _who(operator: tuple[str, tuple[str, ...]]) -> tuple[str, ...]:
    user_id, groups = operator
    return (user_id, *groups)


async def approve_campaign(
    client: httpx.AsyncClient, auth: Auth, campaign_id: int
) -> dict[str, Any]:
    """Submitted by the planner, approved by ops and finance."""
    path = f"/api/v1/admin/campaigns/{campaign_id}"
    response = await client.post(f"{path}/submit", headers=auth.operator(*_who(PLANNER)))
    assert response.status_code == 200, response.text
    for operator in (OPS, FINANCE):
        response = await client.post(f"{path}/approve", headers=auth.operator(*_who(operator)))
        assert response.status_code == 200, response.text
    approved: dict[str, Any] = response.json()
    assert approved["status"] == "approved", approved
    return approved
