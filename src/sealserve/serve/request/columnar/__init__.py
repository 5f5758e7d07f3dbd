"""Batches sent column by column (MLflow's JSON shapes, Arrow IPC): decoded into column arrays, never one dict per record."""
