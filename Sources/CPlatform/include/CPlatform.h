#ifndef EDGE_GATEWAY_CPLATFORM_H
#define EDGE_GATEWAY_CPLATFORM_H
/* Linux calls the gateway needs that belong to no library it wraps (glibc and the kernel).
   Only the Swift module Platform imports this. */

/// Whether the kernel considers the system clock synchronised: adjtimex reports TIME_ERROR while
/// it is not (a hub without a real-time clock before NTP). 1 when synchronised, else 0.
int edge_clock_is_synchronized(void);

/// Gives free heap pages back to the kernel (glibc keeps them in its arenas otherwise); returns
/// malloc_trim's result (1 when memory was released).
int edge_malloc_trim(void);

/// Hands the resident pages of this process's executable file back to the kernel
/// (madvise(MADV_PAGEOUT) over every mapping of the file, found in /proc/self/maps by device and
/// inode, so a binary replaced by an upgrade still counts). Code and data the process goes on
/// using fault back in from the file; pages it wrote (relocated data, globals) are anonymous and
/// stay: no content is ever lost. `before_kb` and `after_kb` get the file's resident kB (the Rss
/// of its mappings in /proc/self/smaps) around the call, -1 where they could not be read.
/// Returns 0, or -errno (EINVAL: a kernel before 5.4, which has no MADV_PAGEOUT).
int edge_release_executable_pages(long *before_kb, long *after_kb);
#endif
