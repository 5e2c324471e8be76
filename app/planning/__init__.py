"""The campaign desk: what a campaign's approval and rules changes put in force in the live
sale (its events, coupons and promotions), copies of a campaign, and its report."""
