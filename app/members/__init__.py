"""Members' engagement: the points ledger and invitations (issue 21)."""
