from app.coupons.pricing import Refusal
from app.errors import AppError


class CouponNotFound(AppError):
    status = 404
    code = "not_found"
    title = "No such coupon"


class CouponExhausted(AppError):
    status = 409
    code = "coupon_exhausted"
    title = "No coupons of this kind left to claim"


class AudienceMismatch(AppError):
    status = 403
    code = "audience_mismatch"
    title = "This coupon is for another audience"


class CouponNotApplicable(AppError):
    """The coupon cannot be used on this order; `reason` says why (also in the body)."""

    status = 422
    code = "coupon_not_applicable"
    title = "The coupon cannot be used on this order"

    def __init__(self, detail: str, *, reason: Refusal) -> None:
        super().__init__(detail, extra={"reason": reason.value})
        self.reason = reason


REFUSAL_DETAILS = {
    Refusal.OUT_OF_SCOPE: "no item of this order is in the coupon's scope",
    Refusal.BELOW_THRESHOLD: "the eligible subtotal is below the coupon's threshold",
    Refusal.EXPIRED: "the coupon has expired",
    Refusal.NOT_YET_VALID: "the coupon is not usable yet",
    Refusal.ALREADY_USED: "the coupon has already been used",
    Refusal.NOT_YOURS: "the coupon is not yours",
    Refusal.SECKILL: "seckill prices take no coupons",
}


def not_applicable(reason: Refusal, more: str = "") -> CouponNotApplicable:
    detail = f"Coupon not applicable: {REFUSAL_DETAILS[reason]}" + (f" ({more})" if more else "")
    return CouponNotApplicable(detail + ".", reason=reason)
