"""What a run leaves behind: the run folder, the root's lock, earlier runs' rows and the nightly selection."""
