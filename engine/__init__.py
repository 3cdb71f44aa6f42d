"""Headless context distillation: config, teacher pass, training recipe, evaluation.

This package never imports the UI (`ctxtui`) or `textual`.
"""
