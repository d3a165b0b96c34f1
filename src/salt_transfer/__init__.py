"""salt-transfer: cross-lingual vocabulary transfer of language models (SALT and its baselines).

The library is importable and testable without Snakemake; the workflow calls it through the
`salt-transfer` command line (see `salt_transfer.cli`).
"""

__version__ = "0.1.0"
