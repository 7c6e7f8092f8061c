"""Consortia's peer benchmark workload as a Flower App (ServerApp + ClientApp)."""
