/*
 * publisher — baseline: one plain libmosquitto QoS 1 publisher with a bounded in-flight window.
 *
 *   publisher -p PORT -n COUNT [-h 127.0.0.1] [-s SIZE=256] [-w INFLIGHT=100]
 *             [-t TOPIC=hubs/bench/events/dev1] [-T TIMEOUT_S=120]
 *
 * Publishes COUNT messages of exactly SIZE bytes (never fewer than the fixed fields, ~170 bytes)
 * to TOPIC, with at most INFLIGHT awaiting their PUBACK — the same meaning as the gateway's
 * upstream.inflight: mosquitto_max_inflight_messages_set(INFLIGHT), and no further publish is
 * queued while INFLIGHT are unacknowledged. Each message looks like the gateway's upstream envelope
 * (deviceId = the topic's last level), with the CLOCK_MONOTONIC publish time in data.t so a sink
 * on the same broker can measure latency:
 *
 *   {"eventId":"e<N>","hubId":"bench","deviceId":"dev1","type":"bench","key":"dev1",
 *    "timestamp":<ms>,"receivedAt":<ms>,"data":{"t":<ns>,"pad":"xxx..."}}
 *
 * Times from the CONNACK to the last PUBACK and prints one line on stdout:
 *   sent= acked= seconds= rate=          (rate = acked / seconds)
 * Exit status: 0 when every message was acknowledged, 1 on a failure, timeout or interrupt (the
 * line is still printed), 2 on a usage error.
 */
#include "bench.h"

#include <getopt.h>
#include <unistd.h>

#define PUMP_SLICE_NS (100 * NS_PER_MS)

static struct {
    const char *host;
    int port;
    uint64_t count;
    size_t size;
    unsigned inflight;
    const char *topic;
    uint64_t timeout_s;
} opt = { .host = "127.0.0.1", .size = 256, .inflight = 100, .topic = "hubs/bench/events/dev1",
          .timeout_s = 120 };

static struct {
    bool connack_seen;
    int connack_rc;
    uint64_t sent, acked;
    int64_t connack_ns, last_ack_ns;
} state;

static void on_connect(struct mosquitto *mosq, void *obj, int rc)
{
    (void)mosq;
    (void)obj;
    state.connack_seen = true;
    state.connack_rc = rc;
    state.connack_ns = now_ns();
}

static void on_publish(struct mosquitto *mosq, void *obj, int mid)
{
    (void)mosq;
    (void)obj;
    (void)mid;
    state.acked++;
    state.last_ack_ns = now_ns();
}

static void usage(FILE *out)
{
    fprintf(out, "usage: publisher -p PORT -n COUNT [-h HOST=127.0.0.1] [-s SIZE=256] [-w INFLIGHT=100]\n"
                 "                 [-t TOPIC=hubs/bench/events/dev1] [-T TIMEOUT_S=120]\n");
}

static void parse_options(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'H' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "h:p:n:s:w:t:T:", long_options, NULL)) != -1) {
        switch (c) {
        case 'h': opt.host = optarg; break;
        case 'p': opt.port = (int)parse_u64(optarg, "-p"); break;
        case 'n': opt.count = parse_u64(optarg, "-n"); break;
        case 's': opt.size = (size_t)parse_u64(optarg, "-s"); break;
        case 'w': opt.inflight = (unsigned)parse_u64(optarg, "-w"); break;
        case 't': opt.topic = optarg; break;
        case 'T': opt.timeout_s = parse_u64(optarg, "-T"); break;
        case 'H': usage(stdout); exit(EXIT_OK);
        default: usage(stderr); exit(EXIT_USAGE);
        }
    }
    if (optind != argc || opt.port <= 0 || opt.port > 65535 || opt.count == 0 || opt.inflight == 0 ||
        opt.inflight > 65535 || opt.size > 256 * 1024 * 1024) {
        usage(stderr);
        exit(EXIT_USAGE);
    }
}

/* Writes message number n into buf (capacity opt.size + 512) and returns its length. */
static int build_payload(char *buf, const char *device, uint64_t n)
{
    static const char tail[] = "\"}}";
    const size_t tail_len = sizeof tail - 1;
    int64_t ms = epoch_ms();
    int head = snprintf(buf, opt.size + 512,
                        "{\"eventId\":\"e%" PRIu64 "\",\"hubId\":\"bench\",\"deviceId\":\"%.64s\","
                        "\"type\":\"bench\",\"key\":\"%.64s\",\"timestamp\":%" PRId64
                        ",\"receivedAt\":%" PRId64 ",\"data\":{\"t\":%" PRId64 ",\"pad\":\"",
                        n, device, device, ms, ms, now_ns());
    size_t pad = opt.size > (size_t)head + tail_len ? opt.size - (size_t)head - tail_len : 0;
    memset(buf + head, 'x', pad);
    memcpy(buf + head + pad, tail, tail_len);
    return (int)((size_t)head + pad + tail_len);
}

/* Publishes and pumps until every message is acknowledged; returns an exit status. */
static int run(struct mosquitto *mosq, int64_t deadline)
{
    const char *slash = strrchr(opt.topic, '/');
    const char *device = slash ? slash + 1 : opt.topic;
    char *payload = malloc(opt.size + 512);
    if (payload == NULL) {
        fprintf(stderr, "publisher: out of memory\n");
        return EXIT_FAILED;
    }

    int status = EXIT_OK;
    while (state.acked < opt.count) {
        int64_t now = now_ns();
        if (interrupted || now >= deadline) {
            fprintf(stderr, "publisher: %s: %" PRIu64 "/%" PRIu64 " acknowledged\n",
                    interrupted ? "interrupted" : "timed out", state.acked, opt.count);
            status = EXIT_FAILED;
            break;
        }
        while (state.sent < opt.count && state.sent - state.acked < opt.inflight) {
            int len = build_payload(payload, device, state.sent + 1);
            int rc = mosquitto_publish(mosq, NULL, opt.topic, len, payload, 1, false);
            if (rc != MOSQ_ERR_SUCCESS) {
                fprintf(stderr, "publisher: publish failed: %s\n", mosq_error(rc));
                free(payload);
                return EXIT_FAILED;
            }
            state.sent++;
        }
        int rc = pump(mosq, deadline - now < PUMP_SLICE_NS ? deadline - now : PUMP_SLICE_NS);
        if (rc != MOSQ_ERR_SUCCESS) {
            fprintf(stderr, "publisher: connection lost: %s\n", mosq_error(rc));
            status = EXIT_FAILED;
            break;
        }
    }
    free(payload);
    return status;
}

/* Pumps until the CONNACK; false (reported) on error or timeout. */
static bool await_connack(struct mosquitto *mosq, int64_t deadline)
{
    while (!state.connack_seen) {
        int64_t now = now_ns();
        if (interrupted || now >= deadline) {
            fprintf(stderr, "publisher: no CONNACK before the timeout\n");
            return false;
        }
        int rc = pump(mosq, deadline - now < PUMP_SLICE_NS ? deadline - now : PUMP_SLICE_NS);
        if (rc != MOSQ_ERR_SUCCESS) {
            fprintf(stderr, "publisher: connection lost waiting for CONNACK: %s\n", mosq_error(rc));
            return false;
        }
    }
    if (state.connack_rc != 0) {
        fprintf(stderr, "publisher: connection refused: %s\n", mosquitto_connack_string(state.connack_rc));
        return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    parse_options(argc, argv);
    install_stop_signals();
    mosquitto_lib_init();
    int64_t deadline = now_ns() + (int64_t)opt.timeout_s * NS_PER_S;

    char client_id[64];
    snprintf(client_id, sizeof client_id, "publisher-%ld", (long)getpid());
    struct mosquitto *mosq = mosquitto_new(client_id, true, NULL);
    if (mosq == NULL) {
        fprintf(stderr, "publisher: mosquitto_new failed: %s\n", strerror(errno));
        return EXIT_FAILED;
    }
    mosquitto_connect_callback_set(mosq, on_connect);
    mosquitto_publish_callback_set(mosq, on_publish);
    mosquitto_max_inflight_messages_set(mosq, opt.inflight);

    int status = EXIT_FAILED;
    int rc = mosquitto_connect(mosq, opt.host, opt.port, 60);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "publisher: connect to %s:%d failed: %s\n", opt.host, opt.port, mosq_error(rc));
    } else if (await_connack(mosq, deadline)) {
        status = run(mosq, deadline);
    }

    double seconds = state.last_ack_ns > state.connack_ns ? ns_to_s(state.last_ack_ns - state.connack_ns) : 0.0;
    printf("sent=%" PRIu64 " acked=%" PRIu64 " seconds=%.3f rate=%.0f\n", state.sent, state.acked, seconds,
           seconds > 0 ? (double)state.acked / seconds : 0.0);
    fflush(stdout);

    mosquitto_disconnect(mosq);
    mosquitto_destroy(mosq);
    mosquitto_lib_cleanup();
    return status;
}
