/*
 * sink — counts, de-duplicates and times the events arriving on an MQTT broker.
 *
 *   sink -p PORT [-h 127.0.0.1] [-t FILTER=hubs/#]... [-n EXPECTED=0] [-T TIMEOUT_S=120]
 *        [-q QOS=1] [-c CLIENT_ID=sink-{pid}] [--ready-file PATH] [--persistent]
 *
 * Subscribes to every -t FILTER (several may be given) with a clean session (--persistent: a
 * persistent one, so messages queued for CLIENT_ID while it was away arrive first) and, once the SUBACK
 * is in, creates --ready-file PATH so a script can wait for it before starting the load. For each
 * message it reads, without a JSON parser:
 *   - "t":<integer> — the device's CLOCK_MONOTONIC publish time (inside `data`, in raw device
 *     events and in the gateway's upstream envelope alike); latency = arrival - t;
 *   - "eventId":"..." and the device: the "deviceId" field if present, else the topic — the
 *     second level of device/{id}/..., otherwise the last level (hubs/{hub}/events/{deviceId}).
 * The same device+eventId twice is a duplicate; among eventIds of the form e<N>, a first arrival
 * with a smaller N than one already seen from that device is an order violation. A message without
 * an eventId counts as distinct (there is nothing to de-duplicate it by).
 *
 * Ends when EXPECTED distinct events have arrived (exit 0), at the timeout (exit 1 when EXPECTED
 * was given and not reached, 0 with -n 0, which simply listens for TIMEOUT_S), on SIGINT/SIGTERM
 * (exit 1 unless EXPECTED was reached) or when the connection fails (exit 1). Always prints one
 * line on stdout (times CLOCK_MONOTONIC ns; rate = received / (last_ns - first_ns), over arrivals):
 *   received= distinct= duplicates= order_violations= first_ns= last_ns= seconds= rate=
 *   lat_n= lat_p50_us= lat_p99_us= lat_max_us=
 */
#include "bench.h"

#include <getopt.h>
#include <unistd.h>

#define MAX_FILTERS 32
#define MAX_KEY_LEN 512
#define PUMP_SLICE_NS (100 * NS_PER_MS)

static struct {
    const char *host;
    int port;
    char *filters[MAX_FILTERS];
    int filter_count;
    uint64_t expected;
    uint64_t timeout_s;
    bool persistent;
    int qos;
    const char *client_id;
    const char *ready_file;
} opt = { .host = "127.0.0.1", .timeout_s = 120, .qos = 1 };

/* ---- a string-keyed open-addressing hash table (FNV-1a, linear probing) ---- */

struct entry {
    char *key; /* NULL = empty slot */
    size_t key_len;
    uint64_t hash;
    int64_t value;
};

struct table {
    struct entry *slots;
    size_t cap; /* a power of two */
    size_t count;
};

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static void table_grow(struct table *t)
{
    size_t cap = t->cap ? t->cap * 2 : 1024;
    struct entry *slots = calloc(cap, sizeof *slots);
    if (slots == NULL) {
        fprintf(stderr, "sink: out of memory\n");
        exit(EXIT_FAILED);
    }
    for (size_t i = 0; i < t->cap; i++) {
        if (t->slots[i].key == NULL) continue;
        size_t j = t->slots[i].hash & (cap - 1);
        while (slots[j].key != NULL) j = (j + 1) & (cap - 1);
        slots[j] = t->slots[i];
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
}

/* Finds key, inserting it with `value` if absent; *created tells which. */
static struct entry *table_upsert(struct table *t, const char *key, size_t len, int64_t value,
                                  bool *created)
{
    if ((t->count + 1) * 10 > t->cap * 7) table_grow(t); /* keep the load under 70% */
    uint64_t h = hash_bytes(key, len);
    size_t i = h & (t->cap - 1);
    for (; t->slots[i].key != NULL; i = (i + 1) & (t->cap - 1)) {
        struct entry *e = &t->slots[i];
        if (e->hash == h && e->key_len == len && memcmp(e->key, key, len) == 0) {
            *created = false;
            return e;
        }
    }
    struct entry *e = &t->slots[i];
    if ((e->key = malloc(len)) == NULL) {
        fprintf(stderr, "sink: out of memory\n");
        exit(EXIT_FAILED);
    }
    memcpy(e->key, key, len);
    e->key_len = len;
    e->hash = h;
    e->value = value;
    t->count++;
    *created = true;
    return e;
}

/* ---- state ---- */

static struct {
    uint64_t received, distinct, duplicates, order_violations;
    int64_t first_ns, last_ns;
    int64_t *latencies; /* ns, one per message that carried "t" */
    size_t lat_n, lat_cap;
    struct table events;  /* "device\neventId" */
    struct table devices; /* device -> highest N seen */
    bool connack_seen, suback_seen, suback_refused;
    int connack_rc;
} sink;

static void record_latency(int64_t ns)
{
    if (sink.lat_n == sink.lat_cap) {
        sink.lat_cap = sink.lat_cap ? sink.lat_cap * 2 : 65536;
        sink.latencies = realloc(sink.latencies, sink.lat_cap * sizeof *sink.latencies);
        if (sink.latencies == NULL) {
            fprintf(stderr, "sink: out of memory\n");
            exit(EXIT_FAILED);
        }
    }
    sink.latencies[sink.lat_n++] = ns;
}

/* The device a message belongs to, when it has no "deviceId" field: see the header comment. */
static void device_from_topic(const char *topic, const char **out, size_t *len)
{
    static const char prefix[] = "device/";
    if (strncmp(topic, prefix, sizeof prefix - 1) == 0) {
        const char *id = topic + sizeof prefix - 1;
        const char *slash = strchr(id, '/');
        *out = id;
        *len = slash ? (size_t)(slash - id) : strlen(id);
        return;
    }
    const char *slash = strrchr(topic, '/');
    *out = slash ? slash + 1 : topic;
    *len = strlen(*out);
}

/* N of an eventId "e<N>", or -1 if it has another form. */
static int64_t event_number(const char *id, size_t len)
{
    if (len < 2 || len > 19 || id[0] != 'e') return -1;
    int64_t n = 0;
    for (size_t i = 1; i < len; i++) {
        if (id[i] < '0' || id[i] > '9') return -1;
        n = n * 10 + (id[i] - '0');
    }
    return n;
}

static void track_event(const char *topic, const char *payload, size_t len)
{
    const char *event_id, *device;
    size_t event_id_len, device_len;
    if (!json_string(payload, len, "eventId", &event_id, &event_id_len)) {
        sink.distinct++;
        return;
    }
    if (!json_string(payload, len, "deviceId", &device, &device_len)) {
        device_from_topic(topic, &device, &device_len);
    }

    char key[MAX_KEY_LEN];
    if (device_len + 1 + event_id_len > sizeof key) {
        sink.distinct++; /* cannot be an id the contract allows; count it, don't track it */
        return;
    }
    memcpy(key, device, device_len);
    key[device_len] = '\n';
    memcpy(key + device_len + 1, event_id, event_id_len);

    bool created;
    table_upsert(&sink.events, key, device_len + 1 + event_id_len, 0, &created);
    if (!created) {
        sink.duplicates++;
        return;
    }
    sink.distinct++;

    int64_t n = event_number(event_id, event_id_len);
    if (n < 0) return;
    struct entry *dev = table_upsert(&sink.devices, device, device_len, n, &created);
    if (created) return;
    if (n < dev->value) sink.order_violations++;
    else dev->value = n;
}

/* ---- libmosquitto callbacks ---- */

static void on_connect(struct mosquitto *mosq, void *obj, int rc)
{
    (void)mosq;
    (void)obj;
    sink.connack_seen = true;
    sink.connack_rc = rc;
}

static void on_subscribe(struct mosquitto *mosq, void *obj, int mid, int qos_count, const int *granted)
{
    (void)mosq;
    (void)obj;
    (void)mid;
    sink.suback_seen = true;
    sink.suback_refused = qos_count != opt.filter_count;
    for (int i = 0; i < qos_count; i++) {
        if (granted[i] > 2) sink.suback_refused = true; /* 0x80 = refused */
    }
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg)
{
    (void)mosq;
    (void)obj;
    int64_t arrival = now_ns();
    sink.received++;
    if (sink.first_ns == 0) sink.first_ns = arrival;
    sink.last_ns = arrival;

    const char *payload = msg->payload;
    size_t len = (size_t)msg->payloadlen;
    int64_t t;
    if (json_int(payload, len, "t", &t)) record_latency(arrival - t);
    track_event(msg->topic, payload, len);
}

/* ---- main ---- */

static void usage(FILE *out)
{
    fprintf(out, "usage: sink -p PORT [-h HOST=127.0.0.1] [-t FILTER=hubs/#]... [-n EXPECTED=0]\n"
                 "            [-T TIMEOUT_S=120] [-q QOS=1] [-c CLIENT_ID] [--ready-file PATH] [--persistent]\n");
}

static void parse_options(int argc, char **argv)
{
    enum { OPT_READY_FILE = 1000, OPT_PERSISTENT, OPT_HELP };
    static const struct option long_options[] = {
        { "ready-file", required_argument, NULL, OPT_READY_FILE },
        { "persistent", no_argument, NULL, OPT_PERSISTENT },
        { "help", no_argument, NULL, OPT_HELP },
        { NULL, 0, NULL, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "h:p:t:n:T:q:c:", long_options, NULL)) != -1) {
        switch (c) {
        case 'h': opt.host = optarg; break;
        case 'p': opt.port = (int)parse_u64(optarg, "-p"); break;
        case 't':
            if (opt.filter_count == MAX_FILTERS) {
                fprintf(stderr, "sink: at most %d filters\n", MAX_FILTERS);
                exit(EXIT_USAGE);
            }
            opt.filters[opt.filter_count++] = optarg;
            break;
        case 'n': opt.expected = parse_u64(optarg, "-n"); break;
        case 'T': opt.timeout_s = parse_u64(optarg, "-T"); break;
        case 'q': opt.qos = (int)parse_u64(optarg, "-q"); break;
        case 'c': opt.client_id = optarg; break;
        case OPT_READY_FILE: opt.ready_file = optarg; break;
        case OPT_PERSISTENT: opt.persistent = true; break;
        case OPT_HELP: usage(stdout); exit(EXIT_OK);
        default: usage(stderr); exit(EXIT_USAGE);
        }
    }
    if (optind != argc || opt.port <= 0 || opt.port > 65535 || opt.qos > 2) {
        usage(stderr);
        exit(EXIT_USAGE);
    }
    if (opt.filter_count == 0) opt.filters[opt.filter_count++] = "hubs/#";
}

/* Pumps until *flag is set; false on error, interrupt or deadline. */
static bool wait_for(struct mosquitto *mosq, const bool *flag, const char *what, int64_t deadline)
{
    while (!*flag) {
        int64_t now = now_ns();
        if (now >= deadline || interrupted) {
            fprintf(stderr, "sink: no %s before the timeout\n", what);
            return false;
        }
        int rc = pump(mosq, deadline - now < PUMP_SLICE_NS ? deadline - now : PUMP_SLICE_NS);
        if (rc != MOSQ_ERR_SUCCESS) {
            fprintf(stderr, "sink: connection lost waiting for %s: %s\n", what, mosq_error(rc));
            return false;
        }
    }
    return true;
}

static int compare_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of the sorted latencies, in microseconds. */
static double percentile_us(double p)
{
    if (sink.lat_n == 0) return 0.0;
    size_t rank = (size_t)(p * (double)sink.lat_n + 0.999999999);
    if (rank < 1) rank = 1;
    if (rank > sink.lat_n) rank = sink.lat_n;
    return (double)sink.latencies[rank - 1] / 1000.0;
}

static void print_line(void)
{
    if (sink.lat_n > 0) qsort(sink.latencies, sink.lat_n, sizeof *sink.latencies, compare_i64);
    double seconds = sink.last_ns > sink.first_ns ? ns_to_s(sink.last_ns - sink.first_ns) : 0.0;
    printf("received=%" PRIu64 " distinct=%" PRIu64 " duplicates=%" PRIu64 " order_violations=%" PRIu64
           " first_ns=%" PRId64 " last_ns=%" PRId64 " seconds=%.3f rate=%.0f"
           " lat_n=%zu lat_p50_us=%.0f lat_p99_us=%.0f lat_max_us=%.0f\n",
           sink.received, sink.distinct, sink.duplicates, sink.order_violations, sink.first_ns,
           sink.last_ns, seconds, seconds > 0 ? (double)sink.received / seconds : 0.0, sink.lat_n,
           percentile_us(0.50), percentile_us(0.99), percentile_us(1.0));
    fflush(stdout);
}

/* Connects, subscribes to every filter and creates the ready file; false (reported) on failure. */
static bool start_session(struct mosquitto *mosq, int64_t deadline)
{
    int rc = mosquitto_connect(mosq, opt.host, opt.port, 60);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "sink: connect to %s:%d failed: %s\n", opt.host, opt.port, mosq_error(rc));
        return false;
    }
    if (!wait_for(mosq, &sink.connack_seen, "CONNACK", deadline)) return false;
    if (sink.connack_rc != 0) {
        fprintf(stderr, "sink: connection refused: %s\n", mosquitto_connack_string(sink.connack_rc));
        return false;
    }
    rc = mosquitto_subscribe_multiple(mosq, NULL, opt.filter_count, opt.filters, opt.qos, 0, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "sink: subscribe failed: %s\n", mosq_error(rc));
        return false;
    }
    if (!wait_for(mosq, &sink.suback_seen, "SUBACK", deadline)) return false;
    if (sink.suback_refused) {
        fprintf(stderr, "sink: subscription refused\n");
        return false;
    }
    if (opt.ready_file != NULL) {
        FILE *f = fopen(opt.ready_file, "w");
        if (f == NULL || fclose(f) != 0) {
            fprintf(stderr, "sink: cannot create %s: %s\n", opt.ready_file, strerror(errno));
            return false;
        }
    }
    return true;
}

/* Receives until EXPECTED distinct events, the deadline, an interrupt or a lost connection. */
static int receive(struct mosquitto *mosq, int64_t deadline)
{
    while (opt.expected == 0 || sink.distinct < opt.expected) {
        int64_t now = now_ns();
        if (interrupted) {
            fprintf(stderr, "sink: interrupted\n");
            return opt.expected > 0 ? EXIT_FAILED : EXIT_OK;
        }
        if (now >= deadline) {
            if (opt.expected == 0) return EXIT_OK;
            fprintf(stderr, "sink: timed out after %" PRIu64 " s: %" PRIu64 "/%" PRIu64 " distinct events\n",
                    opt.timeout_s, sink.distinct, opt.expected);
            return EXIT_FAILED;
        }
        int rc = pump(mosq, deadline - now < PUMP_SLICE_NS ? deadline - now : PUMP_SLICE_NS);
        if (rc != MOSQ_ERR_SUCCESS) {
            fprintf(stderr, "sink: connection lost: %s\n", mosq_error(rc));
            return EXIT_FAILED;
        }
    }
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    parse_options(argc, argv);
    install_stop_signals();
    mosquitto_lib_init();
    int64_t deadline = now_ns() + (int64_t)opt.timeout_s * NS_PER_S;

    char default_id[64];
    if (opt.client_id == NULL) {
        snprintf(default_id, sizeof default_id, "sink-%ld", (long)getpid());
        opt.client_id = default_id;
    }
    struct mosquitto *mosq = mosquitto_new(opt.client_id, !opt.persistent, NULL);
    if (mosq == NULL) {
        fprintf(stderr, "sink: mosquitto_new failed: %s\n", strerror(errno));
        return EXIT_FAILED;
    }
    mosquitto_connect_callback_set(mosq, on_connect);
    mosquitto_subscribe_callback_set(mosq, on_subscribe);
    mosquitto_message_callback_set(mosq, on_message);
    /* PUBACKs go out at once rather than waiting for Nagle (matters with a broker inflight limit). */
    mosquitto_int_option(mosq, MOSQ_OPT_TCP_NODELAY, 1);

    int status = start_session(mosq, deadline) ? receive(mosq, deadline) : EXIT_FAILED;

    print_line(); /* also after a failure, so scripts always find the line */
    mosquitto_disconnect(mosq);
    mosquitto_destroy(mosq);
    mosquitto_lib_cleanup();
    return status;
}
