"""What the bench computes from a run: latency, throughput and correctness (stats.py), the
theoretical bound (bounds.py), and yappi profiles (profiling.py)."""
