"""One module per ``kerasbrain`` subcommand; see ``kerasbrain/cli.py``."""
