"""Flash-sale events and their items: windows, prices, allocations."""
