"""Background jobs with progress (bulk coupon grants), resumable after a crash."""
