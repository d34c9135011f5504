/* The thread count of the BLAS behind scipy.linalg.cython_blas, read and set from C
 * (blas.pyx's one_thread_begin / one_thread_end around the kernels' time loops).
 *
 * cython_blas hands out pointers to its own wrapper functions, which call the BLAS that
 * scipy links (scipy's wheels: libscipy_openblas, its symbols prefixed scipy_; a source
 * build: a system OpenBLAS, unprefixed). dladdr names the shared object that holds such a
 * pointer; dlopen(RTLD_NOLOAD) gives a handle to it without loading anything, and dlsym on
 * a handle searches the object and then its dependencies, so it finds the BLAS that this
 * very cython_blas calls, not numpy's (another OpenBLAS, with its own thread pool).
 *
 * OpenBLAS's get is a load and its set, to a count it has threads for, a store or two (no
 * lock, no thread created). A BLAS without these symbols (MKL, BLIS, Accelerate) or a
 * platform without dladdr (Windows) leaves both pointers NULL: the count is then never
 * read or changed, and the kernels run as the BLAS chooses.
 */
#ifndef FASTBPTT_BLAS_THREADS_H
#define FASTBPTT_BLAS_THREADS_H

#include <stddef.h>

typedef int (*fb_get_threads_fn)(void);
typedef void (*fb_set_threads_fn)(int);

static fb_get_threads_fn fb_get_threads = NULL;
static fb_set_threads_fn fb_set_threads = NULL;

#if defined(_WIN32)

static int fb_find_thread_control(void *blas_function)
{
    (void) blas_function;
    return 0;
}

#else

#include <dlfcn.h>

static int fb_find_thread_control(void *blas_function)
{
    /* scipy's wheels first, then a plain OpenBLAS; get and set from the same library */
    static const char *const get_names[] = {"scipy_openblas_get_num_threads",
                                            "openblas_get_num_threads"};
    static const char *const set_names[] = {"scipy_openblas_set_num_threads",
                                            "openblas_set_num_threads"};
    Dl_info info;
    void *lib, *get, *set;
    size_t i;
    if (!dladdr(blas_function, &info) || info.dli_fname == NULL)
        return 0;
    lib = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    if (lib == NULL)
        return 0;
    for (i = 0; i < sizeof(get_names) / sizeof(get_names[0]); i++) {
        get = dlsym(lib, get_names[i]);
        set = dlsym(lib, set_names[i]);
        if (get != NULL && set != NULL) {
            fb_get_threads = (fb_get_threads_fn) get;
            fb_set_threads = (fb_set_threads_fn) set;
            break;
        }
    }
    /* the handle is kept: cython_blas stays loaded as long as scipy does anyway */
    return fb_get_threads != NULL;
}

#endif

/* The BLAS's thread count, or 0 when it cannot be read. */
static inline int fb_blas_threads(void)
{
    return fb_get_threads != NULL ? fb_get_threads() : 0;
}

/* Set the BLAS's thread count (n >= 1); nothing when it cannot be set. */
static inline void fb_set_blas_threads(int n)
{
    if (fb_set_threads != NULL)
        fb_set_threads(n);
}

/* One-thread sections (blas.pxd: one_thread_begin / one_thread_end). The first section
 * to start while the count is above one saves the count and sets 1; sections that start
 * while one is open only join it; the last to end restores the saved count. So however
 * calls from several threads overlap, the count is restored once, to the caller's, and
 * fb_callers_threads() reads the caller's count, not the 1 an open section set (the
 * batch split decides by it: its choice must not depend on what runs in another thread).
 * A mutex makes the three steps of each atomic; uncontended it costs tens of ns. */
#if defined(_WIN32)
static void fb_lock(void) {}
static void fb_unlock(void) {}
#else
#include <pthread.h>
static pthread_mutex_t fb_mutex = PTHREAD_MUTEX_INITIALIZER;
static void fb_lock(void) { pthread_mutex_lock(&fb_mutex); }
static void fb_unlock(void) { pthread_mutex_unlock(&fb_mutex); }
#endif

static int fb_open_sections = 0;   /* one-thread sections open now */
static int fb_callers_count = 0;   /* the count the first of them saved */

/* Start a one-thread section; returns 1 when it must be ended, 0 when nothing was set
 * (the count was 1 already, or it cannot be read). */
static int fb_one_thread_begin(void)
{
    int count, joined = 0;
    if (fb_get_threads == NULL)
        return 0;
    fb_lock();
    if (fb_open_sections > 0) {
        fb_open_sections++;
        joined = 1;
    } else {
        count = fb_get_threads();
        if (count > 1) {
            fb_callers_count = count;
            fb_set_threads(1);
            fb_open_sections = 1;
            joined = 1;
        }
    }
    fb_unlock();
    return joined;
}

/* End a section that fb_one_thread_begin returned 1 for. */
static void fb_one_thread_end(int joined)
{
    if (!joined)
        return;
    fb_lock();
    if (--fb_open_sections == 0)
        fb_set_threads(fb_callers_count);
    fb_unlock();
}

/* The caller's count: the saved one while a section is open, else the BLAS's (0 when it
 * cannot be read). */
static int fb_callers_threads(void)
{
    int count;
    if (fb_get_threads == NULL)
        return 0;
    fb_lock();
    count = fb_open_sections > 0 ? fb_callers_count : fb_get_threads();
    fb_unlock();
    return count;
}

#endif
