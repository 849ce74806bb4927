"""Host history: change records between snapshots, and snapshot bodies stored as deltas."""
