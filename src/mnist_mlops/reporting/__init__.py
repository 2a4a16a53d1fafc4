"""What a run reports: the end-of-run summary and the model card (its content, figures and
rendering)."""
