"""Textual workbench for context distillation (imports engine; engine never imports it)."""
