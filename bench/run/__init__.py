"""Running one mode on one workload: its names and shared context (context.py), the topic
(topics.py), the consumer (mode.py), the callbacks (collector.py), the result (summary.py)."""
