#include "CPlatform.h"
#include <malloc.h>
#include <sys/timex.h>

int edge_clock_is_synchronized(void) {
    struct timex info = {0};
    return adjtimex(&info) != TIME_ERROR;
}

int edge_malloc_trim(void) {
    return malloc_trim(0);
}
