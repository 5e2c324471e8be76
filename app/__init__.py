"""seckill: a high-concurrency flash-sale backend."""
