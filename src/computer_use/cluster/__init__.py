"""Sessions spread over desktop hosts with Ray (the `cluster` extra; docs/SCALING.md)."""
