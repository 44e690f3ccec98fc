"""gnnsec: GNN-security experiments (backdoor attacks, GCleaner, unlearning verification) as one pipeline."""

__version__ = "0.1.0"
