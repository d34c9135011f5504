# The per-step product against W_hh packed once per call: the kernels pack at the start
# of a time loop (pack_step_weights), pass the packed form to recurrent_product and
# recurrent_product_grad (recurrent_gemm.pxd), and free it at the end. Which packer runs
# is one choice per process (step_packing.pyx): MKL's packed GEMM when the `mkl` package's
# library was found and loaded, else fastbptt's own micro-kernel (packed_gemm.h); beside
# MKL the own kernel still packs the shapes where it was measured faster (few rows, or
# few rows against weights that stream from L3: step_packer). The policy of which shapes
# pack is fastbptt.cells.spec.step_form.

from cython cimport floating


cdef floating *pack_step_weights(const floating *W_hh, int GH, int H, int B,
                                 bint backward) noexcept nogil
cdef floating *pack_step_weights_by(bint mkl, const floating *W_hh, int GH, int H, int B,
                                    bint backward) noexcept nogil
cdef void packed_step(const floating *A, Py_ssize_t lda, const floating *W_packed,
                      floating beta, floating *C, Py_ssize_t ldc, int M, int N,
                      int K) noexcept nogil
cdef void free_step_weights(floating *W_packed) noexcept nogil
