"""Lotteries (抽奖) and daily check-ins."""
