"""Prefect flows and tasks that orchestrate federation runs, and the ``consortia`` CLI."""
