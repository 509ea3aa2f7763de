"""The CPU's population count for the index's compiled kernels (numba).

``popcount64(x)`` is LLVM's ``ctpop`` on a uint64: one ``popcnt`` instruction on x86-64. A bit-twiddling
popcount took 2x as long in a synthetic code-scan loop (``bench/catalog/image/REPORT.md``). Used by the
hash stage's hit check (``image_hashes.py``) and the word stage's posting scan (``image_words.py``).
"""

from __future__ import annotations

from typing import Any

import numba
import numba.extending


@numba.extending.intrinsic
def _ctpop64(typingctx: object, x: object) -> tuple[object, object]:
    def codegen(context: object, builder: object, signature: object, args: list) -> object:
        return builder.ctpop(args[0])  # type: ignore[attr-defined]

    return numba.types.uint64(numba.types.uint64), codegen


#: ``_ctpop64`` as kernels call it (with the value only; numba supplies the typing context).
popcount64: Any = _ctpop64
