/* Template body of nn.c: expects T, SFX, EXP, LOG, LOG1P, TANH. */
#define FN(name) FGD_CAT(name, SFX)

static inline T FN(sigmoid)(T z)
{
    /* never exponentiates a positive number: no overflow for large |z| */
    if (z >= 0)
        return (T)1 / ((T)1 + EXP(-z));
    T e = EXP(z);
    return e / ((T)1 + e);
}

FGD_HOT void FN(fgd_bias_act)(T *z, const T *bias, T *a, size_t rows, size_t cols, int act,
                              double slope)
{
    const T s = (T)slope;
    for (size_t r = 0; r < rows; r++) {
        /* no restrict on zr: a may be z (in place), and the activation loops write ar while
         * they read zr, which a restrict zr makes undefined behaviour (C11 6.7.3.1). The
         * loops vectorise through omp simd all the same. */
        T *zr = z + r * cols;
        T *ar = a + r * cols;
        if (bias) {
            const T *restrict b = bias;
#pragma omp simd
            for (size_t j = 0; j < cols; j++)
                zr[j] = zr[j] + b[j];
        }
        switch (act) {
        case FGD_ACT_RELU:
#pragma omp simd
            for (size_t j = 0; j < cols; j++)
                ar[j] = (zr[j] > 0 || zr[j] != zr[j]) ? zr[j] : (T)0;
            break;
        case FGD_ACT_LEAKY_RELU:
#pragma omp simd
            for (size_t j = 0; j < cols; j++)
                ar[j] = zr[j] > 0 ? zr[j] : zr[j] * s;
            break;
        case FGD_ACT_SIGMOID:
            for (size_t j = 0; j < cols; j++)
                ar[j] = FN(sigmoid)(zr[j]);
            break;
        case FGD_ACT_TANH:
            for (size_t j = 0; j < cols; j++)
                ar[j] = TANH(zr[j]);
            break;
        default:
            if (ar != zr)
                memcpy(ar, zr, cols * sizeof(T));
        }
    }
}

FGD_HOT void FN(fgd_act_backward)(T *dz, const T *da, const T *z, const T *a, size_t n, int act,
                                  double slope)
{
    const T s = (T)slope;
    switch (act) {
    case FGD_ACT_RELU:
#pragma omp simd
        for (size_t i = 0; i < n; i++)
            dz[i] = a[i] > 0 ? da[i] : (T)0;
        break;
    case FGD_ACT_LEAKY_RELU:
#pragma omp simd
        for (size_t i = 0; i < n; i++)
            dz[i] = z[i] > 0 ? da[i] : da[i] * s;
        break;
    case FGD_ACT_SIGMOID:
#pragma omp simd
        for (size_t i = 0; i < n; i++)
            dz[i] = da[i] * (a[i] * ((T)1 - a[i]));
        break;
    case FGD_ACT_TANH:
#pragma omp simd
        for (size_t i = 0; i < n; i++)
            dz[i] = da[i] * ((T)1 - a[i] * a[i]);
        break;
    default:
        if (dz != da)
            memcpy(dz, da, n * sizeof(T));
    }
}

FGD_HOT void FN(fgd_colsum)(const T *x, size_t rows, size_t cols, T *out)
{
    T *restrict o = out;
    for (size_t j = 0; j < cols; j++)
        o[j] = 0;
    for (size_t r = 0; r < rows; r++) {
        const T *restrict xr = x + r * cols;
#pragma omp simd
        for (size_t j = 0; j < cols; j++)
            o[j] = o[j] + xr[j];
    }
}

void FN(fgd_softmax)(const T *x, T *y, size_t rows, size_t cols)
{
    /* x - max of its row for every row, one vectorised exp over the block, then the rows
     * normalised (the sums in T, in column order) */
    for (size_t r = 0; r < rows; r++) {
        const T *xr = x + r * cols;
        T *yr = y + r * cols;
        T m = xr[0];
        for (size_t j = 1; j < cols; j++)
            m = xr[j] > m ? xr[j] : m;
        for (size_t j = 0; j < cols; j++)
            yr[j] = xr[j] - m;
    }
    FN(exp_block)(y, y, rows * cols);
    for (size_t r = 0; r < rows; r++) {
        T *yr = y + r * cols;
        T sum = 0;
        for (size_t j = 0; j < cols; j++)
            sum += yr[j];
        const T inv = (T)1 / sum;
        for (size_t j = 0; j < cols; j++)
            yr[j] *= inv;
    }
}

void FN(fgd_softmax_backward)(const T *y, const T *dy, T *dx, size_t rows, size_t cols)
{
    for (size_t r = 0; r < rows; r++) {
        const T *yr = y + r * cols, *dyr = dy + r * cols;
        T *dxr = dx + r * cols;
        T dot = 0;
        for (size_t j = 0; j < cols; j++)
            dot += dyr[j] * yr[j];
        for (size_t j = 0; j < cols; j++)
            dxr[j] = yr[j] * (dyr[j] - dot);
    }
}

/* Rows at a time for the block exp of fgd_cross_entropy without a gradient buffer. */
#define FGD_CE_BLOCK 64

/* One row's part once its exps are in e: the gradient (when g) and the loss term. */
static inline double FN(ce_row)(const T *xr, T m, const T *e, size_t cols, int64_t label,
                                T *g, T sc)
{
    double sum = 0;
    for (size_t j = 0; j < cols; j++)
        sum += e[j];
    if (g) {
        const T inv = (T)(1.0 / sum) * sc;
        for (size_t j = 0; j < cols; j++)
            g[j] = e[j] * inv;
        g[label] -= sc;
    }
    /* logsumexp - x[label], the max subtracted first so that it cancels exactly */
    return log(sum) - ((double)xr[label] - (double)m);
}

double FN(fgd_cross_entropy)(const T *logits, const int64_t *labels, size_t rows, size_t cols,
                             T *grad, double scale)
{
    double total = 0;
    const T sc = (T)scale;
    T e[FGD_CE_BLOCK * 16], mx[FGD_CE_BLOCK];
    /* the exps of a block of rows at once (into grad, or a local buffer for narrow rows) */
    size_t block = cols <= 16 ? FGD_CE_BLOCK : 1;
    for (size_t r0 = 0; r0 < rows; r0 += block) {
        size_t nr = rows - r0 < block ? rows - r0 : block;
        T *buf = grad ? grad + r0 * cols : (cols <= 16 ? e : NULL);
        for (size_t r = 0; r < nr; r++) {
            const T *xr = logits + (r0 + r) * cols;
            T m = xr[0];
            for (size_t j = 1; j < cols; j++)
                m = xr[j] > m ? xr[j] : m;
            mx[r] = m;
            if (buf)
                for (size_t j = 0; j < cols; j++)
                    buf[r * cols + j] = xr[j] - m;
        }
        if (buf) {
            FN(exp_block)(buf, buf, nr * cols);
            for (size_t r = 0; r < nr; r++)
                total += FN(ce_row)(logits + (r0 + r) * cols, mx[r], buf + r * cols, cols,
                                    labels[r0 + r], grad ? buf + r * cols : NULL, sc);
        } else {
            /* a wide row without a gradient buffer: its exps one at a time */
            const T *xr = logits + r0 * cols;
            double sum = 0;
            for (size_t j = 0; j < cols; j++)
                sum += EXP(xr[j] - mx[0]);
            total += log(sum) - ((double)xr[labels[r0]] - (double)mx[0]);
        }
    }
    return total;
}

double FN(fgd_mse)(const T *pred, const T *target, size_t n, T *grad, double scale)
{
    double total = 0;
    const T two_sc = (T)(2.0 * scale);
    for (size_t i = 0; i < n; i++) {
        T d = pred[i] - target[i];
        total += (double)d * (double)d;
        if (grad)
            grad[i] = two_sc * d;
    }
    return total;
}

double FN(fgd_bce_logits)(const T *x, const T *target, size_t n, T *grad, double scale)
{
    double total = 0;
    const T sc = (T)scale;
    for (size_t i = 0; i < n; i++) {
        T xi = x[i];
        T ax = xi < 0 ? -xi : xi;
        total += (double)(xi > 0 ? xi : 0) - (double)xi * (double)target[i] +
                 (double)LOG1P(EXP(-ax));
        if (grad)
            grad[i] = sc * (FN(sigmoid)(xi) - target[i]);
    }
    return total;
}

void FN(fgd_gather_rows)(const T *src, const int64_t *idx, size_t n, size_t cols, T *dst)
{
    for (size_t r = 0; r < n; r++)
        memcpy(dst + r * cols, src + (size_t)idx[r] * cols, cols * sizeof(T));
}

#undef FN
