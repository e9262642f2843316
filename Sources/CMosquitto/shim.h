#ifndef EDGE_GATEWAY_CMOSQUITTO_SHIM_H
#define EDGE_GATEWAY_CMOSQUITTO_SHIM_H
#include <mosquitto.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

/* The network thread's own wake-up: an eventfd that any thread signals after queueing a
 * packet, and that the thread drains in one read however many signals piled up (libmosquitto's
 * internal socket pair gives one byte per packet, which its loop reads one per iteration). */
static inline int edge_wakeup_open(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }
static inline void edge_wakeup_signal(int fd) {
    uint64_t one = 1;
    ssize_t written = write(fd, &one, sizeof one);
    (void)written; /* full (2^64 - 2 pending) or closed: a wake-up is pending anyway */
}
static inline void edge_wakeup_drain(int fd) {
    uint64_t count;
    ssize_t got = read(fd, &count, sizeof count);
    (void)got;
}

/* Holds the packets written while corked in the socket, sent as full segments when uncorked: a
 * write pass of many small packets (acks, PUBACKs, forwarded events) costs a few TCP segments
 * instead of one each (libmosquitto writes one packet per write, with TCP_NODELAY). */
static inline void edge_tcp_cork(int fd, int on) { (void)setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on); }
#endif
