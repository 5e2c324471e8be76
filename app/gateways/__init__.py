"""Adapters to outside services the container wires in (the payment gateway)."""
