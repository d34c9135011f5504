"""fastbptt's applications: command-line tools built on the public API (the experiments)."""
