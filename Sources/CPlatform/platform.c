#define _GNU_SOURCE
#include "CPlatform.h"
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/timex.h>
#include <unistd.h>

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

int edge_clock_is_synchronized(void) {
    struct timex info = {0};
    return adjtimex(&info) != TIME_ERROR;
}

int edge_malloc_trim(void) {
    return malloc_trim(0);
}

/* The executable file: its device and inode, and its path (readlink of /proc/self/exe). */
struct executable {
    struct stat file;
    char path[4096];
};

/* Whether a /proc/self/maps (or smaps header) line maps the executable; its range in lo/hi. The
   device and inode decide; the path too, where a file system (overlayfs) shows another pair there
   than stat does. */
static int maps_executable(const char *line, const struct executable *exe, uintptr_t *lo, uintptr_t *hi) {
    unsigned long start, end, offset, inode;
    unsigned int major, minor;
    char perms[8];
    int pathAt = 0;
    if (sscanf(line, "%lx-%lx %7s %lx %x:%x %lu %n", &start, &end, perms, &offset, &major, &minor, &inode, &pathAt) < 7) return 0;
    int same = inode == (unsigned long)exe->file.st_ino && makedev(major, minor) == exe->file.st_dev;
    if (!same && pathAt > 0 && exe->path[0] == '/') {
        size_t length = strlen(exe->path);
        const char *path = line + pathAt;
        same = strncmp(path, exe->path, length) == 0 && (path[length] == '\n' || path[length] == '\0' || strncmp(path + length, " (deleted)", 10) == 0);
    }
    if (!same) return 0;
    *lo = start;
    *hi = end;
    return 1;
}

/* The Rss (kB) of the file's mappings, from /proc/self/smaps; -1 when it cannot be read. A mapping
   starts with its header line ("lo-hi perms offset dev inode path", lowercase hex first), followed
   by its fields ("Rss:   12 kB", a capital first). */
static long resident_kb(const struct executable *exe) {
    FILE *smaps = fopen("/proc/self/smaps", "re");
    if (!smaps) return -1;
    char line[512];
    long total = 0, kb;
    int inside = 0;
    uintptr_t lo, hi;
    while (fgets(line, sizeof line, smaps)) {
        int whole = strchr(line, '\n') != NULL;
        if ((line[0] >= '0' && line[0] <= '9') || (line[0] >= 'a' && line[0] <= 'f')) {
            inside = maps_executable(line, exe, &lo, &hi);
        } else if (inside && sscanf(line, "Rss: %ld kB", &kb) == 1) {
            total += kb;
        }
        /* a line longer than the buffer (a long path) continues in the next read: skip its rest */
        while (!whole && fgets(line, sizeof line, smaps)) whole = strchr(line, '\n') != NULL;
    }
    fclose(smaps);
    return total;
}

int edge_release_executable_pages(long *before_kb, long *after_kb) {
    *before_kb = -1;
    *after_kb = -1;
    struct executable exe;
    if (stat("/proc/self/exe", &exe.file) != 0) return -errno;
    ssize_t length = readlink("/proc/self/exe", exe.path, sizeof exe.path - 1);
    exe.path[length > 0 ? length : 0] = '\0';
    *before_kb = resident_kb(&exe);
    /* The ranges first, then the calls: the list does not change under the reading. */
    enum { most = 64 };
    uintptr_t ranges[most][2];
    int count = 0;
    FILE *maps = fopen("/proc/self/maps", "re");
    if (!maps) return -errno;
    char line[512];
    while (count < most && fgets(line, sizeof line, maps)) {
        int whole = strchr(line, '\n') != NULL;
        if (maps_executable(line, &exe, &ranges[count][0], &ranges[count][1])) count++;
        while (!whole && fgets(line, sizeof line, maps)) whole = strchr(line, '\n') != NULL;
    }
    fclose(maps);
    int result = 0;
    for (int i = 0; i < count; i++) {
        if (madvise((void *)ranges[i][0], ranges[i][1] - ranges[i][0], MADV_PAGEOUT) != 0 && result == 0) result = -errno;
    }
    *after_kb = resident_kb(&exe);
    return result;
}
