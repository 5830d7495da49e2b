"""Lesson 2 — autograd: torch remembers how a number was made (after Morvan's 202_variable.py).

What it shows:

* A tensor created with `requires_grad=True` records every operation done with it in a graph.
* `v_out = mean(v * v)` for v = [[1, 2], [3, 4]] is (1 + 4 + 9 + 16) / 4 = 7.5, the same as without
  gradients, but now `v_out.grad_fn` points into that graph: MeanBackward0 -> MulBackward0 -> AccumulateGrad.
* `v_out.backward()` walks the graph backwards. Since v_out = 1/4 · Σ v², d(v_out)/dv = 2v/4 = v/2, so
  `v.grad` is [[0.5, 1.0], [1.5, 2.0]].
* To get NumPy values out of a tensor that is part of a graph, call `.detach().numpy()`.

The tutorial wrapped the tensor in `Variable(tensor, requires_grad=True)`; Variable was merged into Tensor
in PyTorch 0.4 (2018), so today `requires_grad=True` goes on the tensor itself.

Run it with::

    digitlab lesson autograd
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.console import Console
from rich.text import Text
from rich.tree import Tree

from digitlab.lessons import report

TITLE = "Lesson 2 · autograd — gradients for free"


@dataclass
class AutogradResult:
    """What the lesson computed, so tests and other code can check the tutorial's numbers."""

    t_out: float  # mean(t * t) on a plain tensor: 7.5, with no graph behind it.
    v_out: float  # mean(v * v) on a tensor that requires grad: also 7.5.
    grad: list[list[float]]  # v.grad after v_out.backward(): v / 2 = [[0.5, 1.0], [1.5, 2.0]].
    grad_fn_chain: list[str]  # The graph from v_out back to v: MeanBackward0, MulBackward0, AccumulateGrad.
    numpy_error: str  # What v.numpy() says while v is still part of a graph.
    detached: list[list[float]]  # v.detach().numpy(), as a list.
    figures: list[Path] = field(default_factory=list)  # This lesson draws no figures.


def _graph_tree(fn: object, tree: Tree, names: dict[int, str]) -> None:
    """Add the graph node `fn`, and every node it leads back to, as branches of `tree`."""
    label = type(fn).__name__
    if hasattr(fn, "variable"):
        # AccumulateGrad is the end of the line: it adds the incoming gradient into a leaf tensor's .grad.
        label += f"  → adds into {names.get(id(fn.variable), 'a leaf')}.grad"
    branch = tree.add(Text(label))
    for next_fn, _ in fn.next_functions:
        if next_fn is not None:
            _graph_tree(next_fn, branch, names)


def _chain(fn: object) -> list[str]:
    """The node names met by always following the first link back: the graph as one line."""
    names = []
    while fn is not None:
        names.append(type(fn).__name__)
        fn = next((next_fn for next_fn, _ in fn.next_functions if next_fn is not None), None)
    return names


def lesson(*, console: Console | None = None) -> AutogradResult:
    """Run the lesson, print it to `console` (stdout when None) and return its numbers."""
    console = console or report.make_console()

    # --- 1. The same numbers, with and without a graph -------------------------------------------------
    # The tutorial wrapped the tensor: variable = Variable(tensor, requires_grad=True). Since PyTorch 0.4
    # (2018) a tensor carries requires_grad itself and Variable is gone.
    t = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    v = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)

    t_out = torch.mean(t * t)  # x², averaged: (1 + 4 + 9 + 16) / 4.
    v_out = torch.mean(v * v)  # The same number, but torch also records how it was computed.

    console.print(Text(f"t = {t.tolist()}   (requires_grad={t.requires_grad})"))
    console.print(Text(f"v = {v.tolist()}   (requires_grad={v.requires_grad})"))
    console.print(Text(f"t_out = torch.mean(t * t) = {t_out.item():g}   grad_fn = {t_out.grad_fn}"))
    console.print(
        Text(f"v_out = torch.mean(v * v) = {v_out.item():g}   grad_fn = {type(v_out.grad_fn).__name__}")
    )
    console.print()

    # --- 2. The computational graph --------------------------------------------------------------------
    # Each result that depends on v keeps a grad_fn: the backward step of the operation that made it, linked
    # to the grad_fns of its inputs. Walking those links from v_out reaches v again.
    console.print(
        Text(
            "The computational graph, read from the result back to the input: each node is the backward "
            "step of one operation, and .next_functions links it to the nodes of that operation's inputs."
        )
    )
    tree = Tree(Text(f"v_out  ({v_out.item():g})"))
    _graph_tree(v_out.grad_fn, tree, {id(v): "v"})
    chain = _chain(v_out.grad_fn)
    console.print(tree)
    console.print(
        Text(
            "MulBackward0 points at v's AccumulateGrad twice, once for each factor of v * v; the two "
            "contributions add up, which is where the 2 in d(v²)/dv = 2v comes from."
        )
    )
    console.print(Text(f"chain: {' -> '.join(chain)}"))
    console.print()

    # --- 3. Backpropagation ----------------------------------------------------------------------------
    # v_out = 1/4 · Σ v²  ⇒  d(v_out)/dv = 1/4 · 2v = v / 2.
    v_out.backward()
    grad = v.grad
    console.print(Text("v_out.backward()   # v_out = 1/4 · sum(v²), so d(v_out)/dv = 2v/4 = v/2"))
    console.print(Text(f"v.grad = {grad.tolist()}"))
    console.print(Text(f"v.grad equals v / 2: {torch.equal(grad, v.detach() / 2)}"))
    console.print()

    # --- 4. Getting plain numbers back -----------------------------------------------------------------
    # The tutorial read variable.data.numpy(). Since 0.4 .detach() is the safe spelling: it shares memory
    # with v but is cut from the graph, so autograd notices if the values are changed in place.
    try:
        v.numpy()
        numpy_error = ""
    except RuntimeError as exc:
        numpy_error = str(exc)
    detached = v.detach().numpy()
    console.print(Text(f"v.numpy()          → RuntimeError: {numpy_error}"))
    console.print(Text(f"v.detach().numpy() → {detached.tolist()}  ({type(detached).__name__})"))

    return AutogradResult(
        t_out=t_out.item(),
        v_out=v_out.item(),
        grad=grad.tolist(),
        grad_fn_chain=chain,
        numpy_error=numpy_error,
        detached=detached.tolist(),
    )
