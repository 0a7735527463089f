"""Object storage: fsspec reads and writes with retries, fetching audio, manifests and their objects' sizes and ETags."""
