"""Rate limits on purchases, coupon claims and checkouts, per user and per client address."""
