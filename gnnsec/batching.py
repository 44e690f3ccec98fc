"""Mini-batches of small graphs without per-graph Python work: collate once, slice by offsets.

PyG's ``DataLoader`` collates every mini-batch from a list of ``Data`` objects, which costs Python work
per graph and per attribute at every step (on AIDS about a fifth of an epoch). :class:`CollatedGraphs`
collates a whole list once with PyG's own ``Batch.from_data_list`` and keeps, per attribute, the offsets
of each graph's rows (``_slice_dict``) and index increments (``_inc_dict``). A mini-batch of any graphs
is then a handful of vectorised index operations per attribute: gather the graphs' row ranges, shift
index attributes (``edge_index``) from their offsets in the whole list to their offsets in the batch.
The result is the very ``Batch`` PyG would build from the same graphs (same keys, same tensors, ``batch``,
``ptr``, slice and increment dictionaries, ``to_data_list`` works), which ``tests/test_batching.py``
checks against ``Batch.from_data_list``.

:class:`GraphLoader` visits mini-batches in exactly the order of ``torch_geometric.loader.DataLoader``
with the same ``batch_size``, ``shuffle`` and ``generator``: the order comes from torch's own
``DataLoader`` machinery over graph indices, so the generator is consumed the same way each epoch and a
seeded training run sees the same mini-batches as before.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import DataLoader as IndexLoader
from torch_geometric.data import Batch, Data

GROUP_BYTES = 32 * 2**20  # mini-batches are gathered in groups of about this much attribute data


@dataclass
class _Attr:
    """One collated attribute: its values for all graphs, where each graph's rows start, its increments."""

    key: str
    value: Tensor
    dim: int  # the concatenation dimension
    slices: Tensor  # [G + 1] offsets along ``dim``
    inc_total: Tensor | None  # [G] the increment added to graph i in the whole collation (None: none)
    inc_own: Tensor | None  # [G] graph i's own increment (e.g. its number of nodes for edge_index)


def _segments(slices: Tensor, idx: Tensor) -> tuple[Tensor, Tensor, int]:
    """Row positions of graphs ``idx`` (concatenated in that order), each graph's row count, and the total."""
    starts = slices[idx]
    counts = slices[idx + 1] - starts
    total = int(counts.sum())
    offsets = torch.cumsum(counts, 0) - counts  # exclusive cumsum: where each graph starts in the batch
    pos = torch.arange(total, device=slices.device)
    pos += torch.repeat_interleave(starts - offsets, counts, output_size=total)
    return pos, counts, total


class CollatedGraphs:
    """A list of graphs collated once; :meth:`batch` builds PyG's ``Batch`` of any of them by slicing."""

    def __init__(self, graphs: Sequence[Data], device: torch.device | str | None = None) -> None:
        self.graphs = list(graphs)
        self.num_graphs = len(self.graphs)
        self.target = torch.device(device) if device is not None else None  # where batches are delivered
        self.vectorised = self.num_graphs > 0
        if not self.vectorised:
            return
        try:
            full = Batch.from_data_list(self.graphs)
        except (KeyError, RuntimeError, TypeError, ValueError):
            # graphs whose attributes differ: collate per mini-batch as PyG's loader does (same errors, if any)
            self.vectorised = False
            return
        if device is not None:
            full = full.to(device)
        store = full._store
        self.keys = [k for k in store.keys() if k not in ("batch", "ptr")]  # noqa: SIM118
        self.has_num_nodes = "num_nodes" in self.keys
        self.node_counts = torch.diff(full.ptr)
        self.attrs: list[_Attr] = []
        last = self.graphs[-1]
        for key in self.keys:
            if key == "num_nodes":
                continue
            value, slices, incs = store[key], full._slice_dict[key], full._inc_dict[key]
            if not isinstance(value, Tensor) or not isinstance(incs, Tensor) or incs.dim() != 1:
                self.vectorised = False  # non-tensor attributes: fall back to PyG's collation per batch
                return
            inc_total = inc_own = None
            if bool(incs.any()):
                last_inc = torch.as_tensor(last.__inc__(key, last[key]), device=incs.device).view(1)
                inc_total = incs.to(value.device)
                inc_own = torch.diff(torch.cat([incs, incs[-1:] + last_inc.to(incs.dtype)])).to(value.device)
            dim = full.__cat_dim__(key, value)
            dim = dim + value.dim() if dim < 0 else dim
            self.attrs.append(_Attr(key, value, dim, slices.to(value.device), inc_total, inc_own))
        self.device = full.ptr.device

    def __len__(self) -> int:
        return self.num_graphs

    def nbytes(self) -> int:
        """Bytes of collated attribute data (0 when not vectorised)."""
        return sum(a.value.numel() * a.value.element_size() for a in self.attrs) if self.vectorised else 0

    def batch(self, idx: Tensor) -> Batch:
        """``Batch.from_data_list([graphs[i] for i in idx])``, built by vectorised slicing."""
        return next(iter(self.batches([idx])))

    def group_size(self, batch_size: int) -> int:
        """How many mini-batches to gather at once: about ``GROUP_BYTES`` of attribute data per group."""
        if not self.vectorised:
            return 1
        per_graph = sum(a.value.numel() * a.value.element_size() for a in self.attrs) / self.num_graphs
        return max(1, int(GROUP_BYTES // max(per_graph * batch_size, 1.0)))

    def batches(self, index_batches: Sequence[Tensor]) -> Iterator[Batch]:
        """The ``Batch`` of each index tensor, in order: one gather per attribute for all of them together,
        then each mini-batch is a set of views and a few offset subtractions."""
        if not self.vectorised:
            for idx in index_batches:
                b = Batch.from_data_list([self.graphs[int(i)] for i in idx])
                yield b if self.target is None else b.to(self.target)  # on ``device``, as the fast path
            return
        sizes = [int(i.numel()) for i in index_batches]
        idx = torch.cat(list(index_batches)).to(self.device)
        n = int(idx.numel())
        first = [0]  # position (in idx) of each mini-batch's first graph
        for size in sizes:
            first.append(first[-1] + size)
        sizes_t = torch.tensor(sizes, device=self.device)
        first_t = torch.tensor(first[:-1], device=self.device)
        own_first = torch.repeat_interleave(first_t, sizes_t, output_size=n)  # per graph: its batch's first
        counts = self.node_counts[idx]
        node_cs = _inclusive_with_zero(counts)
        gathered = []
        for a in self.attrs:
            pos, seg, total = _segments(a.slices, idx)
            v = a.value.index_select(a.dim, pos)
            inc = torch.zeros(n, dtype=torch.long, device=self.device)
            if a.inc_total is not None and a.inc_own is not None:
                inc_cs = _inclusive_with_zero(a.inc_own[idx])
                inc = inc_cs[:-1] - inc_cs[own_first]  # exclusive cumsum within each mini-batch
                delta = torch.repeat_interleave(inc - a.inc_total[idx], seg, output_size=total)
                shape = [1] * v.dim()
                shape[a.dim] = total
                v = v + delta.view(shape).to(v.dtype)
            seg_cs = _inclusive_with_zero(seg)
            gathered.append((a, v, seg_cs, seg_cs.tolist(), inc))
        in_batch = torch.arange(n, device=self.device) - own_first
        batch_vec = torch.repeat_interleave(in_batch, counts, output_size=int(node_cs[-1]))
        counts_list, node_list = counts.tolist(), node_cs.tolist()
        cpu = self.device.type != "cpu"
        for b in range(len(sizes)):
            g0, g1 = first[b], first[b + 1]
            out = Batch(_base_cls=Data)
            store = out._store
            values, slice_dict, inc_dict = {}, {}, {}
            for a, v, seg_cs, seg_list, inc in gathered:
                r0, r1 = seg_list[g0], seg_list[g1]
                values[a.key] = v.narrow(a.dim, r0, r1 - r0)
                sl, ic = seg_cs[g0 : g1 + 1] - r0, inc[g0:g1]
                slice_dict[a.key], inc_dict[a.key] = (sl.cpu(), ic.cpu()) if cpu else (sl, ic)
            n0, n1 = node_list[g0], node_list[g1]
            for key in self.keys:  # PyG's key order
                if key == "num_nodes":
                    store._num_nodes = counts_list[g0:g1]
                    store.num_nodes = n1 - n0
                else:
                    store[key] = values[key]
            store.batch = batch_vec[n0:n1]
            store.ptr = node_cs[g0 : g1 + 1] - n0
            out._num_graphs = g1 - g0
            out._slice_dict = slice_dict
            out._inc_dict = inc_dict
            yield out


def _inclusive_with_zero(x: Tensor) -> Tensor:
    """[0, x0, x0 + x1, ...]: offsets of consecutive segments of sizes ``x``."""
    return torch.cat([x.new_zeros(1), torch.cumsum(x, 0)])


def _indices(items: list[int]) -> Tensor:
    return torch.tensor(items, dtype=torch.long)


class GraphLoader:
    """Mini-batches of ``graphs`` in ``torch_geometric.loader.DataLoader``'s order, sliced from one collation.

    With the same ``batch_size``, ``shuffle`` and ``generator`` it yields the same graphs per batch in the
    same order as PyG's loader (torch's sampler draws the order; the generator advances identically).
    """

    def __init__(
        self,
        graphs: Sequence[Data] | CollatedGraphs,
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        self.data = graphs if isinstance(graphs, CollatedGraphs) else CollatedGraphs(graphs, device)
        self.batch_size = batch_size
        self._order = IndexLoader(
            range(len(self.data)),
            batch_size=batch_size,
            shuffle=shuffle,
            generator=generator,
            collate_fn=_indices,
        )

    def __len__(self) -> int:
        return len(self._order)

    def __iter__(self) -> Iterator[Batch]:
        group = self.data.group_size(self.batch_size)
        pending: list[Tensor] = []
        for idx in self._order:
            pending.append(idx)
            if len(pending) == group:
                yield from self.data.batches(pending)
                pending = []
        if pending:
            yield from self.data.batches(pending)


# ---- reuse of collations of the very same graphs ------------------------------------------------------------
_Fingerprint = tuple[tuple[int, str, object], ...]


def _fingerprint(graphs: Sequence[Data]) -> _Fingerprint:
    """Identity and content version of every attribute of ``graphs``: tensors by object and in-place
    version counter (bumped by every in-place write), other values by value. Equal fingerprints mean the
    same graph objects holding the same tensors with the same contents, hence the same collation."""
    out = []
    for g in graphs:
        for key, v in g._store.items():
            out.append((id(g), key, (id(v), v._version) if isinstance(v, Tensor) else v))
    return tuple(out)


class CollationCache:
    """The last few :class:`CollatedGraphs`, reused when the very same graphs are collated again.

    Evaluation helpers predict on the same small lists over and over (GCleaner measures its guard signals on
    the same clean and triggered graphs after every unlearning epoch: ~8 predictions per epoch); collating a
    list costs Python work per graph and attribute, more than the forward pass of a small model. An entry is
    reused only when the list holds the same graph objects, with the same attribute tensors, none written in
    place since (:func:`_fingerprint`; the entry keeps the graphs and tensors alive, so ids are not reused),
    so a hit returns the collation a fresh call would build and the results are bitwise the same
    (tests/test_batching.py). Lists larger than ``max_bytes`` of attribute data are not kept (COLLAB's test
    split would hold ~100 MB), and at most ``size`` entries are.
    """

    def __init__(self, size: int = 16, max_bytes: int = 8 * 2**20) -> None:
        self.size, self.max_bytes, self.enabled = size, max_bytes, True
        self._entries: dict[tuple, tuple[_Fingerprint, list[Data], CollatedGraphs]] = {}
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, graphs: Sequence[Data], device: torch.device | str | None = None) -> CollatedGraphs:
        if not self.enabled or len(graphs) == 0:
            return CollatedGraphs(graphs, device)
        key = (str(device), tuple(id(g) for g in graphs))
        fp = _fingerprint(graphs)
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is not None and entry[0] == fp:
                self._entries[key] = entry  # most recently used last
                self.hits += 1
                return entry[2]
        collated = CollatedGraphs(graphs, device)
        self.misses += 1
        if collated.vectorised and collated.nbytes() <= self.max_bytes:
            with self._lock:
                self._entries[key] = (fp, list(graphs), collated)
                while len(self._entries) > self.size:
                    self._entries.pop(next(iter(self._entries)))
        return collated

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


COLLATIONS = CollationCache()
