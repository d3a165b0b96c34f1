"""salt-transfer: cross-lingual vocabulary transfer of language models (SALT and its baselines).

The library is importable and testable without Snakemake; the workflow calls it through the
`salt-transfer` command line (see `salt_transfer.cli`).
"""

__version__ = "0.1.0"

__all__ = ["transfer"]


def __getattr__(name):
    # `salt_transfer.transfer(...)` without importing torch on `import salt_transfer`.
    if name == "transfer":
        from .pipeline import transfer

        return transfer
    raise AttributeError(f"module 'salt_transfer' has no attribute {name!r}")
