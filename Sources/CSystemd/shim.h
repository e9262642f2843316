#ifndef EDGE_GATEWAY_CSYSTEMD_SHIM_H
#define EDGE_GATEWAY_CSYSTEMD_SHIM_H
#include <sys/uio.h>
/* The gateway sends its own CODE_FILE/CODE_LINE/CODE_FUNC; without this, libsystemd would add the
   location of the wrapper below to every record. */
#define SD_JOURNAL_SUPPRESS_LOCATION 1
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

/// sd_notifyf is variadic; the gateway formats in Swift and sends the finished state string.
static inline int edge_sd_notify(int unset_environment, const char *state) {
    return sd_notify(unset_environment, state);
}

/// sd_journal_send is variadic; sd_journal_sendv takes "FIELD=value" entries as iovecs.
static inline int edge_sd_journal_sendv(const struct iovec *iov, int n) {
    return sd_journal_sendv(iov, n);
}
#endif
