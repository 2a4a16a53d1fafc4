"""Scoring a registered model on the real-picture sets: shared by registration and deploy."""
