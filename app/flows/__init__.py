"""Flows that span domains: the order writer, the audits, sweeps, reports."""
