"""The lottery report (GET /api/v1/admin/lotteries/{id}/report): JSON or CSV."""

import csv
import io

from sqlalchemy.ext.asyncio import AsyncSession

from app.lottery import repository as lotteries
from app.lottery.errors import LotteryNotFound
from app.moments import utc_now
from app.reports.lottery_schemas import LotteryReport, PrizeLine
from app.reports.service import csv_cell, ratio


async def build_lottery_report(*, session: AsyncSession, lottery_id: int) -> LotteryReport:
    lottery = await lotteries.get_lottery(session, lottery_id)
    if lottery is None:
        raise LotteryNotFound(f"No lottery {lottery_id}.")
    figures = await lotteries.lottery_figures(session, lottery_id)
    prizes = [
        PrizeLine(
            prize_id=p.prize_id,
            name=p.name,
            kind=p.kind,
            quantity=p.quantity,
            won=p.won,
            remaining=max(0, p.quantity - p.won),
            paid=p.paid,
            pending_approval=p.pending_approval,
        )
        for p in figures.prizes
    ]
    wins = sum(p.won for p in prizes)
    return LotteryReport(
        lottery_id=lottery.id,
        name=lottery.name,
        starts_at=lottery.starts_at,
        ends_at=lottery.ends_at,
        draws=figures.draws,
        drawers=figures.drawers,
        wins=wins,
        win_rate=ratio(wins, figures.draws),
        pending_approvals=sum(p.pending_approval for p in prizes),
        prizes=prizes,
        generated_at=utc_now(),
    )


COLUMNS = ("prize_id", "name", "kind", "quantity", "won", "remaining", "paid", "pending_approval")


def lottery_report_csv(report: LotteryReport) -> str:
    """One row per prize, then a total row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for prize in report.prizes:
        writer.writerow(csv_cell(getattr(prize, column)) for column in COLUMNS)
    writer.writerow(
        csv_cell(v)
        for v in (
            "total",
            "",
            "",
            sum(p.quantity for p in report.prizes),
            report.wins,
            sum(p.remaining for p in report.prizes),
            sum(p.paid for p in report.prizes),
            report.pending_approvals,
        )
    )
    return out.getvalue()
