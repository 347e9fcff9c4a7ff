/* fastgd's BLAS layer (see fastgd_blas.h) over OpenBLAS's CBLAS interface. */
#include <cblas.h>
#include "fastgd_blas.h"
#include "fgd_common.h"

#define TR(flag) ((flag) ? CblasTrans : CblasNoTrans)

void fgd_gemm_f32(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                  int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    if (m <= 0 || n <= 0)
        return;
    scipy_cblas_sgemm(CblasRowMajor, TR(trans_a), TR(trans_b), m, n, k, alpha, a, lda, b, ldb,
                      beta, c, ldc);
}

void fgd_gemm_f64(int trans_a, int trans_b, int m, int n, int k, double alpha, const double *a,
                  int lda, const double *b, int ldb, double beta, double *c, int ldc)
{
    if (m <= 0 || n <= 0)
        return;
    scipy_cblas_dgemm(CblasRowMajor, TR(trans_a), TR(trans_b), m, n, k, alpha, a, lda, b, ldb,
                      beta, c, ldc);
}

void fgd_blas_set_num_threads(int n)
{
    scipy_openblas_set_num_threads(n < 1 ? 1 : n);
}

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
