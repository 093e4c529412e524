"""The command-line apps of ``flavortag`` (thin Hydra / argparse entry points)."""
