"""The run folder: its layout, events, resume, several processes, atomic writes, experiment trackers."""
