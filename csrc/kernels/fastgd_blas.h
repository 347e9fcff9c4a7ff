/* fastgd's BLAS layer: row-major matrix products, cut into pieces over fastgd's threads.
 *
 * Products go to OpenBLAS from the `scipy-openblas32` wheel (32-bit integers, every symbol
 * prefixed `scipy_`), linked at build time: fastgd's own copy, with the fast small-matrix
 * kernels of OpenBLAS >= 0.3.34, always single-threaded. A large product (m n k >=
 * FGD_GEMM_SPLIT) runs in one of two thread pools:
 *
 * - "numpy" (a delegate is set): on the OpenBLAS numpy already loaded into the process
 *   (64-bit integers), in numpy's own pool, found and checked by fastgd/_blas.py. One pool
 *   then serves numpy and fastgd, and a pool numpy has just used (whose workers spin for
 *   ~0.1 s after each call) runs fastgd's products at once instead of competing with
 *   fastgd's threads for the cores. OpenBLAS's threading gives different last bits for
 *   different thread counts (the same bits for the same count).
 * - "fastgd" (no delegate): cut into pieces (whole columns or rows of C) that fastgd's
 *   OpenMP threads share, each a single-threaded call to fastgd's copy. The pieces depend
 *   on the shape only: the same bits for any thread count.
 *
 * Matrices are row-major: a (rows x cols) matrix at p with leading dimension ld has element
 * (i, j) at p[i * ld + j]. Nothing here knows about Python.
 */
#ifndef FASTGD_BLAS_H
#define FASTGD_BLAS_H
#include <stdint.h>

/* In the "fastgd" pool, products of at least FGD_GEMM_SPLIT multiply-adds (m n k) are cut along the larger of m
 * and n into pieces at least FGD_GEMM_MIN_PIECE wide (a multiple of 16), at most
 * FGD_GEMM_MAX_PIECES of them: each piece packs the whole other operand again, which costs
 * about 1/width of its multiply-adds. */
#define FGD_GEMM_SPLIT 4194304.0
#define FGD_GEMM_MIN_PIECE 128
#define FGD_GEMM_MAX_PIECES 16

/* The number of pieces of an (m x k)(k x n) product, whether they are columns (*along_n)
 * or rows, and their width (the last may be narrower). */
int fgd_gemm_pieces(int m, int n, int k, int *along_n, int *width);

/* CBLAS with 64-bit integers (order, trans_a, trans_b as CBLAS's enum values). */
typedef void (*fgd_sgemm64_fn)(int, int, int, int64_t, int64_t, int64_t, float, const float *,
                               int64_t, const float *, int64_t, float, float *, int64_t);
typedef void (*fgd_dgemm64_fn)(int, int, int, int64_t, int64_t, int64_t, double,
                               const double *, int64_t, const double *, int64_t, double,
                               double *, int64_t);
typedef int (*fgd_local_threads_fn)(int);

/* What every module's products share: fastgd.set_num_threads's count and the delegate. */
typedef struct fgd_blas_shared {
    int num_threads;                        /* <= 0: OpenMP's default (OMP_NUM_THREADS) */
    fgd_sgemm64_fn sgemm64;                 /* NULL: the "fastgd" pool (pieces) */
    fgd_dgemm64_fn dgemm64;
    fgd_local_threads_fn set_local_threads; /* the delegate's thread count for the calling
                                               thread only; returns the previous one, which
                                               is put back after the call */
} fgd_blas_shared;

/* Each module that links these kernels points them at the one fgd_blas_shared of
 * fastgd._optim (NULL: defaults, no delegate). */
void fgd_blas_use_shared(const fgd_blas_shared *s);

/* Put OpenBLAS's own thread count back to 1 if something changed it (done before every
 * product too). */
void fgd_blas_keep_serial(void);

/* C (m x n) = alpha op(A) op(B) + beta C, op(X) = X^T when trans_X is non-zero; op(A) is
 * (m x k), op(B) is (k x n). m == 0 or n == 0 returns at once; k == 0 scales C by beta. */
void fgd_gemm_f32(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                  int lda, const float *b, int ldb, float beta, float *c, int ldc);
void fgd_gemm_f64(int trans_a, int trans_b, int m, int n, int k, double alpha, const double *a,
                  int lda, const double *b, int ldb, double beta, double *c, int ldc);

/* OpenBLAS's current thread count (1 unless changed from outside), its build description
 * ("OpenBLAS 0.3.34 DYNAMIC_ARCH ... MAX_THREADS=64") and the kernel family it chose for
 * this CPU at load time ("SkylakeX", "Haswell", "Zen"). */
int fgd_blas_get_num_threads(void);
const char *fgd_blas_config(void);
const char *fgd_blas_corename(void);

/* The clone of fastgd's own hot loops the loader picked on this CPU: "avx512f", "avx2" or
 * "default" (the same test GCC's target_clones resolver applies), or "none" when the build
 * has no clones (FASTGD_MULTIVERSION off, or not x86-64 Linux). */
const char *fgd_cpu_variant(void);

#endif
