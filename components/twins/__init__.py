"""In-memory twins of the edges, for unit tests of the run."""
