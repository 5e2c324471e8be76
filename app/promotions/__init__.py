"""Promotions: a 满减 applied at regular checkout to the first N orders of each day."""
