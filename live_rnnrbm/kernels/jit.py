"""The Numba compile options every kernel of the package uses: one definition, so that the kernels
compile alike wherever they live (``kernels``, ``eval``'s, the live engine's note shaping).

* ``cache=True``: a warm start loads machine code from ``__pycache__``.
* ``nogil=True``: the live instrument computes frames on a worker thread while rtmidi's callback
  thread needs the GIL.
* ``error_model="numpy"``: a division by zero gives inf or NaN, as in NumPy, instead of the
  Python exception, whose check in every division keeps LLVM from vectorising the loop.

``SIMD`` is the ``fastmath`` set of the vectorised loops: reassociation lets LLVM vectorise
reductions and fuse multiply-adds; unlike ``fastmath=True`` it keeps infinities meaningful
(sigmoid relies on 1/(1+inf) = 0 for very negative inputs).

    @njit(**JIT)
    @njit(fastmath=SIMD, **JIT)
    @njit(parallel=True, **JIT)
"""
JIT = dict(cache=True, nogil=True, error_model="numpy")
SIMD = {"reassoc", "contract", "nsz"}
