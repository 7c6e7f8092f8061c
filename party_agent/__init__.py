"""The data owner's party agent: trains next to the data and sends only updates, metrics and summaries."""
