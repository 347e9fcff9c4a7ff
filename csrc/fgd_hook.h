/* A step that C code can run without Python: fastgd._optim.BoundUpdate.hook() hands one out
 * in a PyCapsule named FGD_HOOK_NAME, and fastgd._nn.Program.train_steps calls it after each
 * backward pass; Backup.hook() hands out a back-up's save and restore the same way.
 * Binding-level glue, not a kernel: it lives beside the .pyx files. */
#ifndef FASTGD_HOOK_H
#define FASTGD_HOOK_H
#include <stddef.h>

typedef struct fgd_hook {
    void (*run)(void *ctx);
    void *ctx;
    /* a back-up's hook (fastgd._optim.Backup.hook()) also puts its copy back: undo(ctx);
     * NULL for the other hooks */
    void (*undo)(void *ctx);
    /* a hook whose step depends on the step's index within the call (a per-step schedule,
     * fastgd._optim.ScheduleTable.hook()) sets run_at, which the loop calls instead of run
     * with k, the step's index from the start of train_steps (replayed steps included; with
     * gradient accumulation the index of the update, one per group of batches);
     * NULL for the other hooks */
    void (*run_at)(void *ctx, ptrdiff_t k);
} fgd_hook;

#define FGD_HOOK_NAME "fastgd.step_hook"

/* The gradient reduction of data-parallel training (fastgd._nn.GradientReducer.hook(), in a
 * PyCapsule named FGD_REDUCE_NAME): fastgd._nn.Program.train_steps calls run(ctx) after each
 * backward pass and before the updates. buf holds count elements of the program's dtype
 * (NumPy type number typenum): every parameter gradient of the program back to back (op
 * order, dW then db), then one flag element, which the loop sets to 0 (this rank's loss is
 * finite) or 1; run sums buf over the size ranks in place (one MPI_Allreduce), so the flag
 * then counts the ranks whose loss was not finite. rank: this process's rank, 0..size-1.
 * run never returns on a failure of the transport (it aborts the job). */
typedef struct fgd_reduce {
    void (*run)(void *ctx);
    void *ctx;
    void *buf;
    ptrdiff_t count;
    int typenum;
    int rank, size;
} fgd_reduce;

#define FGD_REDUCE_NAME "fastgd.reduce_hook"

#endif
