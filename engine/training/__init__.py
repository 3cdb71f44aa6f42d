"""Training the student: examples aligned to the teacher's labels, batches, losses, the student forward, LoRA, the loop."""
