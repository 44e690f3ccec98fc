"""Node unlearners behind ``UNLEARNERS`` (Forget and Explain): Retrain, GNNDelete, GraphEditor, IDEA.

One module per unlearner, the interface in :mod:`.base`; importing this package registers all four.
"""

from gnnsec.unlearning import gnndelete, grapheditor, idea, retrain  # noqa: F401  (registration)
from gnnsec.unlearning.base import Unlearner, UnlearnOutcome, UnlearnRequest, remove_nodes
from gnnsec.unlearning.registry import UNLEARNERS

__all__ = ["UNLEARNERS", "UnlearnOutcome", "UnlearnRequest", "Unlearner", "remove_nodes"]
