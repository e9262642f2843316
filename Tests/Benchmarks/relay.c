/*
 * relay — the least any gateway must do for the device contract, as a yardstick: no store, no checks.
 *
 *   relay -p DEVICE_PORT -u UPSTREAM_PORT [-h 127.0.0.1] [-a ACK_QOS=1] [-w UPSTREAM_INFLIGHT=100]
 *         [-c CLIENT_ID=relay-{pid}] [--ready-file PATH] [-T TIMEOUT_S=600]
 *
 * Subscribes to device/+/event (QoS 1) on the device broker and, for every event, publishes the
 * contract's two messages: the ack `{"eventId":"…","status":"stored"}` to device/{id}/ack (QoS
 * ACK_QOS) and the event to hubs/bench/events/{id} on the upstream broker (QoS 1, the gateway's
 * envelope around the device's payload, so the bytes are alike). It stores nothing and checks
 * nothing: end to end through it is an upper bound for a gateway that keeps CONTRACTS.md §1 and §2
 * (one ack message per event through the device broker, one upstream message per event), on the same
 * brokers, clients and machine. `scripts/bench` section 2 runs it beside the bridge and the gateway.
 *
 * One thread, both connections non-blocking, polled together (bench.h's pump() for one client,
 * here for two). Runs until SIGINT/SIGTERM or TIMEOUT_S; prints `relayed=N` on stdout at the end.
 */
#include "bench.h"

#include <getopt.h>
#include <unistd.h>

static struct {
    const char *host;
    int device_port, upstream_port, ack_qos, inflight;
    uint64_t timeout_s;
    const char *client_id, *ready_file;
} opt = { .host = "127.0.0.1", .ack_qos = 1, .inflight = 100, .timeout_s = 600 };

static struct mosquitto *device_client, *upstream_client;
static uint64_t relayed;
static bool subscribed;

static void on_message(struct mosquitto *mosq, void *userdata, const struct mosquitto_message *m)
{
    (void)mosq; (void)userdata;
    /* device/{id}/event */
    const char *topic = m->topic;
    if (strncmp(topic, "device/", 7) != 0) return;
    const char *id = topic + 7;
    const char *slash = strchr(id, '/');
    if (slash == NULL || slash == id || slash - id > 64) return;
    int id_len = (int)(slash - id);
    const char *event_id;
    size_t event_id_len;
    if (!json_string(m->payload, (size_t)m->payloadlen, "eventId", &event_id, &event_id_len) || event_id_len > 64) return;

    char ack_topic[96], ack[160];
    snprintf(ack_topic, sizeof ack_topic, "device/%.*s/ack", id_len, id);
    int ack_len = snprintf(ack, sizeof ack, "{\"eventId\":\"%.*s\",\"status\":\"stored\"}", (int)event_id_len, event_id);
    mosquitto_publish(device_client, NULL, ack_topic, ack_len, ack, opt.ack_qos, false);

    char up_topic[128];
    snprintf(up_topic, sizeof up_topic, "hubs/bench/events/%.*s", id_len, id);
    char envelope[70000];
    int head = snprintf(envelope, sizeof envelope,
                        "{\"eventId\":\"%.*s\",\"hubId\":\"bench\",\"deviceId\":\"%.*s\",\"type\":\"reading\",\"key\":\"%.*s\","
                        "\"timestamp\":0,\"receivedAt\":%" PRId64 ",\"data\":",
                        (int)event_id_len, event_id, id_len, id, id_len, id, epoch_ms());
    if (head < 0 || (size_t)head + (size_t)m->payloadlen + 1 > sizeof envelope) return;
    memcpy(envelope + head, m->payload, (size_t)m->payloadlen);
    envelope[head + m->payloadlen] = '}';
    mosquitto_publish(upstream_client, NULL, up_topic, head + m->payloadlen + 1, envelope, 1, false);
    relayed++;
}

static void on_subscribe(struct mosquitto *mosq, void *userdata, int mid, int count, const int *granted)
{
    (void)mosq; (void)userdata; (void)mid;
    if (count < 1 || granted[0] > 2) {
        fprintf(stderr, "relay: subscription refused\n");
        exit(EXIT_FAILED);
    }
    subscribed = true;
}

static struct mosquitto *connect_client(const char *suffix, int port, int inflight)
{
    char id[128];
    snprintf(id, sizeof id, "%s-%s", opt.client_id, suffix);
    struct mosquitto *mosq = mosquitto_new(id, true, NULL);
    if (mosq == NULL) { perror("mosquitto_new"); exit(EXIT_FAILED); }
    mosquitto_max_inflight_messages_set(mosq, (unsigned)inflight);
    int rc = mosquitto_connect(mosq, opt.host, port, 60);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "relay: connect to port %d: %s\n", port, mosq_error(rc));
        exit(EXIT_FAILED);
    }
    return mosq;
}

int main(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "ready-file", required_argument, NULL, 'R' }, { NULL, 0, NULL, 0 },
    };
    char default_id[64];
    snprintf(default_id, sizeof default_id, "relay-%d", (int)getpid());
    opt.client_id = default_id;
    int c;
    while ((c = getopt_long(argc, argv, "h:p:u:a:w:c:T:", long_options, NULL)) != -1) {
        switch (c) {
        case 'h': opt.host = optarg; break;
        case 'p': opt.device_port = (int)parse_u64(optarg, "-p"); break;
        case 'u': opt.upstream_port = (int)parse_u64(optarg, "-u"); break;
        case 'a': opt.ack_qos = (int)parse_u64(optarg, "-a"); break;
        case 'w': opt.inflight = (int)parse_u64(optarg, "-w"); break;
        case 'c': opt.client_id = optarg; break;
        case 'T': opt.timeout_s = parse_u64(optarg, "-T"); break;
        case 'R': opt.ready_file = optarg; break;
        default:
            fprintf(stderr, "usage: relay -p DEVICE_PORT -u UPSTREAM_PORT [-h HOST] [-a ACK_QOS] [-w INFLIGHT] [-c ID] [--ready-file PATH] [-T S]\n");
            return EXIT_USAGE;
        }
    }
    if (opt.device_port == 0 || opt.upstream_port == 0 || opt.ack_qos > 1) {
        fprintf(stderr, "relay: -p and -u are required; -a is 0 or 1\n");
        return EXIT_USAGE;
    }
    install_stop_signals();
    mosquitto_lib_init();
    upstream_client = connect_client("up", opt.upstream_port, opt.inflight);
    device_client = connect_client("dev", opt.device_port, 100);
    mosquitto_message_callback_set(device_client, on_message);
    mosquitto_subscribe_callback_set(device_client, on_subscribe);
    mosquitto_subscribe(device_client, NULL, "device/+/event", 1);

    int64_t deadline = now_ns() + (int64_t)opt.timeout_s * NS_PER_S;
    bool ready_written = false;
    while (!interrupted && now_ns() < deadline) {
        struct mosquitto *clients[2] = { device_client, upstream_client };
        struct pollfd fds[2];
        for (int i = 0; i < 2; i++) {
            fds[i].fd = mosquitto_socket(clients[i]);
            fds[i].events = POLLIN | (mosquitto_want_write(clients[i]) ? POLLOUT : 0);
            fds[i].revents = 0;
            if (fds[i].fd < 0) { fprintf(stderr, "relay: connection lost\n"); return EXIT_FAILED; }
        }
        if (poll(fds, 2, 100) < 0 && errno != EINTR) { perror("poll"); return EXIT_FAILED; }
        for (int i = 0; i < 2; i++) {
            int rc = MOSQ_ERR_SUCCESS;
            if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) rc = read_ready(clients[i], 256);
            if (rc == MOSQ_ERR_SUCCESS) rc = mosquitto_loop_misc(clients[i]);
            if (rc != MOSQ_ERR_SUCCESS) { fprintf(stderr, "relay: %s\n", mosq_error(rc)); return EXIT_FAILED; }
        }
        /* After the reads: what they queued on either client goes out in this pass. */
        for (int i = 0; i < 2; i++) {
            if (mosquitto_want_write(clients[i])) {
                int rc = mosquitto_loop_write(clients[i], 1);
                if (rc != MOSQ_ERR_SUCCESS) { fprintf(stderr, "relay: %s\n", mosq_error(rc)); return EXIT_FAILED; }
            }
        }
        if (subscribed && !ready_written && opt.ready_file != NULL) {
            FILE *f = fopen(opt.ready_file, "w");
            if (f != NULL) fclose(f);
            ready_written = true;
        }
    }
    printf("relayed=%" PRIu64 "\n", relayed);
    return EXIT_OK;
}
