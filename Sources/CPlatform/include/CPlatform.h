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
#endif
