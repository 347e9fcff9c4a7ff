/* Template body of optim.c: expects T (element type), SFX (name suffix) and SQRT.
 *
 * Each algorithm has a context (pointers and hyper-parameters, cast to T once), a range
 * function that updates elements [b, e) of tensor t in one vectorised pass, and the public
 * entry that fills the context and hands the ranges to fgd_for_ranges(). The element-wise
 * expressions follow torch.optim's single-tensor code operation by operation, so that
 * float32 rounds as PyTorch and the numpy reference do. */
#define FN(name) FGD_CAT(name, SFX)

/* torch.lerp: start + w (end - start) for |w| < 0.5, else end - (end - start)(1 - w). */
#define LERP(start, end, w, small_w) \
    ((small_w) ? (start) + (w) * ((end) - (start)) : (end) - ((end) - (start)) * ((T)1 - (w)))
/* torch.maximum: NaN in either argument propagates. */
#define NANMAX(a, b) (((a) != (a) || (a) >= (b)) ? (a) : (b))

/* ---------------------------------------------------------------- SGD */
typedef struct {
    T *const *param;
    const T *const *grad;
    T *const *buf;
    const unsigned char *is_new;
    T lr, momentum, one_minus_dampening, weight_decay, sign;
    int nesterov, use_momentum; /* decided on the double hyper-parameter, not its cast */
} FN(sgd_ctx);

FGD_HOT static void FN(sgd_range)(const void *vctx, size_t t, size_t b, size_t e)
{
    const FN(sgd_ctx) *c = (const FN(sgd_ctx) *)vctx;
    T *restrict p = c->param[t] + b;
    const T *restrict g = c->grad[t] + b;
    const size_t n = e - b;
    const T lr = c->lr, wd = c->weight_decay, sign = c->sign, mom = c->momentum;
    const T keep = c->one_minus_dampening;
    const int decay = wd != 0;
    if (!c->use_momentum) {
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            T d = sign * g[i];
            if (decay)
                d = d + wd * p[i];
            p[i] = p[i] + (-lr) * d;
        }
        return;
    }
    T *restrict buf = c->buf[t] + b;
    const int is_new = c->is_new[t], nesterov = c->nesterov;
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        T d = sign * g[i];
        if (decay)
            d = d + wd * p[i];
        T m = is_new ? d : buf[i] * mom + keep * d;
        buf[i] = m;
        d = nesterov ? d + mom * m : m;
        p[i] = p[i] + (-lr) * d;
    }
}

void FN(fgd_sgd)(size_t ntensors, T *const *param, const T *const *grad,
                 T *const *momentum_buffer, const unsigned char *buffer_is_new,
                 const size_t *numel, const fgd_sgd_hparams *hp, int nthreads)
{
    FN(sgd_ctx) c = {param, grad, momentum_buffer, buffer_is_new, (T)hp->lr, (T)hp->momentum,
                     (T)(1.0 - hp->dampening), (T)hp->weight_decay,
                     hp->maximize ? (T)-1 : (T)1, hp->nesterov, hp->momentum != 0};
    fgd_for_ranges(ntensors, numel, nthreads, FN(sgd_range), &c);
}

/* ---------------------------------------------------------------- Adagrad */
typedef struct {
    T *const *param;
    const T *const *grad;
    T *const *sum;
    const double *clr; /* per tensor: lr / (1 + (step - 1) lr_decay) */
    T weight_decay, eps, sign;
} FN(adagrad_ctx);

FGD_HOT static void FN(adagrad_range)(const void *vctx, size_t t, size_t b, size_t e)
{
    const FN(adagrad_ctx) *c = (const FN(adagrad_ctx) *)vctx;
    T *restrict p = c->param[t] + b;
    const T *restrict g = c->grad[t] + b;
    T *restrict s = c->sum[t] + b;
    const size_t n = e - b;
    const T neg_clr = (T)(-c->clr[t]), wd = c->weight_decay, eps = c->eps, sign = c->sign;
    const int decay = wd != 0;
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        T d = sign * g[i];
        if (decay)
            d = d + wd * p[i];
        T si = s[i] + d * d;
        s[i] = si;
        p[i] = p[i] + neg_clr * (d / (SQRT(si) + eps));
    }
}

void FN(fgd_adagrad)(size_t ntensors, T *const *param, const T *const *grad,
                     T *const *state_sum, const size_t *numel, const int64_t *step,
                     const fgd_adagrad_hparams *hp, double *work, int nthreads)
{
    double *clr = work;
    for (size_t t = 0; t < ntensors; t++)
        clr[t] = t && step[t] == step[t - 1]
                     ? clr[t - 1]
                     : hp->lr / (1.0 + (double)(step[t] - 1) * hp->lr_decay);
    FN(adagrad_ctx) c = {param, grad, state_sum, clr, (T)hp->weight_decay, (T)hp->eps,
                         hp->maximize ? (T)-1 : (T)1};
    fgd_for_ranges(ntensors, numel, nthreads, FN(adagrad_range), &c);
}

/* ---------------------------------------------------------------- RMSprop */
typedef struct {
    T *const *param;
    const T *const *grad;
    T *const *square_avg, *const *grad_avg, *const *buf;
    T lr, alpha, one_minus_alpha, eps, weight_decay, momentum, sign;
    int centered, use_momentum; /* decided on the double hyper-parameter, not its cast */
} FN(rmsprop_ctx);

/* One loop body per (centered, momentum) case, so that each is a straight vectorisable loop. */
#define RMSPROP_LOOP(CENTERED, MOMENTUM)                                                    \
    _Pragma("omp simd") for (size_t i = 0; i < n; i++)                                      \
    {                                                                                        \
        T d = sign * g[i];                                                                   \
        if (decay)                                                                           \
            d = d + wd * p[i];                                                               \
        T s = sq[i] * alpha + (oma * d) * d;                                                 \
        sq[i] = s;                                                                           \
        T var = s;                                                                           \
        if (CENTERED) {                                                                      \
            T a = LERP(ga[i], d, oma, small_w);                                              \
            ga[i] = a;                                                                       \
            var = s + ((T)-1 * a) * a;                                                       \
        }                                                                                    \
        T avg = SQRT(var) + eps;                                                             \
        if (MOMENTUM) {                                                                      \
            T m = buf[i] * mom + d / avg;                                                    \
            buf[i] = m;                                                                      \
            p[i] = p[i] + (-lr) * m;                                                         \
        } else {                                                                             \
            p[i] = p[i] + (-lr) * (d / avg);                                                 \
        }                                                                                    \
    }

FGD_HOT static void FN(rmsprop_range)(const void *vctx, size_t t, size_t b, size_t e)
{
    const FN(rmsprop_ctx) *c = (const FN(rmsprop_ctx) *)vctx;
    T *restrict p = c->param[t] + b;
    const T *restrict g = c->grad[t] + b;
    T *restrict sq = c->square_avg[t] + b;
    T *restrict ga = c->centered ? c->grad_avg[t] + b : NULL;
    T *restrict buf = c->use_momentum ? c->buf[t] + b : NULL;
    const size_t n = e - b;
    const T lr = c->lr, alpha = c->alpha, oma = c->one_minus_alpha, eps = c->eps;
    const T wd = c->weight_decay, mom = c->momentum, sign = c->sign;
    const int decay = wd != 0, small_w = oma < (T)0.5;
    if (ga && buf) {
        RMSPROP_LOOP(1, 1)
    } else if (ga) {
        RMSPROP_LOOP(1, 0)
    } else if (buf) {
        RMSPROP_LOOP(0, 1)
    } else {
        RMSPROP_LOOP(0, 0)
    }
}
#undef RMSPROP_LOOP

void FN(fgd_rmsprop)(size_t ntensors, T *const *param, const T *const *grad, T *const *square_avg,
                     T *const *grad_avg, T *const *momentum_buffer, const size_t *numel,
                     const fgd_rmsprop_hparams *hp, int nthreads)
{
    FN(rmsprop_ctx) c = {param, grad, square_avg, grad_avg, momentum_buffer, (T)hp->lr,
                         (T)hp->alpha, (T)(1.0 - hp->alpha), (T)hp->eps, (T)hp->weight_decay,
                         (T)hp->momentum, hp->maximize ? (T)-1 : (T)1, hp->centered,
                         hp->momentum > 0};
    fgd_for_ranges(ntensors, numel, nthreads, FN(rmsprop_range), &c);
}

/* ---------------------------------------------------------------- Adam / AdamW */
typedef struct {
    T *const *param;
    const T *const *grad;
    T *const *exp_avg, *const *exp_avg_sq, *const *max_exp_avg_sq;
    const double *factors; /* per tensor: step_size = lr / (1 - beta1^step), sqrt(1 - beta2^step) */
    T beta2, one_minus_beta1, one_minus_beta2, eps, weight_decay, decay_factor, sign;
    int l2, decoupled;
} FN(adam_ctx);

/* The AMSGrad and plain cases as two straight vectorisable loops from one body. */
#define ADAM_LOOP(AMSGRAD)                                                                  \
    _Pragma("omp simd") for (size_t i = 0; i < n; i++)                                      \
    {                                                                                        \
        T d = sign * g[i];                                                                   \
        T pi = p[i];                                                                         \
        if (decoupled)                                                                       \
            pi = pi * keep;                                                                  \
        if (l2)                                                                              \
            d = d + wd * pi;                                                                 \
        T mi = LERP(m[i], d, w1, small_w);                                                   \
        T vi = v[i] * beta2 + (omb2 * d) * d;                                                \
        m[i] = mi;                                                                           \
        v[i] = vi;                                                                           \
        if (AMSGRAD) {                                                                       \
            vi = NANMAX(vmax[i], vi);                                                        \
            vmax[i] = vi;                                                                    \
        }                                                                                    \
        p[i] = pi + neg_step * (mi / (SQRT(vi) * inv_bc2 + eps));                           \
    }

FGD_HOT static void FN(adam_range)(const void *vctx, size_t t, size_t b, size_t e)
{
    const FN(adam_ctx) *c = (const FN(adam_ctx) *)vctx;
    T *restrict p = c->param[t] + b;
    const T *restrict g = c->grad[t] + b;
    T *restrict m = c->exp_avg[t] + b;
    T *restrict v = c->exp_avg_sq[t] + b;
    T *restrict vmax = c->max_exp_avg_sq ? c->max_exp_avg_sq[t] + b : NULL;
    const size_t n = e - b;
    /* sqrt(v) / sqrt(1 - beta2^t) as a product with the reciprocal (computed once, in
     * double): one division fewer per element, 25% faster where the loop is bound by
     * divider throughput; it may round the denominator 1 ulp apart from PyTorch's. */
    const T neg_step = (T)(-c->factors[2 * t]), inv_bc2 = (T)(1.0 / c->factors[2 * t + 1]);
    const T beta2 = c->beta2, w1 = c->one_minus_beta1, omb2 = c->one_minus_beta2;
    const T eps = c->eps, wd = c->weight_decay, keep = c->decay_factor, sign = c->sign;
    const int l2 = c->l2, decoupled = c->decoupled, small_w = w1 < (T)0.5;
    if (vmax) {
        ADAM_LOOP(1)
    } else {
        ADAM_LOOP(0)
    }
}
#undef ADAM_LOOP

void FN(fgd_adam)(size_t ntensors, T *const *param, const T *const *grad, T *const *exp_avg,
                  T *const *exp_avg_sq, T *const *max_exp_avg_sq, const size_t *numel,
                  const int64_t *step, const fgd_adam_hparams *hp, double *work, int nthreads)
{
    double *f = work;
    for (size_t t = 0; t < ntensors; t++) {
        if (t && step[t] == step[t - 1]) {
            f[2 * t] = f[2 * t - 2];
            f[2 * t + 1] = f[2 * t - 1];
        } else {
            f[2 * t] = hp->lr / (1.0 - pow(hp->beta1, (double)step[t]));
            f[2 * t + 1] = sqrt(1.0 - pow(hp->beta2, (double)step[t]));
        }
    }
    const int has_wd = hp->weight_decay != 0;
    FN(adam_ctx) c = {param,
                      grad,
                      exp_avg,
                      exp_avg_sq,
                      hp->amsgrad ? max_exp_avg_sq : NULL,
                      f,
                      (T)hp->beta2,
                      (T)(1.0 - hp->beta1),
                      (T)(1.0 - hp->beta2),
                      (T)hp->eps,
                      (T)hp->weight_decay,
                      (T)(1.0 - hp->lr * hp->weight_decay),
                      hp->maximize ? (T)-1 : (T)1,
                      has_wd && !hp->decoupled_weight_decay,
                      has_wd && hp->decoupled_weight_decay};
    fgd_for_ranges(ntensors, numel, nthreads, FN(adam_range), &c);
}

/* ---------------------------------------------------------------- Adamax */
typedef struct {
    T *const *param;
    const T *const *grad;
    T *const *exp_avg, *const *exp_inf;
    const double *clr; /* per tensor: lr / (1 - beta1^step) */
    T beta2, one_minus_beta1, eps, weight_decay, sign;
} FN(adamax_ctx);

FGD_HOT static void FN(adamax_range)(const void *vctx, size_t t, size_t b, size_t e)
{
    const FN(adamax_ctx) *c = (const FN(adamax_ctx) *)vctx;
    T *restrict p = c->param[t] + b;
    const T *restrict g = c->grad[t] + b;
    T *restrict m = c->exp_avg[t] + b;
    T *restrict u = c->exp_inf[t] + b;
    const size_t n = e - b;
    const T neg_clr = (T)(-c->clr[t]);
    const T beta2 = c->beta2, w1 = c->one_minus_beta1, eps = c->eps, wd = c->weight_decay;
    const T sign = c->sign;
    const int decay = wd != 0, small_w = w1 < (T)0.5;
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        T d = sign * g[i];
        if (decay)
            d = d + wd * p[i];
        T mi = LERP(m[i], d, w1, small_w);
        T ad = d < 0 ? -d : d;
        /* torch.maximum(exp_inf * beta2, |g| + eps): NaN in either propagates */
        T ui = NANMAX(u[i] * beta2, ad + eps);
        m[i] = mi;
        u[i] = ui;
        /* addcdiv_(exp_avg, exp_inf, value=-clr): (value * exp_avg) / exp_inf, as torch */
        p[i] = p[i] + (neg_clr * mi) / ui;
    }
}

void FN(fgd_adamax)(size_t ntensors, T *const *param, const T *const *grad, T *const *exp_avg,
                    T *const *exp_inf, const size_t *numel, const int64_t *step,
                    const fgd_adamax_hparams *hp, double *work, int nthreads)
{
    for (size_t t = 0; t < ntensors; t++)
        work[t] = (t && step[t] == step[t - 1]) ? work[t - 1]
                                                : hp->lr / (1.0 - pow(hp->beta1, (double)step[t]));
    FN(adamax_ctx) c = {param,
                        grad,
                        exp_avg,
                        exp_inf,
                        work,
                        (T)hp->beta2,
                        (T)(1.0 - hp->beta1),
                        (T)hp->eps,
                        (T)hp->weight_decay,
                        hp->maximize ? (T)-1 : (T)1};
    fgd_for_ranges(ntensors, numel, nthreads, FN(adamax_range), &c);
}

/* ---------------------------------------------------------------- Lion */
typedef struct {
    T *const *param;
    const T *const *grad;
    T *const *exp_avg;
    T lr, beta1, one_minus_beta1, beta2, one_minus_beta2, weight_decay, sign;
} FN(lion_ctx);

FGD_HOT static void FN(lion_range)(const void *vctx, size_t t, size_t b, size_t e)
{
    const FN(lion_ctx) *c = (const FN(lion_ctx) *)vctx;
    T *restrict p = c->param[t] + b;
    const T *restrict g = c->grad[t] + b;
    T *restrict m = c->exp_avg[t] + b;
    const size_t n = e - b;
    const T lr = c->lr, b1 = c->beta1, w1 = c->one_minus_beta1, b2 = c->beta2;
    const T w2 = c->one_minus_beta2, wd = c->weight_decay, sign = c->sign;
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        T d = sign * g[i];
        T ci = b1 * m[i] + w1 * d;
        /* sign(c): -1, 0 or 1, NaN for NaN (numpy's and jax's sign) */
        T u = ci > 0 ? (T)1 : (ci < 0 ? (T)-1 : ci);
        m[i] = b2 * m[i] + w2 * d;
        p[i] = p[i] - lr * (u + wd * p[i]);
    }
}

void FN(fgd_lion)(size_t ntensors, T *const *param, const T *const *grad, T *const *exp_avg,
                  const size_t *numel, const fgd_lion_hparams *hp, int nthreads)
{
    FN(lion_ctx) c = {param,
                      grad,
                      exp_avg,
                      (T)hp->lr,
                      (T)hp->beta1,
                      (T)(1.0 - hp->beta1),
                      (T)hp->beta2,
                      (T)(1.0 - hp->beta2),
                      (T)hp->weight_decay,
                      hp->maximize ? (T)-1 : (T)1};
    fgd_for_ranges(ntensors, numel, nthreads, FN(lion_range), &c);
}

/* ---------------------------------------------------------------- Adadelta */
typedef struct {
    T *const *param;
    const T *const *grad;
    T *const *square_avg, *const *acc_delta;
    T lr, rho, one_minus_rho, eps, weight_decay, sign;
} FN(adadelta_ctx);

FGD_HOT static void FN(adadelta_range)(const void *vctx, size_t t, size_t b, size_t e)
{
    const FN(adadelta_ctx) *c = (const FN(adadelta_ctx) *)vctx;
    T *restrict p = c->param[t] + b;
    const T *restrict g = c->grad[t] + b;
    T *restrict sq = c->square_avg[t] + b;
    T *restrict acc = c->acc_delta[t] + b;
    const size_t n = e - b;
    const T neg_lr = -c->lr, rho = c->rho, omr = c->one_minus_rho, eps = c->eps;
    const T wd = c->weight_decay, sign = c->sign;
    const int decay = wd != 0;
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        T d = sign * g[i];
        if (decay)
            d = d + wd * p[i];
        T si = sq[i] * rho + (omr * d) * d;
        T std = SQRT(si + eps);
        T delta = (SQRT(acc[i] + eps) / std) * d;
        sq[i] = si;
        acc[i] = acc[i] * rho + (omr * delta) * delta;
        p[i] = p[i] + neg_lr * delta;
    }
}

void FN(fgd_adadelta)(size_t ntensors, T *const *param, const T *const *grad,
                      T *const *square_avg, T *const *acc_delta, const size_t *numel,
                      const fgd_adadelta_hparams *hp, int nthreads)
{
    FN(adadelta_ctx) c = {param,
                          grad,
                          square_avg,
                          acc_delta,
                          (T)hp->lr,
                          (T)hp->rho,
                          (T)(1.0 - hp->rho),
                          (T)hp->eps,
                          (T)hp->weight_decay,
                          hp->maximize ? (T)-1 : (T)1};
    fgd_for_ranges(ntensors, numel, nthreads, FN(adadelta_range), &c);
}

/* ---------------------------------------------------------------- RAdam */
typedef struct {
    T *const *param;
    const T *const *grad;
    T *const *exp_avg, *const *exp_avg_sq;
    /* per tensor: 1 - beta1^step, sqrt(1 - beta2^step), the rectification (0: SGD step) */
    const double *factors;
    T lr, beta2, one_minus_beta1, one_minus_beta2, eps, weight_decay, decay_factor, sign;
    int l2, decoupled;
} FN(radam_ctx);

FGD_HOT static void FN(radam_range)(const void *vctx, size_t t, size_t b, size_t e)
{
    const FN(radam_ctx) *c = (const FN(radam_ctx) *)vctx;
    T *restrict p = c->param[t] + b;
    const T *restrict g = c->grad[t] + b;
    T *restrict m = c->exp_avg[t] + b;
    T *restrict v = c->exp_avg_sq[t] + b;
    const size_t n = e - b;
    const T bc1 = (T)c->factors[3 * t], bc2_sqrt = (T)c->factors[3 * t + 1];
    const T rect = (T)c->factors[3 * t + 2];
    const int adaptive = c->factors[3 * t + 2] > 0;
    const T lr = c->lr, beta2 = c->beta2, w1 = c->one_minus_beta1, omb2 = c->one_minus_beta2;
    const T eps = c->eps, wd = c->weight_decay, keep = c->decay_factor, sign = c->sign;
    const int l2 = c->l2, decoupled = c->decoupled, small_w = w1 < (T)0.5;
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        T d = sign * g[i];
        T pi = p[i];
        if (decoupled)
            pi = pi * keep;
        if (l2)
            d = d + wd * pi;
        T mi = LERP(m[i], d, w1, small_w);
        T vi = v[i] * beta2 + (omb2 * d) * d;
        m[i] = mi;
        v[i] = vi;
        /* torch: (exp_avg / bc1) * lr [* (sqrt(bc2) / (sqrt(v) + eps)) * rect], subtracted */
        T step_i = (mi / bc1) * lr;
        if (adaptive)
            step_i = (step_i * (bc2_sqrt / (SQRT(vi) + eps))) * rect;
        p[i] = pi - step_i;
    }
}

void FN(fgd_radam)(size_t ntensors, T *const *param, const T *const *grad, T *const *exp_avg,
                   T *const *exp_avg_sq, const size_t *numel, const int64_t *step,
                   const fgd_radam_hparams *hp, double *work, int nthreads)
{
    const double rho_inf = 2.0 / (1.0 - hp->beta2) - 1.0;
    for (size_t t = 0; t < ntensors; t++) {
        if (t && step[t] == step[t - 1]) {
            for (int k = 0; k < 3; k++)
                work[3 * t + k] = work[3 * t - 3 + k];
            continue;
        }
        const double s = (double)step[t];
        const double bc1 = 1.0 - pow(hp->beta1, s), bc2 = 1.0 - pow(hp->beta2, s);
        const double rho_t = rho_inf - 2.0 * s * pow(hp->beta2, s) / bc2;
        work[3 * t] = bc1;
        work[3 * t + 1] = sqrt(bc2);
        work[3 * t + 2] = rho_t > 5.0 ? sqrt((rho_t - 4.0) * (rho_t - 2.0) * rho_inf /
                                             ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
                                      : 0.0;
    }
    const int has_wd = hp->weight_decay != 0;
    FN(radam_ctx) c = {param,
                       grad,
                       exp_avg,
                       exp_avg_sq,
                       work,
                       (T)hp->lr,
                       (T)hp->beta2,
                       (T)(1.0 - hp->beta1),
                       (T)(1.0 - hp->beta2),
                       (T)hp->eps,
                       (T)hp->weight_decay,
                       (T)(1.0 - hp->lr * hp->weight_decay),
                       hp->maximize ? (T)-1 : (T)1,
                       has_wd && !hp->decoupled_weight_decay,
                       has_wd && hp->decoupled_weight_decay};
    fgd_for_ranges(ntensors, numel, nthreads, FN(radam_range), &c);
}

/* ---------------------------------------------------------------- NAdam */
typedef struct {
    T *const *param;
    const T *const *grad;
    T *const *exp_avg, *const *exp_avg_sq;
    /* per tensor: 1 - beta2^step, the gradient's and the momentum's step coefficients */
    const double *factors;
    T beta2, one_minus_beta1, one_minus_beta2, eps, weight_decay, decay_factor, sign;
    int l2, decoupled;
} FN(nadam_ctx);

FGD_HOT static void FN(nadam_range)(const void *vctx, size_t t, size_t b, size_t e)
{
    const FN(nadam_ctx) *c = (const FN(nadam_ctx) *)vctx;
    T *restrict p = c->param[t] + b;
    const T *restrict g = c->grad[t] + b;
    T *restrict m = c->exp_avg[t] + b;
    T *restrict v = c->exp_avg_sq[t] + b;
    const size_t n = e - b;
    const T bc2 = (T)c->factors[3 * t], cg = (T)c->factors[3 * t + 1];
    const T cm = (T)c->factors[3 * t + 2];
    const T beta2 = c->beta2, w1 = c->one_minus_beta1, omb2 = c->one_minus_beta2;
    const T eps = c->eps, wd = c->weight_decay, keep = c->decay_factor, sign = c->sign;
    const int l2 = c->l2, decoupled = c->decoupled, small_w = w1 < (T)0.5;
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        T d = sign * g[i];
        T pi = p[i];
        if (decoupled)
            pi = pi * keep;
        if (l2)
            d = d + wd * pi;
        T mi = LERP(m[i], d, w1, small_w);
        T vi = v[i] * beta2 + (omb2 * d) * d;
        m[i] = mi;
        v[i] = vi;
        T denom = SQRT(vi / bc2) + eps;
        /* two addcdiv_ as torch: param + (value * tensor1) / tensor2, the gradient first */
        pi = pi + (cg * d) / denom;
        p[i] = pi + (cm * mi) / denom;
    }
}

void FN(fgd_nadam)(size_t ntensors, T *const *param, const T *const *grad, T *const *exp_avg,
                   T *const *exp_avg_sq, double *mu_product, const size_t *numel,
                   const int64_t *step, const fgd_nadam_hparams *hp, double *work, int nthreads)
{
    double prev_in = 0.0; /* tensor t - 1's product before this step */
    for (size_t t = 0; t < ntensors; t++) {
        const double in = mu_product[t];
        if (t && step[t] == step[t - 1] && in == prev_in) { /* the factors of tensor t - 1 */
            for (int k = 0; k < 3; k++)
                work[3 * t + k] = work[3 * t - 3 + k];
            mu_product[t] = mu_product[t - 1];
            continue;
        }
        prev_in = in;
        const double s = (double)step[t];
        const double mu = hp->beta1 * (1.0 - 0.5 * pow(0.96, s * hp->momentum_decay));
        const double mu_next = hp->beta1 * (1.0 - 0.5 * pow(0.96, (s + 1.0) * hp->momentum_decay));
        /* torch multiplies its float32 scalar tensor by the Python float in float32 */
        const double prod = (double)((float)in * (float)mu);
        work[3 * t] = 1.0 - pow(hp->beta2, s);
        work[3 * t + 1] = -hp->lr * (1.0 - mu) / (1.0 - prod);
        work[3 * t + 2] = (-hp->lr * mu_next) / (1.0 - prod * mu_next);
        mu_product[t] = prod;
    }
    const int has_wd = hp->weight_decay != 0;
    FN(nadam_ctx) c = {param,
                       grad,
                       exp_avg,
                       exp_avg_sq,
                       work,
                       (T)hp->beta2,
                       (T)(1.0 - hp->beta1),
                       (T)(1.0 - hp->beta2),
                       (T)hp->eps,
                       (T)hp->weight_decay,
                       (T)(1.0 - hp->lr * hp->weight_decay),
                       hp->maximize ? (T)-1 : (T)1,
                       has_wd && !hp->decoupled_weight_decay,
                       has_wd && hp->decoupled_weight_decay};
    fgd_for_ranges(ntensors, numel, nthreads, FN(nadam_range), &c);
}

#undef FN
#undef LERP
#undef NANMAX
