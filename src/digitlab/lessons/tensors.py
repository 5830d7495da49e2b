"""Lesson 1 — tensors: torch speaks NumPy (after Morvan's 201_torch_numpy.py).

What it shows:

* NumPy ↔ torch round trip: `torch.from_numpy` and `.numpy()` share one block of memory, so a change on one
  side is seen on the other (while `torch.tensor(array)` copies).
* abs, sin, mean and matrix multiplication computed side by side in NumPy and torch.
* The tutorial's trap: `torch.dot` on a 2-D tensor. In 2017 the tutorial printed `30.0` for it, because
  the torch of the day quietly flattened both matrices to [1, 2, 3, 4]. Today `torch.dot` refuses anything
  but 1-D tensors; the lesson catches that RuntimeError and shows the right calls instead.

Run it with::

    digitlab lesson tensors
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from rich.text import Text

from digitlab.lessons import report

TITLE = "Lesson 1 · tensors — torch speaks NumPy"


@dataclass
class TensorsResult:
    """What the lesson computed, so tests and other code can check the tutorial's numbers."""

    round_trip: list[list[int]]  # np.arange(6).reshape(2, 3) → torch → NumPy again.
    shares_memory: bool  # Did a write through the NumPy array show up in the tensor?
    numpy_vs_torch: dict[str, tuple[object, object]]  # Operation → (NumPy result, torch result) as lists.
    matmul: list[list[float]]  # [[1, 2], [3, 4]] @ itself: [[7, 10], [15, 22]].
    dot_2d_error: str  # What today's torch.dot says when handed 2-D tensors.
    dot_flat: float  # torch.dot of the flattened matrices: 1 + 4 + 9 + 16 = 30, the tutorial's old answer.
    figures: list[Path] = field(default_factory=list)  # This lesson draws no figures.


def _row(table: Table, label: str, numpy_value: object, torch_value: object) -> None:
    # Text() keeps rich from reading the brackets of an array as markup.
    table.add_row(Text(label), Text(str(numpy_value)), Text(str(torch_value)))


def lesson(*, console: Console | None = None) -> TensorsResult:
    """Run the lesson, print it to `console` (stdout when None) and return its numbers."""
    console = console or report.make_console()

    # --- 1. From NumPy to torch and back -----------------------------------------------------------------
    np_data = np.arange(6).reshape((2, 3))
    torch_data = torch.from_numpy(np_data)  # No copy: the tensor is a view of the array's memory.
    tensor2array = torch_data.numpy()  # No copy either: the array is a view of the tensor's memory.

    table = Table(title=Text("NumPy ↔ torch round trip"), title_justify="left")
    table.add_column("step")
    table.add_column("value")
    table.add_row(Text("np.arange(6).reshape((2, 3))"), Text(str(np_data)))
    table.add_row(Text("torch.from_numpy(np_data)"), Text(str(torch_data)))
    table.add_row(Text("torch_data.numpy()"), Text(str(tensor2array)))
    console.print(table)

    # Because the three names share one buffer, writing through the array changes the tensor too.
    # torch.tensor(np_data) would have copied, which is what you want when the array may change later.
    copied = torch.tensor(np_data)
    np_data[0, 0] = 100
    shares_memory = bool(torch_data[0, 0].item() == 100 and tensor2array[0, 0] == 100)
    console.print(
        f"After np_data[0, 0] = 100: torch_data[0, 0] = {torch_data[0, 0].item()} and "
        f"tensor2array[0, 0] = {tensor2array[0, 0]} (shared memory), "
        f"but torch.tensor(np_data)[0, 0] = {copied[0, 0].item()} (a copy).",
        markup=False,
    )
    np_data[0, 0] = 0  # Put the value back so the round trip below reads as in the tutorial.
    round_trip = tensor2array.tolist()
    console.print()

    # --- 2. The same maths on both sides -----------------------------------------------------------------
    data = [-1, -2, 1, 2]
    matrix = [[1, 2], [3, 4]]
    # The tutorial wrote torch.FloatTensor(data); since PyTorch 0.4 (2018) torch.tensor(data, dtype=...)
    # is the way to build a tensor from Python numbers.
    tensor = torch.tensor(data, dtype=torch.float32)

    results: dict[str, tuple[object, object]] = {}
    table = Table(title=Text(f"data = {data},  matrix a = {matrix}"), title_justify="left")
    table.add_column("operation")
    table.add_column("NumPy  (np.abs(data) ...)", no_wrap=True)
    table.add_column("torch  (torch.abs(tensor) ...)", no_wrap=True)
    for label, numpy_value, torch_value in [
        ("abs", np.abs(data), torch.abs(tensor)),
        ("sin", np.sin(data), torch.sin(tensor)),
        ("mean", np.mean(data), torch.mean(tensor)),
    ]:
        # torch prints 4 decimals; asking NumPy for the same keeps the two columns comparable.
        with np.printoptions(precision=4):
            _row(table, label, numpy_value, torch_value)
        results[label] = (np.asarray(numpy_value).tolist(), torch_value.tolist())

    # Matrix multiplication: np.matmul and torch.mm (or the @ operator on either side) agree.
    m_tensor = torch.tensor(matrix, dtype=torch.float32)
    np_matmul = np.matmul(matrix, matrix)
    torch_mm = torch.mm(m_tensor, m_tensor)
    _row(table, "matmul / mm", np_matmul, torch_mm)
    _row(table, "a @ a", np.array(matrix) @ np.array(matrix), m_tensor @ m_tensor)
    results["matmul"] = (np_matmul.tolist(), torch_mm.tolist())
    console.print(table)
    console.print()

    # --- 3. The trap: "dot" means different things ------------------------------------------------------
    # For 2-D arrays NumPy's dot *is* matrix multiplication. The tutorial's torch (0.1) flattened both
    # matrices instead and printed 30.0 = 1·1 + 2·2 + 3·3 + 4·4. Since PyTorch 0.2 (2017) torch.dot
    # accepts only 1-D tensors, so the silent surprise became a loud error.
    np_dot = np.array(matrix).dot(np.array(matrix))
    try:
        torch_dot = m_tensor.dot(m_tensor)
        dot_2d_error = ""
        torch_dot_text = str(torch_dot)
    except RuntimeError as exc:
        dot_2d_error = str(exc)
        torch_dot_text = f"RuntimeError: {dot_2d_error}"
    dot_flat = torch.dot(m_tensor.flatten(), m_tensor.flatten()).item()

    table = Table(title=Text(f"the trap: dot on the 2-D matrix {matrix}"), title_justify="left")
    table.add_column("call")
    table.add_column("result")
    table.add_row(Text("NumPy  data.dot(data)"), Text(str(np_dot)))
    table.add_row(
        Text("tutorial (torch 0.1)  tensor.dot(tensor)"), Text("30.0  (flattened, not a matrix product)")
    )
    table.add_row(Text(f"torch {torch.__version__}  tensor.dot(tensor)"), Text(torch_dot_text))
    table.add_row(Text("right: torch.mm(t, t)  or  t @ t"), Text(str(m_tensor @ m_tensor)))
    table.add_row(Text("right: torch.dot(t.flatten(), t.flatten())"), Text(f"{dot_flat:g}"))
    console.print(table)
    console.print(
        "Use torch.mm / @ for the matrix product NumPy's dot gives, and torch.dot only on 1-D tensors "
        "(flatten first if the old 30 is what you meant).",
        markup=False,
    )

    return TensorsResult(
        round_trip=round_trip,
        shares_memory=shares_memory,
        numpy_vs_torch=results,
        matmul=torch_mm.tolist(),
        dot_2d_error=dot_2d_error,
        dot_flat=dot_flat,
    )
