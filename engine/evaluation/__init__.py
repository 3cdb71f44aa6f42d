"""Scoring students, baselines and stages on held-out inputs."""
