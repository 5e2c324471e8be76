"""The operators' audit log: every change an operator makes, with who, before and after."""
