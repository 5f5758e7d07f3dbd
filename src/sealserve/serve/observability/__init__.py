"""What the server tells about itself: metrics, drift, the prediction log, access lines and logging."""
