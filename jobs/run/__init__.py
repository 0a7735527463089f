"""Running the job: preflight, fingerprint, the Ray Data pipeline and its workers, the cluster, progress."""
