"""The stakeholder dashboard (Streamlit): read-only views of runs, parties, contributions and models."""
