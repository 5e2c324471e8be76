"""SKUs, on-hand stock and the inventory ledger of every stock movement."""
