"""Returns (after-sales): a buyer asks to return a paid or shipped order, an operator
approves (the refund, the goods back on hand) or rejects it."""
