"""What the bench writes: the results file (results.py, environment.py), the console tables and
progress bar (table.py, progress.py), and the `compare` and `report` subcommands."""
