"""Guard decision log tables (owned by the guard work; see guard/log.py)."""
