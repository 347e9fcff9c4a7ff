/* fastgd's Adam from C: #include <fastgd/fastgd.h>, import_fastgd() in the module's init,
 * then fgd_adam_f32 / fgd_adam_f64 as <fastgd/optim.h> declares them.
 *
 * Compiled with fastgd.get_include() on the include path and linked against nothing of
 * fastgd: the kernels come from the table in the capsule fastgd.kernels._C_API. Arrays are
 * taken through the buffer protocol (numpy's or any other C-contiguous float32/float64
 * buffer), so this module needs no numpy headers. The same functions as cytrain.pyx. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <fastgd/fastgd.h>

#include <stdlib.h>
#include <string.h>

/* ntensors arrays per list, as the kernels take them; the Py_buffer views stay held until
 * lists_free, so the memory cannot be released while a kernel runs without the GIL. */
typedef struct {
    size_t n, nviews;
    void **param, **grad, **exp_avg, **exp_avg_sq, **max_exp_avg_sq, **target;
    size_t *numel;
    int64_t *step;
    double *work;
    Py_buffer *views;
} lists;

static int lists_alloc(lists *L, size_t n)
{
    memset(L, 0, sizeof *L);
    L->n = n;
    L->param = calloc(n + 1, sizeof(void *));
    L->grad = calloc(n + 1, sizeof(void *));
    L->exp_avg = calloc(n + 1, sizeof(void *));
    L->exp_avg_sq = calloc(n + 1, sizeof(void *));
    L->max_exp_avg_sq = calloc(n + 1, sizeof(void *));
    L->target = calloc(n + 1, sizeof(void *));
    L->numel = calloc(n + 1, sizeof(size_t));
    L->step = calloc(n + 1, sizeof(int64_t));
    L->work = calloc(2 * n + 1, sizeof(double));
    L->views = calloc(5 * n + 1, sizeof(Py_buffer));
    if (!L->param || !L->grad || !L->exp_avg || !L->exp_avg_sq || !L->max_exp_avg_sq ||
        !L->target || !L->numel || !L->step || !L->work || !L->views) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void lists_free(lists *L)
{
    for (size_t i = 0; i < L->nviews; i++)
        PyBuffer_Release(&L->views[i]);
    free(L->param);
    free(L->grad);
    free(L->exp_avg);
    free(L->exp_avg_sq);
    free(L->max_exp_avg_sq);
    free(L->target);
    free(L->numel);
    free(L->step);
    free(L->work);
    free(L->views);
}

/* The first element of item t of `seq`, a C-contiguous buffer of format *fmt ('f' or 'd';
 * set from the first array when 0) and, unless *numel is (size_t)-1 on entry, of *numel
 * items; *numel is set to the item count. */
static void *address(lists *L, PyObject *seq, Py_ssize_t t, int writable, char *fmt,
                     size_t *numel)
{
    PyObject *obj = PySequence_GetItem(seq, t);
    if (obj == NULL)
        return NULL;
    Py_buffer *view = &L->views[L->nviews];
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    int rc = PyObject_GetBuffer(obj, view, flags);
    Py_DECREF(obj);
    if (rc < 0)
        return NULL;
    L->nviews++;
    const char f = view->format ? view->format[0] : 'B';
    if ((f != 'f' && f != 'd') || (view->format[1] != '\0') ||
        view->itemsize != (f == 'f' ? 4 : 8)) {
        PyErr_Format(PyExc_TypeError, "expected float32 or float64 arrays, got format '%s'",
                     view->format ? view->format : "B");
        return NULL;
    }
    if (*fmt == 0)
        *fmt = f;
    size_t items = (size_t)(view->len / view->itemsize);
    if (f != *fmt || (*numel != (size_t)-1 && items != *numel)) {
        PyErr_SetString(PyExc_ValueError, "the arrays differ in dtype or size");
        return NULL;
    }
    *numel = items;
    return view->buf;
}

static void run_adam(int f64, const lists *L, const fgd_adam_hparams *hp, int nthreads)
{
    if (f64)
        fgd_adam_f64(L->n, (double **)L->param, (const double **)L->grad,
                     (double **)L->exp_avg, (double **)L->exp_avg_sq,
                     hp->amsgrad ? (double **)L->max_exp_avg_sq : NULL, L->numel, L->step, hp,
                     L->work, nthreads);
    else
        fgd_adam_f32(L->n, (float **)L->param, (const float **)L->grad, (float **)L->exp_avg,
                     (float **)L->exp_avg_sq,
                     hp->amsgrad ? (float **)L->max_exp_avg_sq : NULL, L->numel, L->step, hp,
                     L->work, nthreads);
}

static PyObject *adam_step(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kw[] = {"params", "grads", "exp_avgs", "exp_avg_sqs", "step", "lr", "beta1",
                         "beta2", "eps", "weight_decay", "amsgrad", "maximize",
                         "decoupled_weight_decay", "max_exp_avg_sqs", "nthreads", NULL};
    PyObject *params, *grads, *exp_avgs, *exp_avg_sqs, *max_exp_avg_sqs = Py_None;
    long long step;
    fgd_adam_hparams hp = {1e-3, 0.9, 0.999, 1e-8, 0.0, 0, 0, 0};
    int nthreads = 0;
    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOL|$dddddpppOi", kw, &params, &grads,
                                     &exp_avgs, &exp_avg_sqs, &step, &hp.lr, &hp.beta1,
                                     &hp.beta2, &hp.eps, &hp.weight_decay, &hp.amsgrad,
                                     &hp.maximize, &hp.decoupled_weight_decay,
                                     &max_exp_avg_sqs, &nthreads))
        return NULL;
    Py_ssize_t n = PySequence_Size(params);
    if (n < 0)
        return NULL;
    if (PySequence_Size(grads) != n || PySequence_Size(exp_avgs) != n ||
        PySequence_Size(exp_avg_sqs) != n ||
        (hp.amsgrad && (max_exp_avg_sqs == Py_None || PySequence_Size(max_exp_avg_sqs) != n))) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "the lists differ in length (amsgrad needs "
                                              "one max_exp_avg_sq per parameter)");
        return NULL;
    }
    if (step < 1) {
        PyErr_SetString(PyExc_ValueError, "step must be >= 1");
        return NULL;
    }
    lists L;
    char fmt = 0;
    if (lists_alloc(&L, (size_t)n) < 0)
        goto fail;
    for (Py_ssize_t t = 0; t < n; t++) {
        size_t *numel = &L.numel[t];
        *numel = (size_t)-1;
        L.step[t] = (int64_t)step;
        if (!(L.param[t] = address(&L, params, t, 1, &fmt, numel)) ||
            !(L.grad[t] = address(&L, grads, t, 0, &fmt, numel)) ||
            !(L.exp_avg[t] = address(&L, exp_avgs, t, 1, &fmt, numel)) ||
            !(L.exp_avg_sq[t] = address(&L, exp_avg_sqs, t, 1, &fmt, numel)) ||
            (hp.amsgrad && !(L.max_exp_avg_sq[t] = address(&L, max_exp_avg_sqs, t, 1, &fmt,
                                                            numel))))
            goto fail;
    }
    Py_BEGIN_ALLOW_THREADS
    run_adam(fmt == 'd', &L, &hp, nthreads);
    Py_END_ALLOW_THREADS
    lists_free(&L);
    Py_RETURN_NONE;
fail:
    lists_free(&L);
    return NULL;
}

static PyObject *fit(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kw[] = {"params", "targets", "steps", "lr", "beta1", "beta2", "eps",
                         "weight_decay", "nthreads", NULL};
    PyObject *params, *targets;
    long long steps;
    fgd_adam_hparams hp = {1e-3, 0.9, 0.999, 1e-8, 0.0, 0, 0, 0};
    int nthreads = 0;
    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOL|$dddddi", kw, &params, &targets,
                                     &steps, &hp.lr, &hp.beta1, &hp.beta2, &hp.eps,
                                     &hp.weight_decay, &nthreads))
        return NULL;
    Py_ssize_t n = PySequence_Size(params);
    if (n < 0)
        return NULL;
    if (PySequence_Size(targets) != n) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "params and targets differ in length");
        return NULL;
    }
    lists L;
    char fmt = 0;
    double loss = 0.0;
    if (lists_alloc(&L, (size_t)n) < 0)
        goto fail;
    for (Py_ssize_t t = 0; t < n; t++) {
        L.numel[t] = (size_t)-1;
        if (!(L.param[t] = address(&L, params, t, 1, &fmt, &L.numel[t])) ||
            !(L.target[t] = address(&L, targets, t, 0, &fmt, &L.numel[t])))
            goto fail;
    }
    const size_t size = fmt == 'd' ? sizeof(double) : sizeof(float);
    for (Py_ssize_t t = 0; t < n; t++) { /* the module's own buffers: gradient, moments */
        L.grad[t] = calloc(L.numel[t] + 1, size);
        L.exp_avg[t] = calloc(L.numel[t] + 1, size);
        L.exp_avg_sq[t] = calloc(L.numel[t] + 1, size);
        if (!L.grad[t] || !L.exp_avg[t] || !L.exp_avg_sq[t]) {
            PyErr_NoMemory();
            goto fail_buffers;
        }
    }
    Py_BEGIN_ALLOW_THREADS
    for (long long k = 1; k <= steps; k++) {
        loss = 0.0;
        for (size_t t = 0; t < L.n; t++) {
            L.step[t] = (int64_t)k;
            for (size_t i = 0; i < L.numel[t]; i++) {
                double diff;
                if (fmt == 'd') {
                    diff = ((double *)L.param[t])[i] - ((const double *)L.target[t])[i];
                    ((double *)L.grad[t])[i] = diff;
                } else {
                    float d = ((float *)L.param[t])[i] - ((const float *)L.target[t])[i];
                    ((float *)L.grad[t])[i] = d;
                    diff = d;
                }
                loss += 0.5 * diff * diff;
            }
        }
        run_adam(fmt == 'd', &L, &hp, nthreads);
    }
    Py_END_ALLOW_THREADS
    for (Py_ssize_t t = 0; t < n; t++) {
        free(L.grad[t]);
        free(L.exp_avg[t]);
        free(L.exp_avg_sq[t]);
    }
    lists_free(&L);
    return PyFloat_FromDouble(loss);
fail_buffers:
    for (Py_ssize_t t = 0; t < n; t++) {
        free(L.grad[t]);
        free(L.exp_avg[t]);
        free(L.exp_avg_sq[t]);
    }
fail:
    lists_free(&L);
    return NULL;
}

static PyMethodDef methods[] = {
    {"adam_step", (PyCFunction)(void (*)(void))adam_step, METH_VARARGS | METH_KEYWORDS,
     "adam_step(params, grads, exp_avgs, exp_avg_sqs, step, *, lr=1e-3, beta1=0.9, "
     "beta2=0.999, eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False, "
     "decoupled_weight_decay=False, max_exp_avg_sqs=None, nthreads=0)\n--\n\n"
     "One Adam step in place over lists of float32 or float64 arrays, GIL released."},
    {"fit", (PyCFunction)(void (*)(void))fit, METH_VARARGS | METH_KEYWORDS,
     "fit(params, targets, steps, *, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, "
     "weight_decay=0.0, nthreads=0)\n--\n\n"
     "Minimise sum(0.5 (param - target)^2) with Adam, the loop without the GIL; returns the "
     "loss before the last step."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "ctrain", "fastgd's Adam from a C extension (see ctrain.c).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_ctrain(void)
{
    if (import_fastgd() < 0)
        return NULL;
    return PyModule_Create(&module);
}
