"""Spark: the session a run starts, the training strategies run on it, and a local standalone
cluster (``kedro spark-cluster up``)."""
