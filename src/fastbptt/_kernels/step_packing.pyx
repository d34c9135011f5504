# The packers of the per-step product (see step_packing.pxd for how the kernels use
# them): MKL's cblas_?gemm_pack / ?gemm_compute, reached through dlopen of the `mkl`
# wheel's libmkl_rt (no build-time dependency: without it, or with FASTBPTT_MKL=0, the
# own packer runs), or fastbptt's register-blocked micro-kernel over its own panels
# (packed_gemm.h). bench/RESULTS.md, "The per-step product at B 5-64", says what each
# bought against OpenBLAS's per-step GEMM.
#
# The products, row-major, with GH = G*H:
#   forward   C (B x GH) = beta C + h (B x H) W_hh^T    packed operand op(B) = W_hh^T
#   backward  C (B x H)  = beta C + dA (B x GH) W_hh    packed operand op(B) = W_hh

from cython cimport floating

from fastbptt._kernels.blas cimport log_packed, use_mkl_gemm
from fastbptt._kernels.packed_gemm cimport pack, packed_gemm, packed_size

cdef extern from "step_alloc.h" nogil:
    void *fb_dlopen(const char *path)
    void *fb_dlsym(void *lib, const char *name)
    void *fb_pack_alloc(size_t nbytes, int kind)
    int fb_pack_kind(const void *p)
    void fb_pack_free(void *p)
    void fb_pack_release_kept()
    size_t fb_pack_kept_bytes()

cdef enum:
    OWN = 1
    MKL = 2
    # Up to this many rows the own kernel packs whatever the process's packer: only it was
    # measured there (bench/RESULTS.md, "The packed product at B = 1-4"). It is
    # fastbptt.cells.spec.GEMV_ROWS (tests/test_packed_step.py holds the two together).
    OWN_ONLY_ROWS = 4
    # Beside MKL, the own kernel also packs at B <= OWN_ROWS_BESIDE_MKL rows when the
    # weights, G*H x H elements, take more than OWN_MIN_BYTES and at most OWN_MAX_BYTES:
    # too large for L2, so each step streams them from L3, and there the own kernel (its
    # panel prefetch) ran the product and whole calls faster than MKL's packed GEMM, in
    # float32 and float64 and for every cell. In L2, from 32 rows on, and past
    # OWN_MAX_BYTES (the float64 LSTM and GRU at H = 1024) MKL was level or faster, so it
    # keeps those (bench/RESULTS.md, "The sixth session").
    OWN_ROWS_BESIDE_MKL = 24
    CblasRowMajor = 101
    CblasNoTrans = 111
    CblasTrans = 112
    CblasPacked = 151
    CblasBMatrix = 162
    MKL_THREADING_SEQUENTIAL = 1
    MKL_INTERFACE_LP64 = 0

# MKL's CBLAS in its LP64 interface (MKL_INT = int)
ctypedef size_t (*get_size_t)(int, int, int, int) noexcept nogil
ctypedef void (*spack_t)(int, int, int, int, int, int, float, const float *, int,
                         float *) noexcept nogil
ctypedef void (*dpack_t)(int, int, int, int, int, int, double, const double *, int,
                         double *) noexcept nogil
ctypedef void (*scompute_t)(int, int, int, int, int, int, const float *, int, const float *,
                            int, float, float *, int) noexcept nogil
ctypedef void (*dcompute_t)(int, int, int, int, int, int, const double *, int,
                            const double *, int, double, double *, int) noexcept nogil
ctypedef int (*set_int_t)(int) noexcept nogil

cdef size_t OWN_MIN_BYTES = 2 << 20
cdef size_t OWN_MAX_BYTES = 16 << 20

cdef int _packer = OWN
cdef get_size_t _s_size = NULL
cdef get_size_t _d_size = NULL
cdef spack_t _s_pack = NULL
cdef dpack_t _d_pack = NULL
cdef scompute_t _s_compute = NULL
cdef dcompute_t _d_compute = NULL
cdef void *_s_gemm = NULL   # cblas_sgemm, cblas_dgemm: blas.gemm's while MKL is the packer
cdef void *_d_gemm = NULL


def release_kept_weights():
    """Free the packed-weight buffers kept between calls (step_alloc.h keeps a few, so
    that a call does not fault in fresh pages for them); fastbptt.release_workspace calls
    it."""
    with nogil:
        fb_pack_release_kept()


def kept_weight_bytes():
    """The bytes of packed-weight buffers kept between calls now."""
    return fb_pack_kept_bytes()


def load_mkl(str path):
    """Load MKL's packed GEMM and its cblas_?gemm from its single dynamic library at
    path, sequential (no OpenMP runtime loaded, no threads: the kernels' products never
    run threaded), and make it the packer: the per-step products run on MKL's packed
    GEMM, the kernels' other products on its GEMM (blas.use_mkl_gemm). Returns whether
    it loaded."""
    global _packer, _s_size, _d_size, _s_pack, _d_pack, _s_compute, _d_compute
    global _s_gemm, _d_gemm
    cdef void *h = fb_dlopen(path.encode())
    if h == NULL:
        return False
    cdef set_int_t set_layer = <set_int_t> fb_dlsym(h, b"MKL_Set_Threading_Layer")
    cdef set_int_t set_interface = <set_int_t> fb_dlsym(h, b"MKL_Set_Interface_Layer")
    names = (b"cblas_sgemm_pack_get_size", b"cblas_dgemm_pack_get_size",
             b"cblas_sgemm_pack", b"cblas_dgemm_pack", b"cblas_sgemm_compute",
             b"cblas_dgemm_compute", b"cblas_sgemm", b"cblas_dgemm")
    cdef void *syms[8]
    for i, name in enumerate(names):
        syms[i] = fb_dlsym(h, name)
        if syms[i] == NULL:
            return False
    if set_layer == NULL or set_interface == NULL:
        return False
    # both must precede every other MKL call, or they are ignored
    set_interface(MKL_INTERFACE_LP64)
    set_layer(MKL_THREADING_SEQUENTIAL)
    _s_size = <get_size_t> syms[0]
    _d_size = <get_size_t> syms[1]
    _s_pack = <spack_t> syms[2]
    _d_pack = <dpack_t> syms[3]
    _s_compute = <scompute_t> syms[4]
    _d_compute = <dcompute_t> syms[5]
    _s_gemm, _d_gemm = syms[6], syms[7]
    _packer = MKL
    use_mkl_gemm(_s_gemm, _d_gemm)
    return True


OWN_ONLY_ROWS_PY = OWN_ONLY_ROWS   # for the tests
# (rows, exclusive lower and inclusive upper bytes) of the own kernel's share beside MKL
OWN_BESIDE_MKL = (OWN_ROWS_BESIDE_MKL, OWN_MIN_BYTES, OWN_MAX_BYTES)


cdef inline int step_packer(int B, size_t weight_bytes) noexcept nogil:
    """OWN or MKL: the packer of a per-step product of B rows against weights of
    weight_bytes (G*H x H elements), by the process's packer and the bounds above."""
    if _packer != MKL or B <= OWN_ONLY_ROWS:
        return OWN
    if B <= OWN_ROWS_BESIDE_MKL and OWN_MIN_BYTES < weight_bytes <= OWN_MAX_BYTES:
        return OWN
    return MKL


def packer_for(int B, int GH, int H, int itemsize):
    """"mkl" or "own": which packer packs the per-step product of B rows against a
    GH x H W_hh of itemsize-byte elements (4: float32, 8: float64) in this process, as
    the kernels choose it (step_packer)."""
    if B < 1 or GH < 1 or H < 1 or itemsize not in (4, 8):
        raise ValueError(f"B, GH, H must be >= 1 and itemsize 4 or 8, got {B}, {GH}, {H}, "
                         f"{itemsize}")
    return "mkl" if step_packer(B, <size_t> GH * H * itemsize) == MKL else "own"


def packer():
    """"mkl" or "own": which packer the kernels' packed per-step products run."""
    return "mkl" if _packer == MKL else "own"


def set_packer(str name):
    """Make "own" or "mkl" (if loaded) the packer; for the tests and the benchmark.
    Returns the packer now in use."""
    global _packer
    if name == "mkl" and _s_compute == NULL:
        raise ValueError("MKL's packed GEMM is not loaded")
    if name not in ("mkl", "own"):
        raise ValueError(f"packer must be 'mkl' or 'own', got {name!r}")
    _packer = MKL if name == "mkl" else OWN
    # the other products follow: MKL's GEMM with its packed one, scipy's BLAS with the own
    if _packer == MKL:
        use_mkl_gemm(_s_gemm, _d_gemm)
    else:
        use_mkl_gemm(NULL, NULL)
    return packer()


cdef floating *pack_step_weights(const floating *W_hh, int GH, int H, int B,
                                 bint backward) noexcept nogil:
    """The packed op(B) of the forward (W_hh^T, K = H, N = GH) or the backward (W_hh,
    K = GH, N = H) product, by the packer step_packer picks for the shape, or NULL when
    it cannot be allocated (the caller then runs the unpacked form)."""
    return pack_step_weights_by(step_packer(B, <size_t> GH * H * sizeof(floating)) == MKL,
                                W_hh, GH, H, B, backward)


cdef floating *pack_step_weights_by(bint mkl, const floating *W_hh, int GH, int H, int B,
                                    bint backward) noexcept nogil:
    """pack_step_weights by the packer named, whatever step_packer would pick: MKL's
    (when loaded; else the own) or the own. For the kernels' choice and for the probes
    that time each packer at one shape (bench/_step_options.pyx)."""
    cdef int K = GH if backward else H
    cdef int N = H if backward else GH
    cdef size_t nbytes
    cdef floating *dst
    if mkl and _s_compute != NULL:
        if floating is float:
            nbytes = _s_size(CblasBMatrix, B, N, K)
        else:
            nbytes = _d_size(CblasBMatrix, B, N, K)
        dst = <floating *> fb_pack_alloc(nbytes, MKL)
        if dst == NULL:
            return NULL
        # W_hh (GH x H) row-major is op(B) itself (backward) or its transpose (forward)
        if floating is float:
            _s_pack(CblasRowMajor, CblasBMatrix, CblasNoTrans if backward else CblasTrans,
                    B, N, K, 1, W_hh, H, dst)
        else:
            _d_pack(CblasRowMajor, CblasBMatrix, CblasNoTrans if backward else CblasTrans,
                    B, N, K, 1, W_hh, H, dst)
        return dst
    dst = <floating *> fb_pack_alloc(packed_size(<floating *> W_hh, K, N) * sizeof(floating),
                                     OWN)
    if dst != NULL:
        # element (k, n) of op(B): W_hh[n, k] (forward) or W_hh[k, n] (backward)
        if backward:
            pack(W_hh, K, N, H, 1, dst)
        else:
            pack(W_hh, K, N, 1, H, dst)
    return dst


cdef void packed_step(const floating *A, Py_ssize_t lda, const floating *W_packed,
                      floating beta, floating *C, Py_ssize_t ldc, int M, int N,
                      int K) noexcept nogil:
    """C (M x N) = beta C + A (M x K) op(B), op(B) packed by pack_step_weights; beta 0
    or 1."""
    cdef bint mkl = fb_pack_kind(W_packed) == MKL
    log_packed(mkl, M, N, K, beta, <int> lda, <int> ldc)
    if mkl:
        if floating is float:
            _s_compute(CblasRowMajor, CblasNoTrans, CblasPacked, M, N, K, A, <int> lda,
                       W_packed, N, beta, C, <int> ldc)
        else:
            _d_compute(CblasRowMajor, CblasNoTrans, CblasPacked, M, N, K, A, <int> lda,
                       W_packed, N, beta, C, <int> ldc)
    else:
        packed_gemm(M, N, K, A, lda, W_packed, beta != 0, C, ldc)


cdef void free_step_weights(floating *W_packed) noexcept nogil:
    fb_pack_free(W_packed)
