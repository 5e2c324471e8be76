from app.errors import AppError


class TooManyStreams(AppError):
    """This process already serves its most stats streams (SECKILL_LIVE_MAX_STREAMS);
    another process behind the load balancer, or this one a little later, may have room."""

    status = 503
    code = "too_many_streams"
    title = "Too many live stats streams on this server"

    def __init__(self, detail: str | None = None, *, retry_after_seconds: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_seconds)})
