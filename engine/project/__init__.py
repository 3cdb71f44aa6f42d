"""The project: its file's schema, loading, validation and writing; templates, input sources, user code, new-project scaffolds."""
