"""Whether the numba-compiled recurrences run, and how they are called.

The element-wise parts of some recurrences (the whole recurrence of the diagonal cells) run as
loops over time compiled by numba, on numpy views of CPU tensors (no copies). Every such path
has an exact pure-torch fallback, taken when:

- ``TUNEFORGE_NO_NUMBA`` is set to anything but ``""`` or ``"0"`` (read at every call, so tests
  and users can switch at run time);
- numba cannot be imported;
- the tensors are not float32 or float64 on the CPU.

numba compiles each kernel on its first call for a dtype (a cell's forward and backward take one
to three seconds) and caches the machine code on disk (``cache=True``: next to the source, or in
the user's cache directory when that is read-only; ``NUMBA_CACHE_DIR`` overrides), so later
processes load it in milliseconds. numba is imported only when a kernel is first needed, so
importing tuneforge stays cheap.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any

import torch
from torch import Tensor

DISABLE_ENV = "TUNEFORGE_NO_NUMBA"
_FAST_DTYPES = (torch.float32, torch.float64)
_modules: dict[str, ModuleType | None] = {}
_POOL_LOCK = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def disabled_by_env() -> bool:
    """True when ``TUNEFORGE_NO_NUMBA`` asks for the pure-torch fallbacks."""
    return os.environ.get(DISABLE_ENV, "") not in ("", "0")


def kernels(name: str) -> ModuleType | None:
    """The kernel module ``tuneforge.cells.<name>`` (it imports numba), or None to fall back."""
    if disabled_by_env():
        return None
    if name not in _modules:
        try:
            _modules[name] = importlib.import_module(f"tuneforge.cells.{name}")
        except ImportError:
            _modules[name] = None
        else:
            single_threaded_blas()
    return _modules[name]


# What scipy's bundled OpenBLAS calls its thread-count setter, newest builds first.
_BLAS_THREAD_SETTERS = (
    "scipy_openblas_set_num_threads",
    "scipy_openblas_set_num_threads64_",
    "openblas_set_num_threads64_",
    "openblas_set_num_threads",
)


def single_threaded_blas() -> str | None:
    """Run the BLAS behind numba's ``np.dot`` (scipy's bundled OpenBLAS) on one thread; return
    the library's path, or None where there is none to set (another BLAS, or no scipy wheel).

    The kernels' products are small, one step of one layer each: OpenBLAS's own threads only
    wait on each other and on torch's (measured: a Mogrifier at hidden 1024 trained 2.6 times
    slower with them on a busy 2-core machine). This sets that library's thread count for the
    process; tuneforge makes no other use of it.
    """
    import ctypes
    import glob

    try:
        import scipy
    except ImportError:
        return None
    folder = os.path.dirname(os.path.dirname(scipy.__file__))
    for path in sorted(glob.glob(os.path.join(folder, "scipy.libs", "*openblas*"))):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _BLAS_THREAD_SETTERS:
            setter = getattr(library, name, None)
            if setter is not None:
                setter(1)
                return path
    return None


def usable(*tensors: Tensor) -> bool:
    """True when every tensor is a CPU float32 or float64 tensor of one dtype."""
    first = tensors[0]
    return first.dtype in _FAST_DTYPES and all(
        t.device.type == "cpu" and t.dtype == first.dtype for t in tensors
    )


def view(tensor: Tensor) -> Any:
    """A numpy view of a contiguous CPU tensor (the tensor itself must stay alive)."""
    return tensor.detach().numpy()


def one(like: Tensor) -> Any:
    """1 as a numpy scalar of ``like``'s dtype: kernels compute in that dtype, not float64."""
    return torch.ones(1, dtype=like.dtype).numpy()[0]


def launch(kernel: Any, rows: Sequence[Any], shared: Sequence[Any] = ()) -> None:
    """``kernel(*rows, *shared)`` on slices of the batch, in parallel threads.

    ``rows`` are arrays whose first dimension is the batch, ``shared`` the other arguments. The
    kernels release the GIL and treat every row on its own, so the batch is cut into one slice
    per torch thread (``torch.get_num_threads()``), each run through its whole time loop.
    """
    batch = rows[0].shape[0]
    parts = max(1, min(torch.get_num_threads(), batch))
    if parts == 1:
        kernel(*rows, *shared)
        return
    bounds = [batch * k // parts for k in range(parts + 1)]
    slices = [
        [array[lo:hi] for array in rows] for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    futures = [_pool().submit(kernel, *part, *shared) for part in slices[1:]]
    kernel(*slices[0], *shared)  # this thread takes the first slice
    for future in futures:
        future.result()


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _POOL_LOCK:
        if _executor is None:
            # Threads start only as slices need them, so sizing for every core costs nothing.
            _executor = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="tuneforge-jit")
        return _executor
