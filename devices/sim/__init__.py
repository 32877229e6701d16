"""nanoct."""
