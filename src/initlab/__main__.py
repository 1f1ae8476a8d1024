from initlab.cli import entry

entry()
