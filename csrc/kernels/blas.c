/* fastgd's BLAS layer (see fastgd_blas.h) over OpenBLAS's CBLAS interface. */
#include <cblas.h>
#include "fastgd_blas.h"
#include "fgd_common.h"
#include "parallel.h"

#define TR(flag) ((flag) ? CblasTrans : CblasNoTrans)

/* The settings shared by every module (see fgd_blas_use_shared); NULL: the defaults. */
static const fgd_blas_shared *shared = NULL;

void fgd_blas_use_shared(const fgd_blas_shared *s)
{
    shared = s;
}

static int product_threads(void)
{
    int n = shared ? shared->num_threads : 0;
    return n > 0 ? n : fgd_default_threads();
}

static int delegated(int m, int n, int k)
{
    return shared && shared->sgemm64 && (double)m * n * k >= FGD_GEMM_SPLIT;
}

/* OpenBLAS runs every call on its calling thread: its count is 1 from load (fastgd._optim
 * sets it) and is put back to 1 if anything changed it (threadpoolctl, say). */
void fgd_blas_keep_serial(void)
{
    if (scipy_openblas_get_num_threads() != 1)
        scipy_openblas_set_num_threads(1);
}

int fgd_gemm_pieces(int m, int n, int k, int *along_n, int *width)
{
    int dim = n >= m ? n : m;
    *along_n = n >= m;
    if ((double)m * n * k < FGD_GEMM_SPLIT || dim < 2 * FGD_GEMM_MIN_PIECE) {
        *width = dim;
        return 1;
    }
    int count = dim / FGD_GEMM_MIN_PIECE;
    if (count > FGD_GEMM_MAX_PIECES)
        count = FGD_GEMM_MAX_PIECES;
    int w = (dim + count - 1) / count;
    w = (w + 15) / 16 * 16;
    *width = w;
    return (dim + w - 1) / w;
}

/* One piece of a product: columns (along_n) or rows [lo, hi) of C. */
#define FGD_GEMM_PIECE(T, SFX, CALL)                                                          \
    static void piece_##SFX(int trans_a, int trans_b, int m, int n, int k, T alpha,            \
                            const T *a, int lda, const T *b, int ldb, T beta, T *c, int ldc,   \
                            int along_n, int lo, int hi)                                       \
    {                                                                                          \
        if (along_n) {                                                                         \
            const T *bp = trans_b ? b + (size_t)lo * ldb : b + lo;                             \
            CALL(CblasRowMajor, TR(trans_a), TR(trans_b), m, hi - lo, k, alpha, a, lda, bp,    \
                 ldb, beta, c + lo, ldc);                                                      \
        } else {                                                                               \
            const T *ap = trans_a ? a + lo : a + (size_t)lo * lda;                             \
            CALL(CblasRowMajor, TR(trans_a), TR(trans_b), hi - lo, n, k, alpha, ap, lda, b,    \
                 ldb, beta, c + (size_t)lo * ldc, ldc);                                        \
        }                                                                                      \
    }

#ifdef _OPENMP
#define FGD_OMP_PIECES                                                                         \
    _Pragma("omp parallel for schedule(dynamic, 1) num_threads(nthreads) if (nthreads > 1)")
#else
#define FGD_OMP_PIECES
#endif

/* A large product goes to the delegate when there is one (numpy's OpenBLAS, its pool, with
 * fastgd's thread count for this call on this thread only). Otherwise the pieces run over
 * fastgd's OpenMP threads, dynamically scheduled (a thread slowed down
 * by another process's busy thread takes fewer of them), each a single-threaded BLAS call:
 * one pool serves the products and the updates, and every thread count computes the same
 * pieces, so the same bits. */
#define FGD_GEMM(T, SFX)                                                                       \
    void fgd_gemm_##SFX(int trans_a, int trans_b, int m, int n, int k, T alpha, const T *a,    \
                        int lda, const T *b, int ldb, T beta, T *c, int ldc)                   \
    {                                                                                          \
        if (m <= 0 || n <= 0)                                                                  \
            return;                                                                            \
        if (delegated(m, n, k)) {                                                              \
            int prev = shared->set_local_threads(product_threads());                           \
            shared->SFX##gemm64(CblasRowMajor, TR(trans_a), TR(trans_b), m, n, k, alpha, a,    \
                                lda, b, ldb, beta, c, ldc);                                    \
            shared->set_local_threads(prev);                                                   \
            return;                                                                            \
        }                                                                                      \
        fgd_blas_keep_serial();                                                                \
        int along_n, width;                                                                    \
        int count = fgd_gemm_pieces(m, n, k, &along_n, &width);                                \
        if (count == 1) {                                                                      \
            piece_##SFX(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, 1, 0,  \
                        n);                                                                    \
            return;                                                                            \
        }                                                                                      \
        int dim = along_n ? n : m;                                                             \
        int nthreads = product_threads() < count ? product_threads() : count;                  \
        (void)nthreads;                                                                        \
        FGD_OMP_PIECES                                                                         \
        for (int p = 0; p < count; p++) {                                                      \
            fgd_pin_worker();                                                                  \
            int lo = p * width, hi = lo + width < dim ? lo + width : dim;                      \
            piece_##SFX(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,        \
                        along_n, lo, hi);                                                      \
        }                                                                                      \
    }

FGD_GEMM_PIECE(float, f32, scipy_cblas_sgemm)
FGD_GEMM_PIECE(double, f64, scipy_cblas_dgemm)
#define f32gemm64 sgemm64
#define f64gemm64 dgemm64
FGD_GEMM(float, f32)
FGD_GEMM(double, f64)

int fgd_blas_get_num_threads(void)
{
    return scipy_openblas_get_num_threads();
}

const char *fgd_blas_config(void)
{
    return scipy_openblas_get_config();
}

const char *fgd_blas_corename(void)
{
    return scipy_openblas_get_corename();
}

const char *fgd_cpu_variant(void)
{
#if defined(FGD_HAVE_CLONES)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return "avx512f";
    if (__builtin_cpu_supports("avx2"))
        return "avx2";
    return "default";
#else
    return "none";
#endif
}
