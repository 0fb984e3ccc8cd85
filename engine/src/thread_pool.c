/* A small fork-join pool for the CPU backend.
 *
 * Why not OpenMP: libgomp's workers spin at every barrier, and inside a
 * GStreamer pipeline the decoder and other elements want the same cores; on
 * a loaded 2-core machine a spinning barrier made one inference 5x slower.
 * Here workers spin only briefly, then sleep on a condition variable, and
 * the calling thread always does a share of the work itself. */
#include "vim-private.h"

#define SPIN_ITERATIONS 20000

typedef struct {
  VimThreadPool *pool;
  int index;                  /* worker i runs part i + 1 (part 0 is the caller's) */
  GThread *thread;
} Worker;

struct _VimThreadPool {
  int n_threads;              /* including the caller */
  Worker *workers;
  GMutex lock;
  GCond wake;
  GCond done;
  guint generation;           /* bumped for every job */
  gboolean quit;
  /* the current job */
  VimParallelFn fn;
  void *ctx;
  int n_items;
  gint pending;               /* workers still running this job */
};

static void
run_part (VimThreadPool *p, int part)
{
  int begin = (int) ((gint64) p->n_items * part / p->n_threads);
  int end = (int) ((gint64) p->n_items * (part + 1) / p->n_threads);
  if (end > begin)
    p->fn (p->ctx, begin, end);
}

static gpointer
worker_main (gpointer data)
{
  Worker *w = data;
  VimThreadPool *p = w->pool;
  guint seen = 0;
  for (;;) {
    /* a short spin catches the next layer's job without a sleep/wake */
    for (int i = 0; i < SPIN_ITERATIONS
        && (guint) g_atomic_int_get ((gint *) &p->generation) == seen; i++)
      ;
    g_mutex_lock (&p->lock);
    while (p->generation == seen && !p->quit)
      g_cond_wait (&p->wake, &p->lock);
    if (p->quit) {
      g_mutex_unlock (&p->lock);
      return NULL;
    }
    seen = p->generation;
    g_mutex_unlock (&p->lock);

    run_part (p, w->index + 1);

    if (g_atomic_int_dec_and_test (&p->pending)) {
      g_mutex_lock (&p->lock);
      g_cond_signal (&p->done);
      g_mutex_unlock (&p->lock);
    }
  }
}

VimThreadPool *
vim_thread_pool_new (int n_threads, GError **error)
{
  VimThreadPool *p = g_new0 (VimThreadPool, 1);
  p->n_threads = MAX (1, n_threads);
  g_mutex_init (&p->lock);
  g_cond_init (&p->wake);
  g_cond_init (&p->done);
  p->workers = g_new0 (Worker, p->n_threads - 1);
  for (int i = 0; i < p->n_threads - 1; i++) {
    p->workers[i].pool = p;
    p->workers[i].index = i;
    p->workers[i].thread = g_thread_try_new ("vim-cpu", worker_main,
        &p->workers[i], error);
    if (p->workers[i].thread == NULL) {
      p->n_threads = i + 1;   /* free joins only the threads that exist */
      vim_thread_pool_free (p);
      return NULL;
    }
  }
  return p;
}

void
vim_thread_pool_free (VimThreadPool *p)
{
  if (p == NULL)
    return;
  g_mutex_lock (&p->lock);
  p->quit = TRUE;
  g_cond_broadcast (&p->wake);
  g_mutex_unlock (&p->lock);
  for (int i = 0; i < p->n_threads - 1; i++)
    if (p->workers[i].thread)
      g_thread_join (p->workers[i].thread);
  g_free (p->workers);
  g_mutex_clear (&p->lock);
  g_cond_clear (&p->wake);
  g_cond_clear (&p->done);
  g_free (p);
}

int
vim_thread_pool_size (const VimThreadPool *p)
{
  return p->n_threads;
}

void
vim_parallel_for (VimThreadPool *p, int n_items, VimParallelFn fn, void *ctx)
{
  if (n_items <= 0)
    return;
  if (p == NULL || p->n_threads == 1 || n_items == 1) {
    fn (ctx, 0, n_items);
    return;
  }
  g_mutex_lock (&p->lock);
  p->fn = fn;
  p->ctx = ctx;
  p->n_items = n_items;
  g_atomic_int_set (&p->pending, p->n_threads - 1);
  g_atomic_int_inc ((gint *) &p->generation);
  g_cond_broadcast (&p->wake);
  g_mutex_unlock (&p->lock);

  run_part (p, 0);

  for (int i = 0; i < SPIN_ITERATIONS && g_atomic_int_get (&p->pending) > 0; i++)
    ;
  g_mutex_lock (&p->lock);
  while (g_atomic_int_get (&p->pending) > 0)
    g_cond_wait (&p->done, &p->lock);
  g_mutex_unlock (&p->lock);
}
