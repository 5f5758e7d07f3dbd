"""The trust path: from fetched files to a loaded model. Verify every byte, refuse rollbacks, load behind allow-lists."""
