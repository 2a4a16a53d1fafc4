"""What every process of the project runs with: one way to launch and stop a child process, and
the log filters and TensorFlow environment of a quiet run."""
