"""Campaigns: the plan around a sale (phases, rules, targets, channels) and its approval."""
