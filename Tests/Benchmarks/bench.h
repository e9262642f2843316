/*
 * bench.h — small helpers shared by the bench tools (loadgen.c, sink.c, publisher.c, relay.c).
 *
 * Header-only (every function is static inline), so each tool still builds from its one .c file:
 *     gcc -O2 -Wall -Wextra -o loadgen loadgen.c -lmosquitto -lpthread
 *
 * Contents: clocks, option parsing, a network pump for a non-threaded libmosquitto client, and
 * the two tiny JSON look-ups the tools need (no JSON library: payloads are scanned, not parsed).
 */
#ifndef BENCH_H
#define BENCH_H

#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <mosquitto.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS_PER_S 1000000000LL
#define NS_PER_MS 1000000LL

/* Exit statuses shared by the tools. */
enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

/* CLOCK_MONOTONIC in nanoseconds: comparable between processes on one machine. */
static inline int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

/* Wall-clock milliseconds since the Unix epoch (the contract's `timestamp`). */
static inline int64_t epoch_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / NS_PER_MS;
}

static inline double ns_to_s(int64_t ns) { return (double)ns / (double)NS_PER_S; }

/* Parses a non-negative decimal option value, or exits with a usage error. */
static inline uint64_t parse_u64(const char *text, const char *option)
{
    char *end;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-') {
        fprintf(stderr, "invalid value for %s: '%s'\n", option, text);
        exit(EXIT_USAGE);
    }
    return value;
}

/* Set by SIGINT/SIGTERM: the tools stop early and still print their line. */
static volatile sig_atomic_t interrupted;

static inline void on_stop_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static inline void install_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/*
 * Runs one round of network I/O for a non-threaded client: waits up to wait_ns for the socket,
 * then reads every packet that is ready (callbacks run here), flushes pending writes and does
 * keepalive housekeeping. Returns a MOSQ_ERR_* code; anything but MOSQ_ERR_SUCCESS means the
 * connection is gone.
 *
 * Why not mosquitto_loop(): libmosquitto writes a wake-up byte to an internal socket pair on every
 * publish and PUBACK, and mosquitto_loop() drains one byte per call, so it spins once per message.
 * Polling only the MQTT socket avoids that (the wake-up writes just fail with EAGAIN once the
 * non-blocking pair is full, which is harmless).
 *
 * Why the read loop: mosquitto_loop_read() stops after as many packets as it has QoS>0 messages
 * in flight (at least 1) — a subscriber would poll once per message. It also stops when errno is
 * EAGAIN, i.e. the socket is drained, so we call it again until that happens (bounded, so a
 * publisher is not starved by a flood of incoming packets). A stale EAGAIN only ends the loop
 * early; the next poll then returns at once, so nothing is lost.
 */
/* Reads every packet that is ready, at most max_rounds (callbacks run here); see pump(). */
static inline int read_ready(struct mosquitto *mosq, int max_rounds)
{
    for (int round = 0; round < max_rounds; round++) {
        errno = 0;
        int rc = mosquitto_loop_read(mosq, 1);
        if (rc != MOSQ_ERR_SUCCESS) return rc;
        if (mosquitto_socket(mosq) < 0) return MOSQ_ERR_CONN_LOST;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    }
    return MOSQ_ERR_SUCCESS;
}

static inline int pump(struct mosquitto *mosq, int64_t wait_ns)
{
    struct pollfd pfd = { .fd = mosquitto_socket(mosq), .events = POLLIN };
    if (pfd.fd < 0) return MOSQ_ERR_NO_CONN;
    if (mosquitto_want_write(mosq)) pfd.events |= POLLOUT;
    if (wait_ns < 0) wait_ns = 0;
    struct timespec timeout = { .tv_sec = wait_ns / NS_PER_S, .tv_nsec = wait_ns % NS_PER_S };

    int ready = ppoll(&pfd, 1, &timeout, NULL);
    if (ready < 0 && errno != EINTR) return MOSQ_ERR_ERRNO;

    if (ready > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR))) {
        int rc = read_ready(mosq, 64);
        if (rc != MOSQ_ERR_SUCCESS) return rc;
    }
    if (mosquitto_want_write(mosq)) {
        int rc = mosquitto_loop_write(mosq, 1);
        if (rc != MOSQ_ERR_SUCCESS) return rc;
    }
    return mosquitto_loop_misc(mosq);
}

/* Human-readable text for a MOSQ_ERR_* code (MOSQ_ERR_ERRNO means "see errno"). */
static inline const char *mosq_error(int rc)
{
    return rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc);
}

/*
 * Finds `"key"` followed by optional blanks and a colon in payload[0..len), and returns a pointer
 * to the first non-blank byte of the value, or NULL. The first match wins; a string value that
 * happens to equal the key is skipped because no colon follows it.
 */
static inline const char *json_value(const char *payload, size_t len, const char *key)
{
    char quoted[72];
    int qlen = snprintf(quoted, sizeof quoted, "\"%s\"", key);
    if (qlen <= 0 || (size_t)qlen >= sizeof quoted) return NULL;

    const char *end = payload + len;
    const char *p = payload;
    while ((p = memmem(p, (size_t)(end - p), quoted, (size_t)qlen)) != NULL) {
        const char *v = p + qlen;
        while (v < end && (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r')) v++;
        if (v < end && *v == ':') {
            v++;
            while (v < end && (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r')) v++;
            return v < end ? v : NULL;
        }
        p += qlen;
    }
    return NULL;
}

/* The raw (still escaped) bytes of a string value: sets *out and *out_len, returns false if absent. */
static inline bool json_string(const char *payload, size_t len, const char *key,
                               const char **out, size_t *out_len)
{
    const char *v = json_value(payload, len, key);
    const char *end = payload + len;
    if (v == NULL || *v != '"') return false;
    const char *s = ++v;
    while (v < end && *v != '"') v += (*v == '\\') ? 2 : 1;
    if (v >= end) return false;
    *out = s;
    *out_len = (size_t)(v - s);
    return true;
}

/* An integer value (optionally negative): sets *out, returns false if absent or not a number. */
static inline bool json_int(const char *payload, size_t len, const char *key, int64_t *out)
{
    const char *v = json_value(payload, len, key);
    const char *end = payload + len;
    if (v == NULL) return false;
    bool negative = (*v == '-');
    if (negative) v++;
    if (v >= end || *v < '0' || *v > '9') return false;
    int64_t value = 0;
    while (v < end && *v >= '0' && *v <= '9') value = value * 10 + (*v++ - '0');
    *out = negative ? -value : value;
    return true;
}

#endif /* BENCH_H */
