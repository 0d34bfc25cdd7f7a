"""tuneforge.distributed."""
