"""Consortia's core: pure federated-learning logic plus thin adapters at the I/O edges."""
