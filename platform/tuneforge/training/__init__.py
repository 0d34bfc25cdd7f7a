"""Per-worker training building blocks (DeepSpeed engine, step loop, checkpoints). No Ray here."""
