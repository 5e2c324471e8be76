"""Coupons: templates, claims and redemption (arrives with the coupons issue)."""
