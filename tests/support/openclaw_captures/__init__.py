"""Real OpenClaw 2026.9.6 answers captured as fixtures (see README.md and capture.py)."""
