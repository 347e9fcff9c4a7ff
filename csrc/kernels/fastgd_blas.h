/* fastgd's BLAS layer: row-major matrix products and the BLAS's threads.
 *
 * The products go to OpenBLAS from the `scipy-openblas32` wheel (32-bit integers, every
 * symbol prefixed `scipy_`), linked at build time; the library is fastgd's own copy, so its
 * thread count is fastgd's to set and no other package's setting reaches it.
 *
 * Matrices are row-major: a (rows x cols) matrix at p with leading dimension ld has element
 * (i, j) at p[i * ld + j]. Nothing here knows about Python.
 */
#ifndef FASTGD_BLAS_H
#define FASTGD_BLAS_H

/* C (m x n) = alpha op(A) op(B) + beta C, op(X) = X^T when trans_X is non-zero; op(A) is
 * (m x k), op(B) is (k x n). m == 0 or n == 0 returns at once; k == 0 scales C by beta. */
void fgd_gemm_f32(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                  int lda, const float *b, int ldb, float beta, float *c, int ldc);
void fgd_gemm_f64(int trans_a, int trans_b, int m, int n, int k, double alpha, const double *a,
                  int lda, const double *b, int ldb, double beta, double *c, int ldc);

/* The BLAS's worker threads (1: products run on the calling thread only). */
void fgd_blas_set_num_threads(int n);
int fgd_blas_get_num_threads(void);
/* OpenBLAS's build description ("OpenBLAS 0.3.34 DYNAMIC_ARCH ... Haswell MAX_THREADS=64")
 * and the kernel family it chose for this CPU at load time ("SkylakeX", "Haswell", "Zen"). */
const char *fgd_blas_config(void);
const char *fgd_blas_corename(void);

/* The clone of fastgd's own hot loops the loader picked on this CPU: "avx512f", "avx2" or
 * "default" (the same test GCC's target_clones resolver applies), or "none" when the build
 * has no clones (FASTGD_MULTIVERSION off, or not x86-64 Linux). */
const char *fgd_cpu_variant(void);

#endif
