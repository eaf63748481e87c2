"""The RNN-RBM's numerical kernels, compiled with Numba (with the options of ``jit``).

Kernels take their output and work arrays from the caller, so the ones on the live path never
allocate. They are generic in the float type: float32 for speed, float64 for the tests against
finite differences and enumeration.

Names follow the paper's tutorial: v (visible frame), h (hidden), u (RNN state), W, bv, bh, Wuh,
Wuv, Wvu, Wuu, bu, and bv_t / bh_t the biases of the RBM at time t given u_{t-1}.

Two facts about the data make the Gibbs chain cheap: a frame has few notes on, so ``v·W`` is the
sum of a few rows of W; and ``h·Wᵀ`` is the sum of the rows of ``WT`` (W transposed, contiguous)
for the hidden units that are on. Temperature scales every energy by ``beta = 1/T``.

The modules, by job:

* ``jit``: the compile options every kernel uses.
* ``rng``: the seedable random streams the kernels draw from.
* ``simd``: small vector and row primitives, and the vectorised tanh, σ and softplus.
* ``forward``: the RNN step over a frame or a sequence, each frame's RBM biases, its hidden input
  and free energy.
* ``packed``: the packed parameter array of the live tick, and the scratch space of a Gibbs chain.
* ``gibbs``: block Gibbs sampling: one chain, a frame from silence, the consensus of several
  chains, a whole generated sequence, many frames in parallel.
* ``chains``: training's negative phase under teacher forcing: every frame's chain in lockstep,
  each step by matrix products or by the flipped rows, whichever is cheaper.
* ``bptt``: the training gradients: CD-k over a subsequence with backpropagation through time.
"""
