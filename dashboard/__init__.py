"""ToskaMesh KV Dashboard: see docs/architecture.md for the layers."""
