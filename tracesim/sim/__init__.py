"""The simulation core: cluster state as numpy columns and placement protocols."""
