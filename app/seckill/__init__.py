"""The flash-sale hot path: atomic purchase in Lua, order stream, order writer."""
