/* A libnfs client for scripts/bench: the same NFSv3 operations against any server, from one
 * process, timed here so that process start-up and mount are not counted.
 *
 *   nfsops URL files DIR N [sync]  create+write 4 KiB, read back, stat, delete N files;
 *                                with sync, print each phase's time as it ends (one JSON
 *                                object a line) and wait for a line on stdin before the
 *                                next: the runner starts each phase of all clients at once
 *   nfsops URL populate DIR N    create N empty files
 *   nfsops URL list DIR          read the whole directory (READDIRPLUS)
 *   nfsops URL randio FILE SIZE OPS r|w SEED   4 KiB pread/pwrite at random offsets
 *
 * URL is nfs://host/export?version=3&nfsport=P&mountport=M.  Prints one JSON object.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <nfsc/libnfs.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(struct nfs_context *nfs, const char *what, const char *path) {
    fprintf(stderr, "%s %s: %s\n", what, path, nfs_get_error(nfs));
    exit(1);
}

/* files ... sync: report a phase, then wait for the runner's go (none after the last). */
static double phase_end(int sync, const char *name, double start, int last) {
    double secs = now() - start;
    if (sync) {
        char line[16];
        printf("{\"%s\": %.6f}\n", name, secs);
        fflush(stdout);
        if (!last && fgets(line, sizeof line, stdin) == NULL) {
            fprintf(stderr, "phase %s: the runner went away\n", name);
            exit(1);
        }
    }
    return secs;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: nfsops URL files|populate|list|randio ...\n");
        return 2;
    }
    struct nfs_context *nfs = nfs_init_context();
    struct nfs_url *url = nfs_parse_url_dir(nfs, argv[1]);
    if (url == NULL) die(nfs, "url", argv[1]);
    if (nfs_mount(nfs, url->server, url->path) != 0) die(nfs, "mount", url->path);
    const char *mode = argv[2];
    char path[4096];
    static char buf[4096];
    memset(buf, 'x', sizeof buf);
    if (!strcmp(mode, "files") || !strcmp(mode, "populate")) {
        const char *dir = argv[3];
        int n = atoi(argv[4]);
        int sync = argc > 5 && !strcmp(argv[5], "sync");
        nfs_mkdir(nfs, dir); /* may exist */
        double t0 = now();
        for (int i = 0; i < n; i++) {
            struct nfsfh *fh;
            snprintf(path, sizeof path, "%s/f%06d", dir, i);
            if (nfs_creat(nfs, path, 0644, &fh) != 0) die(nfs, "creat", path);
            if (mode[0] == 'f' && nfs_write(nfs, fh, sizeof buf, buf) != sizeof buf)
                die(nfs, "write", path);
            nfs_close(nfs, fh);
        }
        if (mode[0] == 'p') {
            printf("{\"create\": %.6f}\n", now() - t0);
            return 0;
        }
        double created = phase_end(sync, "create", t0, 0);
        double t1 = now();
        for (int i = 0; i < n; i++) {
            struct nfsfh *fh;
            snprintf(path, sizeof path, "%s/f%06d", dir, i);
            if (nfs_open(nfs, path, O_RDONLY, &fh) != 0) die(nfs, "open", path);
            if (nfs_read(nfs, fh, sizeof buf, buf) != sizeof buf) die(nfs, "read", path);
            nfs_close(nfs, fh);
        }
        double readback = phase_end(sync, "read", t1, 0);
        double t2 = now();
        for (int i = 0; i < n; i++) {
            struct nfs_stat_64 st;
            snprintf(path, sizeof path, "%s/f%06d", dir, i);
            if (nfs_stat64(nfs, path, &st) != 0 || st.nfs_size != sizeof buf)
                die(nfs, "stat", path);
        }
        double statted = phase_end(sync, "stat", t2, 0);
        double t3 = now();
        for (int i = 0; i < n; i++) {
            snprintf(path, sizeof path, "%s/f%06d", dir, i);
            if (nfs_unlink(nfs, path) != 0) die(nfs, "unlink", path);
        }
        double deleted = phase_end(sync, "delete", t3, 1);
        if (!sync)
            printf("{\"create\": %.6f, \"read\": %.6f, \"stat\": %.6f, \"delete\": %.6f}\n",
                   created, readback, statted, deleted);
    } else if (!strcmp(mode, "list")) {
        struct nfsdir *d;
        double t0 = now();
        if (nfs_opendir(nfs, argv[3], &d) != 0) die(nfs, "opendir", argv[3]);
        long n = 0;
        while (nfs_readdir(nfs, d) != NULL) n++;
        nfs_closedir(nfs, d);
        printf("{\"entries\": %ld, \"secs\": %.6f}\n", n, now() - t0);
    } else if (!strcmp(mode, "randio")) {
        const char *file = argv[3];
        uint64_t size = strtoull(argv[4], NULL, 10);
        long ops = atol(argv[5]);
        int writing = argv[6][0] == 'w';
        srand48(atol(argv[7]));
        struct nfsfh *fh;
        if (nfs_open(nfs, file, writing ? O_RDWR : O_RDONLY, &fh) != 0) die(nfs, "open", file);
        uint64_t pages = size / 4096;
        double t0 = now();
        for (long i = 0; i < ops; i++) {
            uint64_t off = (uint64_t)(drand48() * pages) * 4096;
            int r = writing ? nfs_pwrite(nfs, fh, off, 4096, buf)
                            : nfs_pread(nfs, fh, off, 4096, buf);
            if (r != 4096) die(nfs, writing ? "pwrite" : "pread", file);
        }
        double t1 = now();
        nfs_close(nfs, fh);
        printf("{\"ops\": %ld, \"secs\": %.6f}\n", ops, t1 - t0);
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    nfs_destroy_url(url);
    nfs_destroy_context(nfs);
    return 0;
}
