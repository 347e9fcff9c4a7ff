/* fastgd neural-network kernels: the C API.
 *
 * Matrices are row-major and contiguous: a (rows x cols) matrix at p has element (i, j) at
 * p[i * cols + j]. Matrix products are not here: they go through BLAS (sgemm/dgemm, called
 * from the Cython layer). These kernels are the element-wise epilogues and prologues around
 * them, the reductions, and the fused losses. Losses return their value as a double (the
 * sum is accumulated in double) and write the gradient, multiplied by `scale`, when `grad`
 * is not NULL. Nothing here knows about Python.
 */
#ifndef FASTGD_NN_H
#define FASTGD_NN_H
#include <stddef.h>
#include <stdint.h>

enum {
    FGD_ACT_IDENTITY = 0,
    FGD_ACT_RELU = 1,
    FGD_ACT_LEAKY_RELU = 2, /* slope below zero: `slope` */
    FGD_ACT_SIGMOID = 3,
    FGD_ACT_TANH = 4
};

#define FGD_NN_DECLARE(T, SFX)                                                                \
    /* z += bias (broadcast over rows; skipped when bias is NULL), then a = act(z).           \
     * a may be z itself (in place). */                                                       \
    void fgd_bias_act_##SFX(T *z, const T *bias, T *a, size_t rows, size_t cols, int act,     \
                            double slope);                                                    \
    /* dz = da * act'(z), using z (pre-activation) and a (post-activation); dz may be da. */  \
    void fgd_act_backward_##SFX(T *dz, const T *da, const T *z, const T *a, size_t n,         \
                                int act, double slope);                                       \
    /* out[j] = sum_i x[i, j], rows added in order (numpy's x.sum(axis=0)). */                \
    void fgd_colsum_##SFX(const T *x, size_t rows, size_t cols, T *out);                      \
    /* y = softmax(x) over each row (max-shifted); y may be x. */                             \
    void fgd_softmax_##SFX(const T *x, T *y, size_t rows, size_t cols);                       \
    /* dx = y * (dy - sum_j dy * y) per row; dx may be dy. */                                 \
    void fgd_softmax_backward_##SFX(const T *y, const T *dy, T *dx, size_t rows, size_t cols);\
    /* sum over rows of logsumexp(x_i) - x_i[label_i]; grad = scale (softmax(x) - onehot). */ \
    double fgd_cross_entropy_##SFX(const T *logits, const int64_t *labels, size_t rows,       \
                                   size_t cols, T *grad, double scale);                       \
    /* sum (p - t)^2; grad = scale * 2 (p - t). */                                            \
    double fgd_mse_##SFX(const T *pred, const T *target, size_t n, T *grad, double scale);    \
    /* sum max(x, 0) - x t + log1p(exp(-|x|)); grad = scale (sigmoid(x) - t). */              \
    double fgd_bce_logits_##SFX(const T *x, const T *target, size_t n, T *grad,               \
                                double scale);                                                \
    /* dst[r, :] = src[idx[r], :] for r < n. */                                               \
    void fgd_gather_rows_##SFX(const T *src, const int64_t *idx, size_t n, size_t cols,       \
                               T *dst);

FGD_NN_DECLARE(float, f32)
FGD_NN_DECLARE(double, f64)
#undef FGD_NN_DECLARE

/* dst[r] = src[idx[r]]: labels of a batch. */
void fgd_gather_i64(const int64_t *src, const int64_t *idx, size_t n, int64_t *dst);

#endif
