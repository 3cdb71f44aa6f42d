"""The teacher: generation, answer extraction, soft labels and their cache."""
