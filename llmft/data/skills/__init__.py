"""The skills benchmark: small generated tasks a tiny model learns on a CPU (see generate.py)."""
