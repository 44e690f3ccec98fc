"""Backdoor attacks on graph classification (Sub-BA, GTA, Exp-BA, Motif-BA).

On MUTAG from the data mirror, with a few training epochs, each attack: poisons exactly round(φ·|train|)
non-target graphs; injects without touching its input and only rewires the trigger nodes; injects a batch
exactly as it injects each graph alone; reproduces its injections after a state_dict round-trip; and
reaches a high attack success rate. Motif counting is checked against brute-force enumeration.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pytest
import torch
from torch_geometric.data import Batch, Data

from gnnsec.attacks import ATTACKS, Attack, AttackContext
from gnnsec.attacks.adaptive import triggered_similarity
from gnnsec.attacks.inject import replace_subgraph
from gnnsec.attacks.motif_ba import MOTIF_NAMES, MOTIFS, graphlet_counts, select_motif, trigger_adjacency
from gnnsec.cache import ArtifactCache, load_tensors, save_tensors
from gnnsec.config import AttackConfig, DataConfig, TrainConfig, TrialConfig
from gnnsec.data.loading import GraphDataset, load_graph_dataset
from gnnsec.errors import ConfigError
from gnnsec.models import build_graph_model
from gnnsec.pipeline import run_trial
from gnnsec.train import fit, predict
from tests.conftest import require_dataset

ATTACK_NAMES = ["sub_ba", "gta", "exp_ba", "motif_ba"]
EPOCHS = 20
RATIO = 0.1  # 15 victims out of 150 MUTAG training graphs (5% would leave only 8)
SALT = 2


# ---- fixtures ----------------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """One intra-op thread: the machine is shared, and oversubscribed threads make training crawl."""
    torch.set_num_threads(1)


@dataclass
class Setup:
    ds: GraphDataset
    train: list[Data]
    test: list[Data]
    train_cfg: TrainConfig
    clean: torch.nn.Module
    root: str = ""

    def factory(self) -> torch.nn.Module:
        torch.manual_seed(0)
        return build_graph_model("GIN", self.ds.num_features, self.ds.num_classes, hidden=32)

    def context(self) -> AttackContext:
        return AttackContext(
            self.train,
            self.ds.featurizer,
            self.ds.num_classes,
            self.ds.avg_nodes,
            self.factory,
            self.train_cfg,
            clean_model=self.clean,
        )

    def attack(self, name: str, **cfg: Any) -> Attack:
        acfg = AttackConfig(name=name, injection_ratio=RATIO, seed=0, **cfg)
        return ATTACKS.get(name)(acfg, self.ds.featurizer, self.ds.num_classes, self.ds.avg_nodes)

    @property
    def victims_test(self) -> list[Data]:
        return [g for g in self.test if int(g.y) != 1]


@dataclass
class Backdoor:
    name: str
    attack: Attack
    victims: np.ndarray
    poisoned: list[Data]
    model: torch.nn.Module


@pytest.fixture(scope="module")
def mutag(mirror: Path, tmp_path_factory: pytest.TempPathFactory) -> Setup:
    require_dataset(mirror, "TUDataset", "MUTAG")
    torch.set_num_threads(1)
    root = str(tmp_path_factory.mktemp("data"))
    cfg = DataConfig(dataset="MUTAG", root=root)
    ds = load_graph_dataset(cfg)
    split = ds.split(cfg)
    setup = Setup(ds, ds.subset(split.train), ds.subset(split.test), TrainConfig(epochs=EPOCHS), None)  # type: ignore[arg-type]
    setup.root = root
    setup.clean = setup.factory()
    fit(setup.clean, setup.train, setup.train_cfg)
    setup.clean.eval()
    return setup


def build_backdoor(setup: Setup, name: str, alpha: float = 0.0) -> Backdoor:
    torch.set_num_threads(1)
    attack = setup.attack(name, adaptive_alpha=alpha)
    ctx = setup.context()
    attack.reseed(1)
    attack.prepare(ctx)
    victims = attack.select_victims(setup.train)
    poisoned = attack.poison(setup.train, victims)
    model = setup.factory()
    attack.train_backdoored(model, poisoned, ctx, victims)
    return Backdoor(name, attack, victims, poisoned, model.eval())


@pytest.fixture(scope="module", params=ATTACK_NAMES)
def backdoor(request: pytest.FixtureRequest, mutag: Setup) -> Backdoor:
    return build_backdoor(mutag, request.param)


def edge_set(g: Data) -> set[tuple[int, int]]:
    return {(int(a), int(b)) for a, b in g.edge_index.t()}


def asr(model: torch.nn.Module, graphs: list[Data]) -> float:
    return float((predict(model, graphs) == 1).float().mean())


# ---- poisoning ---------------------------------------------------------------------------------------------
def test_poisoned_set_has_exact_count_of_non_target_victims(backdoor: Backdoor, mutag: Setup) -> None:
    n_expected = int(round(RATIO * len(mutag.train)))
    assert len(backdoor.victims) == n_expected == len(set(backdoor.victims.tolist()))
    assert all(int(mutag.train[i].y) != 1 for i in backdoor.victims)
    changed = [
        i
        for i, (g, p) in enumerate(zip(mutag.train, backdoor.poisoned))
        if p is not g and (int(p.y) != int(g.y) or edge_set(p) != edge_set(g))
    ]
    assert changed == sorted(backdoor.victims.tolist())
    assert all(int(backdoor.poisoned[i].y) == 1 for i in backdoor.victims)


def test_backdoor_reaches_high_asr(backdoor: Backdoor, mutag: Setup) -> None:
    attack = backdoor.attack
    attack.reseed(SALT)
    triggered = attack.inject(mutag.victims_test)
    labels = torch.cat([g.y for g in mutag.test])
    acc = float((predict(backdoor.model, mutag.test) == labels).float().mean())
    assert asr(backdoor.model, triggered) >= 0.8
    assert acc >= 0.7


# ---- injection semantics -----------------------------------------------------------------------------------
def test_injection_leaves_input_and_non_trigger_edges_unchanged(backdoor: Backdoor, mutag: Setup) -> None:
    attack, graphs = backdoor.attack, mutag.victims_test
    before = copy.deepcopy(graphs)
    batch = Batch.from_data_list(graphs)
    attack.reseed(SALT)
    pos, mask = attack.positions(batch)
    trig = attack.trigger(batch, pos, mask)
    attack.reseed(SALT)
    out = attack.inject(graphs)
    for g, b in zip(graphs, before):  # the input list is untouched
        assert torch.equal(g.edge_index, b.edge_index) and torch.equal(g.x, b.x) and torch.equal(g.y, b.y)
    k = attack.trigger_nodes
    adj = trig.adj if trig.adj.dim() == 3 else trig.adj.expand(len(graphs), k, k)
    for i, (g, o) in enumerate(zip(graphs, out)):
        nodes = pos[i][mask[i]].tolist()
        assert len(set(nodes)) == len(nodes) == min(k, g.num_nodes)
        inside = {(a, b) for a in nodes for b in nodes if a != b}
        trigger = {
            (pos[i, a].item(), pos[i, b].item())
            for a, b in itertools.permutations(range(k), 2)
            if mask[i, a] and mask[i, b] and adj[i, a, b] > 0.5
        }
        assert edge_set(o) == (edge_set(g) - inside) | trigger  # only the trigger nodes are rewired
        assert o.num_edges == g.num_edges - len(edge_set(g) & inside) + len(trigger)
        assert o.num_nodes == g.num_nodes and int(o.y) == int(g.y)


def test_trigger_nodes_degree_features_are_their_degrees_in_the_triggered_graph(
    backdoor: Backdoor, mutag: Setup
) -> None:
    """Degree mode: after injection every node's feature is the one-hot of its (capped) degree in the
    *triggered* graph, as the model sees it (the GCleaner release featurizes after injecting); at least
    some trigger nodes change degree, so stale features would be caught. Same for the poisoned set."""
    f = mutag.ds.featurizer
    assert f.mode == "degree"
    attack = backdoor.attack
    attack.reseed(SALT)
    triggered, masks = attack.inject_with_masks(mutag.victims_test)
    changed = 0
    for g, o, m in zip(mutag.victims_test, triggered, masks):
        deg = torch.bincount(o.edge_index[1], minlength=o.num_nodes).clamp(max=f.degree_cap)
        assert torch.equal(o.x, torch.nn.functional.one_hot(deg, f.degree_cap + 1).to(o.x.dtype))
        before = torch.bincount(g.edge_index[1], minlength=g.num_nodes).clamp(max=f.degree_cap)
        changed += int((deg[m] != before[m]).sum())
    assert changed > 0
    for i in backdoor.victims:
        p = backdoor.poisoned[int(i)]
        deg = torch.bincount(p.edge_index[1], minlength=p.num_nodes).clamp(max=f.degree_cap)
        assert torch.equal(p.x.argmax(1), deg)


def test_batch_injection_equals_per_graph_injection(backdoor: Backdoor, mutag: Setup) -> None:
    attack, graphs = backdoor.attack, mutag.victims_test[:8]
    batch = Batch.from_data_list(graphs)
    attack.reseed(SALT)
    pos, mask = attack.positions(batch)
    trig = attack.trigger(batch, pos, mask)
    together = replace_subgraph(batch, pos, mask, trig.adj, trig.features, mutag.ds.featurizer).to_data_list()
    for i, g in enumerate(graphs):
        single = Batch.from_data_list([g])
        p, m = pos[i : i + 1], mask[i : i + 1]
        t = attack.trigger(single, p, m)
        alone = replace_subgraph(single, p, m, t.adj, t.features, mutag.ds.featurizer).to_data_list()[0]
        assert alone.num_edges == together[i].num_edges
        assert torch.equal(alone.edge_index, together[i].edge_index)
        assert torch.allclose(alone.x, together[i].x)
    if backdoor.name == "motif_ba":  # deterministic positions: also the same graph by graph
        for i, g in enumerate(graphs):
            p, m = attack.positions(Batch.from_data_list([g]))
            assert torch.equal(p[m], pos[i][mask[i]])


def test_state_dict_round_trip_reproduces_injection(backdoor: Backdoor, mutag: Setup, tmp_path: Path) -> None:
    attack = backdoor.attack
    save_tensors(tmp_path / "trigger.pt", attack.state_dict())
    reloaded = mutag.attack(backdoor.name)
    reloaded.load_state_dict(load_tensors(tmp_path / "trigger.pt"))
    graphs = mutag.victims_test
    attack.reseed(SALT)
    reloaded.reseed(SALT)
    for a, b in zip(attack.inject(graphs), reloaded.inject(graphs)):
        assert torch.equal(a.edge_index, b.edge_index)
        assert torch.allclose(a.x, b.x)


@pytest.mark.parametrize("name", ["gta", "exp_ba", "motif_ba"])
def test_pipeline_reuses_cached_attack(name: str, mutag: Setup, tmp_path: Path) -> None:
    """A second trial loads the attack from the artifact cache (load_state_dict only) and triggers the test
    graphs exactly as the trial that built it."""
    cfg = TrialConfig.from_dict(
        {
            "data": {"dataset": "MUTAG", "root": mutag.root},
            "model": {"hidden": 16},
            "train": {"epochs": 3},
            "attack": {"name": name, "injection_ratio": RATIO},
        }
    )
    cache = ArtifactCache(tmp_path / "artifacts")
    first, second = run_trial(cfg, cache).metrics, run_trial(cfg, cache).metrics
    assert first["backdoor_cached"] == 0.0 and second["backdoor_cached"] == 1.0
    for key in ("backdoor_asr", "clean_asr", "backdoor_acc"):
        assert first[key] == second[key]


# ---- attack-specific ---------------------------------------------------------------------------------------
def test_gta_generator_receives_gradient_through_edge_weights(mutag: Setup) -> None:
    attack = mutag.attack("gta")
    attack.reseed(1)
    attack.prepare(mutag.context())
    graphs = mutag.victims_test[:6]
    batch = Batch.from_data_list(graphs)
    pos, mask = attack.positions(batch)
    a_in, x_in = attack.generator_inputs(batch, pos, mask)
    trig = attack.generate(a_in, x_in, pos, mask)
    assert set(trig.adj.unique().tolist()) <= {0.0, 1.0}
    logits = attack._forward_triggered(mutag.clean, batch, trig, pos, mask)
    torch.nn.functional.cross_entropy(logits, torch.ones(len(graphs), dtype=torch.long)).backward()
    grads = [p.grad for p in attack.toponet.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
    # the relaxed forward pass equals the model on the hard-injected graphs
    hard = replace_subgraph(batch, pos, mask, trig.adj.detach(), None, mutag.ds.featurizer)
    with torch.no_grad():
        ref = mutag.clean(hard.x, hard.edge_index, hard.batch)
    assert torch.allclose(logits.detach(), ref, atol=1e-4)


@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_adaptive_alpha_spreads_triggered_embeddings(name: str, mutag: Setup) -> None:
    """Eq. 16 works on top of every attack (GTA's own bi-level loop included): α > 0 lowers the mean pairwise
    cosine similarity of the triggered graphs' embeddings."""
    sims = []
    for alpha in (0.0, 2.0):
        bd = build_backdoor(mutag, name, alpha=alpha)
        bd.attack.reseed(SALT)
        triggered = Batch.from_data_list(bd.attack.inject(mutag.victims_test))
        sims.append(triggered_similarity(bd.model, triggered))
    assert sims[1] < sims[0] - 0.05


def random_graph(n: int, p: float, seed: int) -> nx.Graph:
    return nx.gnp_random_graph(n, p, seed=seed)


def brute_force_counts(g: nx.Graph) -> torch.Tensor:
    templates = {name: nx.from_edgelist(MOTIFS[name][1]) for name in MOTIF_NAMES}
    out = torch.zeros(len(MOTIF_NAMES), dtype=torch.float64)
    for size in (3, 4):
        for nodes in itertools.combinations(g.nodes, size):
            sub = g.subgraph(nodes)
            if nx.is_connected(sub):
                name = next(
                    n for n in MOTIF_NAMES if MOTIFS[n][0] == size and nx.is_isomorphic(sub, templates[n])
                )
                out[MOTIF_NAMES.index(name)] += 1
    return out


def test_graphlet_counts_match_enumeration() -> None:
    graphs = [random_graph(9, 0.15 + 0.05 * s, s) for s in range(12)]
    adj = torch.zeros(len(graphs), 9, 9)
    for i, g in enumerate(graphs):
        adj[i] = torch.as_tensor(nx.to_numpy_array(g, nodelist=range(9)))
    counts = graphlet_counts(adj)
    for i, g in enumerate(graphs):
        assert torch.equal(counts[i], brute_force_counts(g)), i


def test_motif_selection_and_trigger_shape() -> None:
    counts = torch.zeros(len(MOTIF_NAMES), dtype=torch.float64)
    counts[MOTIF_NAMES.index("wedge")] = 100
    counts[MOTIF_NAMES.index("triangle")] = 3
    counts[MOTIF_NAMES.index("path4")] = 50
    counts[MOTIF_NAMES.index("star4")] = 20
    counts[MOTIF_NAMES.index("cycle4")] = 5
    counts[MOTIF_NAMES.index("paw")] = 9
    counts[MOTIF_NAMES.index("diamond")] = 1  # clique4 = 0: least frequent
    assert select_motif(counts, 3) == "triangle"
    assert select_motif(counts, 4) == "clique4"
    assert select_motif(counts, 9) == "clique4"
    assert select_motif(counts, 4, "most") == "path4"
    for k, motif in ((3, "triangle"), (4, "cycle4"), (7, "paw"), (10, "cycle4")):
        adj = trigger_adjacency(motif, k)
        g = nx.from_numpy_array(adj.numpy())
        assert adj.shape == (k, k) and torch.equal(adj, adj.t()) and nx.is_connected(g)
        assert nx.is_isomorphic(g.subgraph(range(min(k, 4))), nx.from_edgelist(MOTIFS[motif][1]))


@pytest.mark.parametrize(
    "name, params",
    [
        ("gta", {"threshold": 1.5}),
        ("gta", {"bilevel_iterations": 0}),
        ("exp_ba", {"density": 0.0}),
        ("sub_ba", {"max_redraws": -1}),
        ("sub_ba", {"max_redraws": 2.5}),
        ("exp_ba", {"spare_candidates": -1}),
        ("motif_ba", {"spare_candidates": True}),
        ("motif_ba", {"selection": "rare"}),
        ("motif_ba", {"unknown": 1}),
    ],
)
def test_attack_params_are_validated(name: str, params: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        AttackConfig(name=name, params=params)


def test_gta_injection_with_precomputed_generator_inputs_is_unchanged(mutag: Setup) -> None:
    """The bi-level loop reuses the victims' generator inputs (computed once): the triggered graphs are
    exactly those of a fresh computation."""
    attack = mutag.attack("gta")
    attack.reseed(2)
    attack.prepare(mutag.context())
    batch = Batch.from_data_list(mutag.victims_test[:8])
    pos, mask = attack.positions(batch)
    fresh = attack._inject_at(batch, pos, mask)
    reused = attack._inject_at(batch, pos, mask, attack.generator_inputs(batch, pos, mask))
    assert len(fresh) == len(reused) == 8
    for a, b in zip(fresh, reused):
        assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.x, b.x)


def test_sub_ba_trigger_always_changes_a_graph_that_can_carry_it() -> None:
    """An edge trigger (k = 2) on path graphs: the plain random draw often lands on an existing edge and
    leaves the graph unchanged; with redraws every graph of >= 3 nodes is changed, and the 2-node graph
    (whose only pair is already the trigger) is not eligible as a poisoning victim."""
    from gnnsec.data.features import Featurizer

    f = Featurizer("degree", 4)
    graphs = []
    for n in [2, *range(3, 9)] * 6:
        ei = torch.tensor([[i, i + 1] for i in range(n - 1)]).t()
        ei = torch.cat([ei, ei.flip(0)], 1)
        graphs.append(Data(x=f.degree_features(ei, n), edge_index=ei, y=torch.tensor([0]), num_nodes=n))

    def unchanged(redraws: int) -> tuple[list[bool], np.ndarray]:
        cfg = AttackConfig(name="sub_ba", trigger_size=0.4, params={"max_redraws": redraws}, seed=3)
        attack = ATTACKS.get("sub_ba")(cfg, f, 2, 5.0)
        assert attack.trigger_nodes == 2
        attack.reseed(1)
        attack.prepare(None)
        out = attack.inject(graphs)
        return [edge_set(a) == edge_set(b) for a, b in zip(graphs, out)], attack.eligible(graphs)

    plain, plain_ok = unchanged(0)
    assert sum(plain[i] for i, g in enumerate(graphs) if g.num_nodes > 2) >= 5
    assert plain_ok.all()
    fixed, ok = unchanged(20)
    assert [u for u, g in zip(fixed, graphs) if g.num_nodes > 2] == [False] * 36
    assert ok.tolist() == [g.num_nodes > 2 for g in graphs]


def test_best_changing_positions_skips_a_top_pair_that_is_already_the_trigger() -> None:
    """Exp-BA / Motif-BA placement: the two best-ranked nodes of a path are adjacent, so an edge trigger
    there changes nothing; the best-ranked pair that is not an edge is used instead (spare > 0 only)."""
    from gnnsec.attacks.inject import best_changing_positions, can_carry

    ei = torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]])
    path = Data(edge_index=ei, num_nodes=4)
    pair = Data(edge_index=torch.tensor([[0, 1], [1, 0]]), num_nodes=2)
    batch = Batch.from_data_list([path, pair])
    ranked = torch.tensor([[1, 2, 0, 3], [0, 1, 0, 0]])
    ranked_mask = torch.tensor([[True] * 4, [True, True, False, False]])
    edge = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    pos, mask = best_changing_positions(batch, ranked, ranked_mask, 2, edge, spare=2)
    assert pos[0].tolist() == [1, 3] and bool(mask[0].all())
    assert pos[1].tolist() == [0, 1]  # a 2-node graph cannot carry an edge trigger: top pair kept
    plain, _ = best_changing_positions(batch, ranked, ranked_mask, 2, edge, spare=0)
    assert plain[0].tolist() == [1, 2]
    assert can_carry([path, pair], edge).tolist() == [True, False]
    assert can_carry([pair], torch.zeros(2, 2)).tolist() == [True]  # removing the edge changes it
