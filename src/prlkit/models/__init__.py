"""Neural networks: shared 3D blocks and the main two-stream method (frodo)."""
