"""What users read: status, error causes, the current table, per-file formats and the WER report."""
