"""tuneforge.cli."""
