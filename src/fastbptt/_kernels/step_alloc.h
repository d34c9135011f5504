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

/* (raw + 128) rounded down to 64 bytes leaves 65 to 128 bytes before it for the header */
static void *fb_pack_alloc(size_t nbytes, int kind)
{
    unsigned char *raw = fb_pack_raw(nbytes + 128), *p;
    if (raw == NULL) return NULL;
    p = (unsigned char *) (((uintptr_t) raw + 128) & ~(uintptr_t) 63);
    memcpy(p - sizeof raw, &raw, sizeof raw);
    memcpy(p - sizeof raw - sizeof kind, &kind, sizeof kind);
    return p;
}

static int fb_pack_kind(const void *p)
{
    int kind;
    memcpy(&kind, (const unsigned char *) p - sizeof(void *) - sizeof kind, sizeof kind);
    return kind;
}

static void fb_pack_free(void *p)
{
    void *raw;
    if (p == NULL) return;
    memcpy(&raw, (unsigned char *) p - sizeof raw, sizeof raw);
    free(raw);
}

#endif
