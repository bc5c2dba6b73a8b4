"""Reporting: console output, the run folder's files, and plots."""
