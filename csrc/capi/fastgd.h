/* fastgd's kernels from another C extension, with no link step.
 *
 *   #include <fastgd/fastgd.h>      (the folder: fastgd.get_include())
 *
 *   PyMODINIT_FUNC PyInit_mymod(void)
 *   {
 *       if (import_fastgd() < 0)     (imports fastgd.kernels; -1 with ImportError set)
 *           return NULL;
 *       ...
 *   }
 *
 * after which every kernel of <fastgd/optim.h> (fgd_adam_f32, fgd_sgd_f64, fgd_norm_f32,
 * fgd_average_f64, ...) is called by its name with the arguments documented there. The
 * names are macros over a table of function pointers that fastgd.kernels exports in the
 * PyCapsule fastgd.kernels._C_API, so the extension links against nothing of fastgd; it
 * needs fastgd installed at run time. Calling a kernel before import_fastgd() succeeded
 * dereferences a NULL table.
 *
 * ABI versions. The table starts with the ABI version it implements and its size in bytes.
 * A module is built against FASTGD_ABI_VERSION_MAJOR.FASTGD_ABI_VERSION_MINOR and runs with
 * an installed fastgd of the same major version and an equal or newer minor version (new
 * kernels are appended to the table, bumping the minor version; changing a signature or a
 * hyper-parameter struct bumps the major version). Anything else makes import_fastgd() fail
 * with an ImportError that names both versions: rebuild the module against the installed
 * fastgd.
 *
 * Several C files in one module: define FASTGD_API_UNIQUE_SYMBOL to one name in all of
 * them (before the #include) and FASTGD_NO_IMPORT in all but the one that calls
 * import_fastgd(), as with numpy's PY_ARRAY_UNIQUE_SYMBOL and NO_IMPORT_ARRAY. By default
 * the table pointer is static: each C file calls import_fastgd() itself.
 */
#ifndef FASTGD_FASTGD_H
#define FASTGD_FASTGD_H
#ifndef PY_SSIZE_T_CLEAN
#define PY_SSIZE_T_CLEAN
#endif
#include <Python.h>
#include "optim.h"

/* The ABI this header describes. (Defined only if not yet defined, so that fastgd's own
 * tests can build a module that claims another version; never define them yourself.) */
#ifndef FASTGD_ABI_VERSION_MAJOR
#define FASTGD_ABI_VERSION_MAJOR 1
#endif
#ifndef FASTGD_ABI_VERSION_MINOR
#define FASTGD_ABI_VERSION_MINOR 0
#endif

/* The capsule's name (PyCapsule_Import would also accept it as a dotted path). */
#define FASTGD_CAPSULE_NAME "fastgd.kernels._C_API"

/* ABI 1.0. Slots are never reordered or removed within a major version. */
typedef struct fgd_capi {
    unsigned int abi_major, abi_minor; /* the ABI the installed fastgd implements */
    size_t size;                       /* sizeof(fgd_capi) there: the slots it has */
    const char *fastgd_version;        /* the installed fastgd's version, e.g. "0.1.0" */

    void (*sgd_f32)(size_t, float *const *, const float *const *, float *const *,
                    const unsigned char *, const size_t *, const fgd_sgd_hparams *, int);
    void (*sgd_f64)(size_t, double *const *, const double *const *, double *const *,
                    const unsigned char *, const size_t *, const fgd_sgd_hparams *, int);
    void (*adagrad_f32)(size_t, float *const *, const float *const *, float *const *,
                        const size_t *, const int64_t *, const fgd_adagrad_hparams *, double *,
                        int);
    void (*adagrad_f64)(size_t, double *const *, const double *const *, double *const *,
                        const size_t *, const int64_t *, const fgd_adagrad_hparams *, double *,
                        int);
    void (*rmsprop_f32)(size_t, float *const *, const float *const *, float *const *,
                        float *const *, float *const *, const size_t *,
                        const fgd_rmsprop_hparams *, int);
    void (*rmsprop_f64)(size_t, double *const *, const double *const *, double *const *,
                        double *const *, double *const *, const size_t *,
                        const fgd_rmsprop_hparams *, int);
    void (*adam_f32)(size_t, float *const *, const float *const *, float *const *,
                     float *const *, float *const *, const size_t *, const int64_t *,
                     const fgd_adam_hparams *, double *, int);
    void (*adam_f64)(size_t, double *const *, const double *const *, double *const *,
                     double *const *, double *const *, const size_t *, const int64_t *,
                     const fgd_adam_hparams *, double *, int);
    void (*adamax_f32)(size_t, float *const *, const float *const *, float *const *,
                       float *const *, const size_t *, const int64_t *,
                       const fgd_adamax_hparams *, double *, int);
    void (*adamax_f64)(size_t, double *const *, const double *const *, double *const *,
                       double *const *, const size_t *, const int64_t *,
                       const fgd_adamax_hparams *, double *, int);
    void (*lion_f32)(size_t, float *const *, const float *const *, float *const *,
                     const size_t *, const fgd_lion_hparams *, int);
    void (*lion_f64)(size_t, double *const *, const double *const *, double *const *,
                     const size_t *, const fgd_lion_hparams *, int);
    void (*adadelta_f32)(size_t, float *const *, const float *const *, float *const *,
                         float *const *, const size_t *, const fgd_adadelta_hparams *, int);
    void (*adadelta_f64)(size_t, double *const *, const double *const *, double *const *,
                         double *const *, const size_t *, const fgd_adadelta_hparams *, int);
    void (*radam_f32)(size_t, float *const *, const float *const *, float *const *,
                      float *const *, const size_t *, const int64_t *,
                      const fgd_radam_hparams *, double *, int);
    void (*radam_f64)(size_t, double *const *, const double *const *, double *const *,
                      double *const *, const size_t *, const int64_t *,
                      const fgd_radam_hparams *, double *, int);
    void (*nadam_f32)(size_t, float *const *, const float *const *, float *const *,
                      float *const *, double *, const size_t *, const int64_t *,
                      const fgd_nadam_hparams *, double *, int);
    void (*nadam_f64)(size_t, double *const *, const double *const *, double *const *,
                      double *const *, double *, const size_t *, const int64_t *,
                      const fgd_nadam_hparams *, double *, int);
    size_t (*norm_blocks)(size_t, const size_t *);
    double (*norm_f32)(size_t, const float *const *, const size_t *, double, double *, int);
    double (*norm_f64)(size_t, const double *const *, const size_t *, double, double *, int);
    void (*scale_f32)(size_t, float *const *, const size_t *, double, int);
    void (*scale_f64)(size_t, double *const *, const size_t *, double, int);
    void (*average_f32)(size_t, float *const *, const float *const *, const size_t *,
                        const fgd_average_hparams *, int);
    void (*average_f64)(size_t, double *const *, const double *const *, const size_t *,
                        const fgd_average_hparams *, int);
} fgd_capi;

#ifndef FASTGD_CAPI_PROVIDER /* fastgd.kernels itself fills the table and skips the rest */

#if defined(FASTGD_API_UNIQUE_SYMBOL)
#define FASTGD_API FASTGD_API_UNIQUE_SYMBOL
#if defined(FASTGD_NO_IMPORT)
extern const fgd_capi *FASTGD_API;
#else
const fgd_capi *FASTGD_API = NULL;
#endif
#else
#define FASTGD_API fgd_capi_table_
static const fgd_capi *FASTGD_API = NULL;
#endif

#if !defined(FASTGD_NO_IMPORT)
/* Import fastgd.kernels and take its table: 0 on success, -1 with an exception set
 * (ImportError when fastgd is missing or its ABI does not fit this header's). Call it
 * with the GIL held, in the module's init function; calling it again is harmless. */
static inline int import_fastgd(void)
{
    PyObject *mod = PyImport_ImportModule("fastgd.kernels");
    if (mod == NULL)
        return -1;
    PyObject *cap = PyObject_GetAttrString(mod, "_C_API");
    Py_DECREF(mod);
    if (cap == NULL)
        return -1;
    const fgd_capi *api = NULL;
    if (PyCapsule_CheckExact(cap))
        api = (const fgd_capi *)PyCapsule_GetPointer(cap, FASTGD_CAPSULE_NAME);
    Py_DECREF(cap);
    if (api == NULL) {
        PyErr_Clear();
        PyErr_SetString(PyExc_ImportError,
                        "fastgd.kernels._C_API is not a " FASTGD_CAPSULE_NAME " capsule");
        return -1;
    }
    /* variables, not the macros: "minor < 0" draws -Wtype-limits */
    const unsigned int major = FASTGD_ABI_VERSION_MAJOR, minor = FASTGD_ABI_VERSION_MINOR;
    if (api->abi_major != major || api->abi_minor < minor || api->size < sizeof(fgd_capi)) {
        PyErr_Format(PyExc_ImportError,
                     "module compiled against fastgd C API (ABI) version %u.%u, but the "
                     "installed fastgd %s provides ABI version %u.%u (%zu-byte table, "
                     "%zu expected): rebuild the module against the installed fastgd "
                     "(fastgd.get_include())",
                     major, minor, api->fastgd_version,
                     api->abi_major, api->abi_minor, api->size, sizeof(fgd_capi));
        return -1;
    }
    FASTGD_API = api;
    return 0;
}
#endif

/* The kernels by name: fgd_adam_f32(...) calls the table's slot. */
#define fgd_sgd_f32 (FASTGD_API->sgd_f32)
#define fgd_sgd_f64 (FASTGD_API->sgd_f64)
#define fgd_adagrad_f32 (FASTGD_API->adagrad_f32)
#define fgd_adagrad_f64 (FASTGD_API->adagrad_f64)
#define fgd_rmsprop_f32 (FASTGD_API->rmsprop_f32)
#define fgd_rmsprop_f64 (FASTGD_API->rmsprop_f64)
#define fgd_adam_f32 (FASTGD_API->adam_f32)
#define fgd_adam_f64 (FASTGD_API->adam_f64)
#define fgd_adamax_f32 (FASTGD_API->adamax_f32)
#define fgd_adamax_f64 (FASTGD_API->adamax_f64)
#define fgd_lion_f32 (FASTGD_API->lion_f32)
#define fgd_lion_f64 (FASTGD_API->lion_f64)
#define fgd_adadelta_f32 (FASTGD_API->adadelta_f32)
#define fgd_adadelta_f64 (FASTGD_API->adadelta_f64)
#define fgd_radam_f32 (FASTGD_API->radam_f32)
#define fgd_radam_f64 (FASTGD_API->radam_f64)
#define fgd_nadam_f32 (FASTGD_API->nadam_f32)
#define fgd_nadam_f64 (FASTGD_API->nadam_f64)
#define fgd_norm_blocks (FASTGD_API->norm_blocks)
#define fgd_norm_f32 (FASTGD_API->norm_f32)
#define fgd_norm_f64 (FASTGD_API->norm_f64)
#define fgd_scale_f32 (FASTGD_API->scale_f32)
#define fgd_scale_f64 (FASTGD_API->scale_f64)
#define fgd_average_f32 (FASTGD_API->average_f32)
#define fgd_average_f64 (FASTGD_API->average_f64)

#endif /* FASTGD_CAPI_PROVIDER */
#endif /* FASTGD_FASTGD_H */
