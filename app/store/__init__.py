"""The sale store: Redis key layout, one typed wrapper per Lua script, record codecs."""
