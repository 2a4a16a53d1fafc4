"""What a run reports: the end-of-run summary, from the records its nodes returned."""
