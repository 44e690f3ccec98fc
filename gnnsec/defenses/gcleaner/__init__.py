"""GCleaner (Zhang et al., "No Matter What You Do!": Mitigating Backdoor Attacks in Graph Neural Networks).

- :mod:`.params`: the settings (``defense.params``) and their validation.
- :mod:`.recovery`: trigger recovery via an explainer and a generator (section 4.3, Eq. 5-8).
- :mod:`.unlearning`: distillation-based unlearning with the heatmap loss (section 4.4, Eq. 9-14).
- :mod:`.defense`: the registered ``"gcleaner"`` defense that composes them.

Where this implementation departs from the paper or the authors' code, and why:

- The authors' code unlearns with the attacker's real trigger; here the defender only has the trigger it
  recovered (``DefenderData`` cannot carry the real one).
- L_explain is differentiable (heatmaps with ``create_graph=True``); the authors' code computes it in numpy,
  so it never trained the student.
- Eq. 8 as printed (``max(0, T − L_pq)`` with ``L_pq = −cos``) would push triggered graphs *apart*; the text
  says the aim is high similarity, so the hinge is ``max(0, T − cos)``.
- ``F(G)`` in Eq. 7 is taken to be the model's output (logits, ``similarity_on="logits"``): on GIN/AIDS the
  real Sub-BA trigger *lowers* the pairwise cosine of the readout embeddings (sum readout: the trigger adds
  a shared component whose relative weight depends on graph size), so embedding-space recovery mostly
  converges to an edgeless trigger; the logits of triggered graphs do become near-identical.
  ``similarity_on="embedding"`` keeps the other reading.
- Recovery is restarted (``restarts``) and within a restart the generator is kept at its best epoch; the
  defender picks the restart whose trigger flips most of its own correctly classified clean graphs to one
  common class (it never learns the real target label).
- Unlearning uses Adam at 1e-2 by default (``optimizer="sgd", lr=1e-3`` is the paper's setting, which
  barely moves the student in 30 one-batch epochs); the student's BatchNorm statistics are frozen.
"""

from gnnsec.defenses.gcleaner.defense import GCleaner
from gnnsec.defenses.gcleaner.params import GCleanerParams

__all__ = ["GCleaner", "GCleanerParams"]
