/* For step_packing.pyx: loading a shared library at run time (dlopen, or LoadLibrary on
 * Windows), and the buffers of packed weights. A packed buffer is 64-byte aligned (MKL's
 * packed GEMM asks for it) and carries, just before its first byte, the packer that
 * filled it and the pointer malloc returned: the product and the free read the packer
 * from the buffer, so that changing the process's packer (step_packing.set_packer) while
 * a call holds a buffer cannot pair one packer's layout with the other's kernel.
 */
#ifndef FASTBPTT_STEP_ALLOC_H
#define FASTBPTT_STEP_ALLOC_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#include <windows.h>
/* the altered search path: the library's own folder first, where MKL's DLLs sit */
static void *fb_dlopen(const char *path)
{
    return (void *) LoadLibraryExA(path, NULL, LOAD_WITH_ALTERED_SEARCH_PATH);
}
static void *fb_dlsym(void *lib, const char *name)
{
    return (void *) GetProcAddress((HMODULE) lib, name);
}
#else
#include <dlfcn.h>
static void *fb_dlopen(const char *path) { return dlopen(path, RTLD_NOW | RTLD_LOCAL); }
static void *fb_dlsym(void *lib, const char *name) { return dlsym(lib, name); }
#endif

#if defined(__linux__)
#include <sys/mman.h>
#endif
#define FB_HUGE_PAGE ((size_t) 2 << 20)

/* The raw block of a packed buffer: a buffer of FB_HUGE_PAGE bytes or more is read once
 * per step, from L3 or memory, and on 4 KiB pages each pass takes a TLB miss every 4 KiB
 * (the hardware prefetchers stop there too); on Linux it is asked for on 2 MiB pages
 * (2 MiB aligned, whole pages, madvise MADV_HUGEPAGE, which transparent huge pages set to
 * "madvise" or "always" honour; a refusal leaves 4 KiB pages). bench/RESULTS.md, "The own
 * packed micro-kernel: prefetch, K blocking", has what it bought. free() releases both. */
static unsigned char *fb_pack_raw(size_t nbytes)
{
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (nbytes >= FB_HUGE_PAGE) {
        void *mem = NULL;
        size_t len = (nbytes + FB_HUGE_PAGE - 1) & ~(FB_HUGE_PAGE - 1);
        if (posix_memalign(&mem, FB_HUGE_PAGE, len) != 0) return NULL;
        (void) madvise(mem, len, MADV_HUGEPAGE);
        return (unsigned char *) mem;
    }
#endif
    return (unsigned char *) malloc(nbytes);
}

/* The header before a buffer p (65 to 128 bytes are free there; raw + 128 rounded down
 * to 64 bytes): the pointer malloc returned at p - 8, the packer's kind below it, then
 * the buffer's capacity in bytes. */
#define FB_PACK_RAW(p) ((unsigned char *) (p) - sizeof(void *))
#define FB_PACK_KIND(p) (FB_PACK_RAW(p) - sizeof(int))
#define FB_PACK_CAP(p) (FB_PACK_KIND(p) - sizeof(size_t))

static size_t fb_pack_capacity(const void *p)
{
    size_t cap;
    memcpy(&cap, FB_PACK_CAP(p), sizeof cap);
    return cap;
}

static void fb_pack_release(void *p)
{
    void *raw;
    memcpy(&raw, FB_PACK_RAW(p), sizeof raw);
    free(raw);
}

/* Freed buffers are kept for the next call. Why: a forward or backward call packs W_hh
 * into a fresh buffer and frees it at its end; a buffer past malloc's mmap threshold
 * (128 KiB at first, moved up by glibc only as it sees such frees) is then new pages
 * that every call faults in and zeroes, which at B = 1 and 25 steps cost more than the
 * packed product saved (bench/RESULTS.md, "The packed product at B = 1-4"). Calls are
 * sequential in a thread (the forward's buffer is free before the backward packs), so a
 * few slots cover the driver's threads (the batch split's two): a call takes the first
 * kept buffer and keeps it if large enough, else frees it and allocates (so the slots
 * converge to the largest size in use); a free puts the buffer in an empty slot, or in
 * the last one, freeing what was there. Buffers above FB_PACK_KEEP_MAX bytes are not
 * kept: their calls' per-step products dwarf the page faults. The slots are swapped
 * atomically (the kernels run without the GIL); without atomics nothing is kept. */
#define FB_PACK_SLOTS 4
#define FB_PACK_KEEP_MAX ((size_t) 1 << 26)

#if defined(_WIN32) && !defined(__GNUC__)
#define FB_PACK_KEEP 1
#define FB_SWAP(slot, p) InterlockedExchangePointer((PVOID volatile *) (slot), (p))
#define FB_PUT_IF_EMPTY(slot, p) \
    (InterlockedCompareExchangePointer((PVOID volatile *) (slot), (p), NULL) == NULL)
#elif defined(__GNUC__)
#define FB_PACK_KEEP 1
#define FB_SWAP(slot, p) __atomic_exchange_n((slot), (p), __ATOMIC_ACQ_REL)
static int fb_put_if_empty(void **slot, void *p)
{
    void *expected = NULL;
    return __atomic_compare_exchange_n(slot, &expected, p, 0, __ATOMIC_ACQ_REL,
                                       __ATOMIC_ACQUIRE);
}
#define FB_PUT_IF_EMPTY(slot, p) fb_put_if_empty((slot), (p))
#else
#define FB_PACK_KEEP 0
#endif

#if FB_PACK_KEEP
static void *fb_pack_slots[FB_PACK_SLOTS];
#endif

/* Free the kept buffers now (fastbptt.release_workspace); also at exit (or unload), for
 * the memory checkers' sake. A buffer in use by a running call is in no slot. */
#if FB_PACK_KEEP && defined(__GNUC__)
__attribute__((destructor))
#endif
static void fb_pack_release_kept(void)
{
#if FB_PACK_KEEP
    int i;
    for (i = 0; i < FB_PACK_SLOTS; i++) {
        void *p = FB_SWAP(&fb_pack_slots[i], NULL);
        if (p != NULL) fb_pack_release(p);
    }
#endif
}

/* The bytes of the kept buffers (a snapshot: other threads may take or put one meanwhile). */
static size_t fb_pack_kept_bytes(void)
{
    size_t total = 0;
#if FB_PACK_KEEP
    int i;
    for (i = 0; i < FB_PACK_SLOTS; i++) {
        void *p = FB_SWAP(&fb_pack_slots[i], NULL);
        if (p == NULL) continue;
        total += fb_pack_capacity(p);
        if (!FB_PUT_IF_EMPTY(&fb_pack_slots[i], p)) fb_pack_release(p);
    }
#endif
    return total;
}

static void *fb_pack_alloc(size_t nbytes, int kind)
{
    unsigned char *raw, *p = NULL;
#if FB_PACK_KEEP
    int i;
    for (i = 0; i < FB_PACK_SLOTS && p == NULL; i++) {
        void *kept = FB_SWAP(&fb_pack_slots[i], NULL);
        if (kept == NULL) continue;
        if (fb_pack_capacity(kept) >= nbytes)
            p = (unsigned char *) kept;
        else
            fb_pack_release(kept);
    }
#endif
    if (p == NULL) {
        raw = fb_pack_raw(nbytes + 128);
        if (raw == NULL) return NULL;
        p = (unsigned char *) (((uintptr_t) raw + 128) & ~(uintptr_t) 63);
        memcpy(FB_PACK_RAW(p), &raw, sizeof raw);
        memcpy(FB_PACK_CAP(p), &nbytes, sizeof nbytes);
    }
    memcpy(FB_PACK_KIND(p), &kind, sizeof kind);
    return p;
}

static int fb_pack_kind(const void *p)
{
    int kind;
    memcpy(&kind, FB_PACK_KIND(p), sizeof kind);
    return kind;
}

static void fb_pack_free(void *p)
{
    if (p == NULL) return;
#if FB_PACK_KEEP
    if (fb_pack_capacity(p) <= FB_PACK_KEEP_MAX) {
        int i;
        for (i = 0; i < FB_PACK_SLOTS; i++)
            if (FB_PUT_IF_EMPTY(&fb_pack_slots[i], p)) return;
        p = FB_SWAP(&fb_pack_slots[FB_PACK_SLOTS - 1], p);
        if (p == NULL) return;
    }
#endif
    fb_pack_release(p);
}

#endif
