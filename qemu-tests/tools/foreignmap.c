/*
 * foreignmap: map frames of another domain through Linux's privcmd driver and
 * report, per frame, whether Xen allowed it. The rig runs it inside a Linux
 * PVH domain labelled like an appliance to test the hypervisor patch and the
 * FLASK policy: in a PVH (auto-translated) domain privcmd's MMAPBATCH_V2 ends
 * in XENMEM_add_to_physmap_range(XENMAPSPACE_gmfn_foreign), i.e. in
 * p2m_add_foreign() and xsm_map_gmfn_foreign().
 *
 *   foreignmap [--hold] DOMID GFN...
 *   foreignmap --fnv [--save FILE] DOMID GFN...
 *
 * --hold keeps the mapping and waits forever after printing "holding" (to
 * test what Xen does when a mapper is destroyed with mappings in place).
 * Prints "gfn <n>: ok <first 8 bytes in hex>" or "gfn <n>: error <errno name>"
 * per frame, then "unmapped" once the mapping is gone again (4.17 does not
 * drop foreign mappings at teardown, so a mapper must unmap). Exit status: 0
 * all frames mapped, 1 any frame refused, 2 usage or set-up error.
 *
 * --fnv (for reading a guest's published pages from dom0) appends to every
 * mapped frame's line " fnv <64-bit FNV-1a of the 4096 bytes, lower-case hex
 * without leading zeros> text <first 8 bytes, '.' for non-printable>";
 * --save FILE also writes the frames' contents, in argument order, to FILE
 * (a refused frame as 4096 zero bytes).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096u
#define MAX_FRAMES 1024u

/* Linux's struct privcmd_mmapbatch_v2 (include/uapi/xen/privcmd.h). */
struct mmapbatch_v2 {
    unsigned int num;
    uint16_t dom;
    uint64_t addr;
    const uint64_t *arr;
    int *err;
};

#define PRIVCMD_MMAPBATCH_V2 _IOC(_IOC_NONE, 'P', 4, sizeof(struct mmapbatch_v2))

static const char *errname(int e)
{
    switch (e) {
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case EINVAL: return "EINVAL";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EFAULT: return "EFAULT";
    case ENOMEM: return "ENOMEM";
    default: return "other";
    }
}

/* 64-bit FNV-1a over one page (offset basis 0xcbf29ce484222325, prime 0x100000001b3). */
static uint64_t fnv1a(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    size_t i;

    for (i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 0);
    if (errno || end == s || *end || v > max)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    static uint64_t gfns[MAX_FRAMES];
    static int errs[MAX_FRAMES];
    static const unsigned char zero[PAGE];
    uint64_t dom;
    const char *save = NULL;
    FILE *out = NULL;
    unsigned int n, i;
    int fd, rc, refused = 0;
    struct mmapbatch_v2 batch;
    unsigned char *va;

    int hold = 0, fnv = 0, save_failed = 0;

    if (argc > 1 && strcmp(argv[1], "--hold") == 0) {
        hold = 1;
        argv++;
        argc--;
    } else if (argc > 1 && strcmp(argv[1], "--fnv") == 0) {
        fnv = 1;
        argv++;
        argc--;
        if (argc > 2 && strcmp(argv[1], "--save") == 0) {
            save = argv[2];
            argv += 2;
            argc -= 2;
        }
    }
    if (argc < 3 || (unsigned int)(argc - 2) > MAX_FRAMES ||
        parse_u64(argv[1], 0x7fef, &dom)) {
        fprintf(stderr, "usage: foreignmap [--hold | --fnv [--save FILE]] DOMID GFN... "
                "(at most %u frames)\n", MAX_FRAMES);
        return 2;
    }
    n = (unsigned int)(argc - 2);
    for (i = 0; i < n; i++) {
        if (parse_u64(argv[i + 2], UINT64_MAX >> 12, &gfns[i])) {
            fprintf(stderr, "foreignmap: bad frame number '%s'\n", argv[i + 2]);
            return 2;
        }
    }

    if (save) {
        out = fopen(save, "wb");
        if (!out) {
            fprintf(stderr, "foreignmap: open %s: %s\n", save, strerror(errno));
            return 2;
        }
    }

    fd = open("/dev/xen/privcmd", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "foreignmap: open /dev/xen/privcmd: %s\n", strerror(errno));
        return 2;
    }
    va = mmap(NULL, (size_t)n * PAGE, PROT_READ, MAP_SHARED, fd, 0);
    if (va == MAP_FAILED) {
        fprintf(stderr, "foreignmap: mmap: %s\n", strerror(errno));
        return 2;
    }

    memset(errs, 0, sizeof(errs));
    memset(&batch, 0, sizeof(batch));
    batch.num = n;
    batch.dom = (uint16_t)dom;
    batch.addr = (uint64_t)(uintptr_t)va;
    batch.arr = gfns;
    batch.err = errs;
    rc = ioctl(fd, PRIVCMD_MMAPBATCH_V2, &batch);
    if (rc < 0 && errno != ENOENT) {
        /* Not a per-frame refusal: report it against every frame. */
        int e = errno;
        for (i = 0; i < n; i++)
            errs[i] = -e;
    }

    for (i = 0; i < n; i++) {
        if (errs[i] == 0) {
            uint64_t first;
            const unsigned char *pg = va + (size_t)i * PAGE;

            memcpy(&first, pg, sizeof(first));
            if (fnv) {
                char text[9];
                unsigned int k;

                for (k = 0; k < 8; k++)
                    text[k] = (pg[k] >= 0x21 && pg[k] <= 0x7e) ? (char)pg[k] : '.';
                text[8] = 0;
                printf("gfn %" PRIu64 ": ok %016" PRIx64 " fnv %" PRIx64 " text %s\n",
                       gfns[i], first, fnv1a(pg, PAGE), text);
            } else {
                printf("gfn %" PRIu64 ": ok %016" PRIx64 "\n", gfns[i], first);
            }
            if (out && fwrite(pg, PAGE, 1, out) != 1)
                save_failed = 1;
        } else {
            printf("gfn %" PRIu64 ": error %s (%d)\n", gfns[i], errname(-errs[i]), errs[i]);
            refused = 1;
            if (out && fwrite(zero, PAGE, 1, out) != 1)
                save_failed = 1;
        }
    }
    if (out && fclose(out) != 0)
        save_failed = 1;

    if (hold) {
        printf("holding\n");
        fflush(stdout);
        for (;;)
            pause();
    }
    if (munmap(va, (size_t)n * PAGE)) {
        fprintf(stderr, "foreignmap: munmap: %s\n", strerror(errno));
        return 2;
    }
    close(fd);
    printf("unmapped\n");
    if (save_failed) {
        fprintf(stderr, "foreignmap: writing %s failed\n", save);
        return 2;
    }
    return refused;
}
