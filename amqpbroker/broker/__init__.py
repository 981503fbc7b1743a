"""The protocol-neutral broker core (see docs/architecture.md)."""
