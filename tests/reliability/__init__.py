"""Reliability and security: limits, faults, fault injection, load, bad input (docs/reliability.md,
docs/security.md)."""
