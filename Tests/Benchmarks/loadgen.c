/*
 * loadgen — simulated devices publishing events to an MQTT broker (QoS 1).
 *
 *   loadgen -p PORT [-h 127.0.0.1] [-d DEVICES=20] -n EVENTS_PER_DEVICE [-s SIZE=256]
 *           [-r RATE=0] [-w WINDOW=20] [-t TOPIC_FMT=device/%s/event] [-i PREFIX=dev]
 *           [--acks] [-T TIMEOUT_S=120] [--event-offset N=1]
 *
 * Each device PREFIX1..PREFIXD is its own MQTT connection (client id PREFIX{n}-{pid}, clean
 * session) served by its own thread, and publishes EVENTS_PER_DEVICE events of exactly SIZE bytes
 * (never fewer than the fixed fields, ~110 bytes) to TOPIC_FMT with %s replaced by the device id:
 *
 *   {"eventId":"e<N>","type":"bench","timestamp":<ms since epoch>,
 *    "data":{"t":<CLOCK_MONOTONIC ns at publish>,"pad":"xxx..."}}
 *
 * eventIds run eN, e(N+1), ... per device from --event-offset N (default 1), so repeated runs
 * against one store need not collide. At most WINDOW publishes per device await their PUBACK.
 * -r RATE paces the total to RATE events/s: event k of device i (both from 0) is due at
 * start + (k*DEVICES + i)/RATE s, an absolute deadline, so the devices interleave evenly and a
 * late event never shifts the later ones. A device waits for its next due time in ppoll() on its
 * own socket (timeout computed from the absolute deadline), so PUBACKs and acks are handled while
 * it waits. -r 0 publishes flat out. Connections use TCP_NODELAY (see connect_device()).
 *
 * With --acks each device also subscribes to device/{id}/ack (QoS 1) and counts the gateway's
 * acks with "status":"stored" and with any other status. The run ends when every PUBACK (and,
 * with --acks, every ack) has arrived, or after TIMEOUT_S seconds from start-up.
 *
 * Prints one line on stdout (all times CLOCK_MONOTONIC ns; rate = sent / (last completion -
 * first publish), the completion being the last PUBACK, or the last ack if later):
 *   devices= sent= puback= acks_stored= acks_other= first_ns= last_puback_ns= last_ack_ns=
 *   seconds= rate= ack_lat_n= ack_p50_us= ack_p99_us= ack_max_us=
 * (ack latency = publish -> ack, with --acks; 0 without)
 * Exit status: 0 when everything was acknowledged, 1 on a failure, timeout or interrupt (the line
 * is still printed), 2 on a usage error. Errors go to stderr.
 */
#include "bench.h"

#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#define MAX_ID_LEN 64
#define MAX_TOPIC_LEN 512
#define PUMP_SLICE_NS (100 * NS_PER_MS) /* longest wait before re-checking stop conditions */

static struct {
    const char *host;
    int port;
    unsigned devices;
    uint64_t events;       /* per device */
    size_t size;           /* target payload bytes */
    uint64_t rate;         /* total events/s, 0 = flat out */
    unsigned window;       /* max unacknowledged publishes per device */
    const char *topic_fmt;
    const char *prefix;
    bool acks;
    uint64_t timeout_s;
    uint64_t event_offset; /* first eventId number */
} opt = {
    .host = "127.0.0.1", .port = 0, .devices = 20, .events = 0, .size = 256, .rate = 0,
    .window = 20, .topic_fmt = "device/%s/event", .prefix = "dev", .acks = false,
    .timeout_s = 120, .event_offset = 1,
};

/* One simulated device. Everything but `mosq` setup is touched only by the device's own thread
 * (callbacks run inside pump(), on that thread), so the counters need no locking. */
struct device {
    unsigned index; /* 0-based; the id is PREFIX{index+1} */
    char id[MAX_ID_LEN + 32];
    char topic[MAX_TOPIC_LEN];
    char ack_topic[MAX_TOPIC_LEN];
    struct mosquitto *mosq;
    char *payload; /* reusable payload buffer */

    bool connack_seen, suback_seen;
    int connack_rc;
    bool suback_refused;

    uint64_t sent, puback, acks_stored, acks_other;
    int64_t first_ns, last_puback_ns, last_ack_ns;
    int64_t *sent_at_ns;  /* with --acks: publish time of event k (0-based), for the ack latency */
    int64_t *ack_lat_ns;  /* with --acks: publish -> ack, one entry per ack that named a known event */
    uint64_t ack_lat_n;
    bool failed;
};

static int64_t start_ns;     /* pacing origin, shared by all devices */
static int64_t deadline_ns;  /* -T: the run gives up here */
static atomic_bool stop_all; /* set when any device fails */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: loadgen -p PORT -n EVENTS_PER_DEVICE [-h HOST=127.0.0.1] [-d DEVICES=20]\n"
            "               [-s SIZE=256] [-r RATE=0] [-w WINDOW=20] [-t TOPIC_FMT=device/%%s/event]\n"
            "               [-i PREFIX=dev] [--acks] [-T TIMEOUT_S=120] [--event-offset N=1]\n");
}

static void parse_options(int argc, char **argv)
{
    enum { OPT_ACKS = 1000, OPT_EVENT_OFFSET, OPT_HELP };
    static const struct option long_options[] = {
        { "acks", no_argument, NULL, OPT_ACKS },
        { "event-offset", required_argument, NULL, OPT_EVENT_OFFSET },
        { "help", no_argument, NULL, OPT_HELP },
        { NULL, 0, NULL, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "h:p:d:n:s:r:w:t:i:T:", long_options, NULL)) != -1) {
        switch (c) {
        case 'h': opt.host = optarg; break;
        case 'p': opt.port = (int)parse_u64(optarg, "-p"); break;
        case 'd': opt.devices = (unsigned)parse_u64(optarg, "-d"); break;
        case 'n': opt.events = parse_u64(optarg, "-n"); break;
        case 's': opt.size = (size_t)parse_u64(optarg, "-s"); break;
        case 'r': opt.rate = parse_u64(optarg, "-r"); break;
        case 'w': opt.window = (unsigned)parse_u64(optarg, "-w"); break;
        case 't': opt.topic_fmt = optarg; break;
        case 'i': opt.prefix = optarg; break;
        case 'T': opt.timeout_s = parse_u64(optarg, "-T"); break;
        case OPT_ACKS: opt.acks = true; break;
        case OPT_EVENT_OFFSET: opt.event_offset = parse_u64(optarg, "--event-offset"); break;
        case OPT_HELP: usage(stdout); exit(EXIT_OK);
        default: usage(stderr); exit(EXIT_USAGE);
        }
    }
    if (optind != argc || opt.port <= 0 || opt.port > 65535 || opt.events == 0 ||
        opt.devices == 0 || opt.window == 0 || opt.window > 65535 || opt.size > 256 * 1024 * 1024) {
        usage(stderr);
        exit(EXIT_USAGE);
    }
}

/* TOPIC_FMT with its first "%s" replaced by the device id (no other printf conversions). */
static bool format_topic(char *out, size_t cap, const char *fmt, const char *id)
{
    const char *slot = strstr(fmt, "%s");
    int n = slot ? snprintf(out, cap, "%.*s%s%s", (int)(slot - fmt), fmt, id, slot + 2)
                 : snprintf(out, cap, "%s", fmt);
    return n > 0 && (size_t)n < cap;
}

/* Writes one event into d->payload and returns its length (SIZE, or the fixed fields if longer). */
static int build_payload(struct device *d, uint64_t event_no, int64_t t_ns)
{
    static const char tail[] = "\"}}";
    const size_t tail_len = sizeof tail - 1;
    int head = snprintf(d->payload, opt.size + 256,
                        "{\"eventId\":\"e%" PRIu64 "\",\"type\":\"bench\",\"timestamp\":%" PRId64
                        ",\"data\":{\"t\":%" PRId64 ",\"pad\":\"",
                        event_no, epoch_ms(), t_ns);
    size_t pad = opt.size > (size_t)head + tail_len ? opt.size - (size_t)head - tail_len : 0;
    memset(d->payload + head, 'x', pad);
    memcpy(d->payload + head + pad, tail, tail_len);
    return (int)((size_t)head + pad + tail_len);
}

static int compare_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* When event k of device d is due, relative to the shared start (only with -r). */
static int64_t due_ns(const struct device *d, uint64_t k)
{
    uint64_t slot = k * opt.devices + d->index;
    return start_ns + (int64_t)(slot * (uint64_t)NS_PER_S / opt.rate);
}

static bool device_done(const struct device *d)
{
    return d->puback == opt.events && (!opt.acks || d->acks_stored + d->acks_other >= opt.events);
}

/* ---- libmosquitto callbacks (run inside pump(), on the device's thread) ---- */

static void on_connect(struct mosquitto *mosq, void *obj, int rc)
{
    (void)mosq;
    struct device *d = obj;
    d->connack_seen = true;
    d->connack_rc = rc;
}

static void on_subscribe(struct mosquitto *mosq, void *obj, int mid, int qos_count, const int *granted)
{
    (void)mosq;
    (void)mid;
    struct device *d = obj;
    d->suback_seen = true;
    d->suback_refused = qos_count < 1 || granted[0] > 2; /* 0x80 = refused */
}

static void on_publish(struct mosquitto *mosq, void *obj, int mid)
{
    (void)mosq;
    (void)mid;
    struct device *d = obj;
    d->puback++;
    d->last_puback_ns = now_ns();
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg)
{
    (void)mosq;
    struct device *d = obj;
    const char *status;
    size_t status_len;
    bool stored = json_string(msg->payload, (size_t)msg->payloadlen, "status", &status, &status_len) &&
                  status_len == 6 && memcmp(status, "stored", 6) == 0;
    if (stored) d->acks_stored++;
    else d->acks_other++;
    d->last_ack_ns = now_ns();
    const char *id;
    size_t id_len;
    if (json_string(msg->payload, (size_t)msg->payloadlen, "eventId", &id, &id_len) && id_len > 1 && id[0] == 'e') {
        uint64_t n = 0;
        for (size_t i = 1; i < id_len && id[i] >= '0' && id[i] <= '9'; i++) n = n * 10 + (uint64_t)(id[i] - '0');
        if (n >= opt.event_offset && n - opt.event_offset < d->sent && d->ack_lat_n < opt.events) {
            d->ack_lat_ns[d->ack_lat_n++] = d->last_ack_ns - d->sent_at_ns[n - opt.event_offset];
        }
    }
}

/* ---- set-up (main thread, one device after the other) ---- */

/* Pumps d's connection until *flag is set; false on error or when the deadline passes. */
static bool wait_for(struct device *d, const bool *flag, const char *what)
{
    while (!*flag) {
        int64_t now = now_ns();
        if (now >= deadline_ns || interrupted) {
            fprintf(stderr, "loadgen: device %s: no %s before the timeout\n", d->id, what);
            return false;
        }
        int64_t wait = deadline_ns - now < PUMP_SLICE_NS ? deadline_ns - now : PUMP_SLICE_NS;
        int rc = pump(d->mosq, wait);
        if (rc != MOSQ_ERR_SUCCESS) {
            fprintf(stderr, "loadgen: device %s: connection lost waiting for %s: %s\n", d->id, what,
                    mosq_error(rc));
            return false;
        }
    }
    return true;
}

static bool connect_device(struct device *d)
{
    char client_id[MAX_ID_LEN + 64];
    snprintf(client_id, sizeof client_id, "%s-%ld", d->id, (long)getpid());

    d->mosq = mosquitto_new(client_id, true, d);
    if (d->mosq == NULL) {
        fprintf(stderr, "loadgen: mosquitto_new failed: %s\n", strerror(errno));
        return false;
    }
    mosquitto_connect_callback_set(d->mosq, on_connect);
    mosquitto_subscribe_callback_set(d->mosq, on_subscribe);
    mosquitto_publish_callback_set(d->mosq, on_publish);
    mosquitto_message_callback_set(d->mosq, on_message);
    mosquitto_max_inflight_messages_set(d->mosq, opt.window);
    /* Without TCP_NODELAY a publish sent right after the PUBACK for an ack waits for the broker's
     * delayed TCP ACK (Nagle): up to 40 ms that would show up as gateway latency. */
    mosquitto_int_option(d->mosq, MOSQ_OPT_TCP_NODELAY, 1);

    int rc = mosquitto_connect(d->mosq, opt.host, opt.port, 60);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "loadgen: device %s: connect to %s:%d failed: %s\n", d->id, opt.host,
                opt.port, mosq_error(rc));
        return false;
    }
    if (!wait_for(d, &d->connack_seen, "CONNACK")) return false;
    if (d->connack_rc != 0) {
        fprintf(stderr, "loadgen: device %s: connection refused: %s\n", d->id,
                mosquitto_connack_string(d->connack_rc));
        return false;
    }
    if (opt.acks) {
        rc = mosquitto_subscribe(d->mosq, NULL, d->ack_topic, 1);
        if (rc != MOSQ_ERR_SUCCESS) {
            fprintf(stderr, "loadgen: device %s: subscribe failed: %s\n", d->id, mosq_error(rc));
            return false;
        }
        if (!wait_for(d, &d->suback_seen, "SUBACK")) return false;
        if (d->suback_refused) {
            fprintf(stderr, "loadgen: device %s: subscription to %s refused\n", d->id, d->ack_topic);
            return false;
        }
    }
    return true;
}

/* ---- the run (one thread per device) ---- */

static void *run_device(void *arg)
{
    struct device *d = arg;
    while (!device_done(d) && !atomic_load(&stop_all) && !interrupted) {
        int64_t now = now_ns();
        if (now >= deadline_ns) break;

        /* Publish everything that is due and fits in the window. */
        int64_t wake = now + PUMP_SLICE_NS < deadline_ns ? now + PUMP_SLICE_NS : deadline_ns;
        while (d->sent < opt.events && d->sent - d->puback < opt.window) {
            if (opt.rate > 0) {
                int64_t due = due_ns(d, d->sent);
                if (due > now) {
                    if (due < wake) wake = due;
                    break;
                }
            }
            int64_t t = now_ns();
            int len = build_payload(d, opt.event_offset + d->sent, t);
            int rc = mosquitto_publish(d->mosq, NULL, d->topic, len, d->payload, 1, false);
            if (rc != MOSQ_ERR_SUCCESS) {
                fprintf(stderr, "loadgen: device %s: publish failed: %s\n", d->id, mosq_error(rc));
                d->failed = true;
                atomic_store(&stop_all, true);
                return NULL;
            }
            if (d->sent == 0) d->first_ns = t;
            if (d->sent_at_ns) d->sent_at_ns[d->sent] = t;
            d->sent++;
        }

        /* Wait for PUBACKs/acks, or until the next event is due. */
        int rc = pump(d->mosq, wake - now_ns());
        if (rc != MOSQ_ERR_SUCCESS) {
            fprintf(stderr, "loadgen: device %s: connection lost: %s\n", d->id, mosq_error(rc));
            d->failed = true;
            atomic_store(&stop_all, true);
            return NULL;
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    parse_options(argc, argv);
    install_stop_signals();
    mosquitto_lib_init();
    deadline_ns = now_ns() + (int64_t)opt.timeout_s * NS_PER_S;

    struct device **devices = calloc(opt.devices, sizeof *devices);
    pthread_t *threads = calloc(opt.devices, sizeof *threads);
    if (devices == NULL || threads == NULL) {
        fprintf(stderr, "loadgen: out of memory\n");
        return EXIT_FAILED;
    }

    int status = EXIT_OK;
    unsigned connected = 0;
    for (unsigned i = 0; i < opt.devices; i++) {
        /* Separate allocations keep each thread's counters on its own cache lines. */
        struct device *d = devices[i] = calloc(1, sizeof *d);
        if (d == NULL || (d->payload = malloc(opt.size + 256)) == NULL ||
            (opt.acks && ((d->sent_at_ns = calloc(opt.events, sizeof(int64_t))) == NULL ||
                          (d->ack_lat_ns = calloc(opt.events, sizeof(int64_t))) == NULL))) {
            fprintf(stderr, "loadgen: out of memory\n");
            return EXIT_FAILED;
        }
        d->index = i;
        int n = snprintf(d->id, sizeof d->id, "%s%u", opt.prefix, i + 1);
        if (n <= 0 || (size_t)n >= sizeof d->id ||
            !format_topic(d->topic, sizeof d->topic, opt.topic_fmt, d->id) ||
            !format_topic(d->ack_topic, sizeof d->ack_topic, "device/%s/ack", d->id)) {
            fprintf(stderr, "loadgen: device id or topic too long\n");
            return EXIT_USAGE;
        }
        if (!connect_device(d)) {
            status = EXIT_FAILED;
            break;
        }
        connected++;
    }

    if (status == EXIT_OK) {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        start_ns = now_ns() + NS_PER_MS; /* a little slack so every thread is up at the first due time */
        for (unsigned i = 0; i < opt.devices; i++) {
            if (pthread_create(&threads[i], &attr, run_device, devices[i]) != 0) {
                fprintf(stderr, "loadgen: pthread_create failed\n");
                return EXIT_FAILED;
            }
        }
        for (unsigned i = 0; i < opt.devices; i++) pthread_join(threads[i], NULL);
        pthread_attr_destroy(&attr);
    }

    /* Totals. */
    uint64_t sent = 0, puback = 0, acks_stored = 0, acks_other = 0;
    int64_t first_ns = 0, last_puback_ns = 0, last_ack_ns = 0;
    bool complete = status == EXIT_OK;
    for (unsigned i = 0; i < opt.devices; i++) {
        const struct device *d = devices[i];
        if (d == NULL) continue; /* set-up stopped before this device */
        sent += d->sent;
        puback += d->puback;
        acks_stored += d->acks_stored;
        acks_other += d->acks_other;
        if (d->sent > 0 && (first_ns == 0 || d->first_ns < first_ns)) first_ns = d->first_ns;
        if (d->last_puback_ns > last_puback_ns) last_puback_ns = d->last_puback_ns;
        if (d->last_ack_ns > last_ack_ns) last_ack_ns = d->last_ack_ns;
        if (d->failed || !device_done(d)) complete = false;
    }
    if (status == EXIT_OK && !complete) {
        status = EXIT_FAILED;
        if (interrupted) fprintf(stderr, "loadgen: interrupted\n");
        else if (!atomic_load(&stop_all))
            fprintf(stderr, "loadgen: timed out after %" PRIu64 " s: puback %" PRIu64 "/%" PRIu64
                            ", acks %" PRIu64 "\n",
                    opt.timeout_s, puback, opt.events * opt.devices, acks_stored + acks_other);
    }

    /* Ack latency (publish -> ack on device/{id}/ack) over every device. */
    uint64_t lat_n = 0;
    for (unsigned i = 0; i < opt.devices; i++) lat_n += devices[i] ? devices[i]->ack_lat_n : 0;
    int64_t *lat = lat_n ? malloc(lat_n * sizeof *lat) : NULL;
    uint64_t at = 0;
    for (unsigned i = 0; lat && i < opt.devices; i++) {
        if (devices[i] == NULL) continue;
        memcpy(lat + at, devices[i]->ack_lat_ns, devices[i]->ack_lat_n * sizeof *lat);
        at += devices[i]->ack_lat_n;
    }
    if (lat) qsort(lat, lat_n, sizeof *lat, compare_i64);
#define ACK_PCT(p) (lat ? lat[(uint64_t)((double)(lat_n - 1) * (p))] / 1000 : 0)

    int64_t last_ns = opt.acks && last_ack_ns > last_puback_ns ? last_ack_ns : last_puback_ns;
    double seconds = first_ns > 0 && last_ns > first_ns ? ns_to_s(last_ns - first_ns) : 0.0;
    printf("devices=%u sent=%" PRIu64 " puback=%" PRIu64 " acks_stored=%" PRIu64 " acks_other=%" PRIu64
           " first_ns=%" PRId64 " last_puback_ns=%" PRId64 " last_ack_ns=%" PRId64
           " seconds=%.3f rate=%.0f ack_lat_n=%" PRIu64 " ack_p50_us=%" PRId64 " ack_p99_us=%" PRId64
           " ack_max_us=%" PRId64 "\n",
           opt.devices, sent, puback, acks_stored, acks_other, first_ns, last_puback_ns, last_ack_ns,
           seconds, seconds > 0 ? (double)sent / seconds : 0.0, lat_n, ACK_PCT(0.5), ACK_PCT(0.99),
           lat ? lat[lat_n - 1] / 1000 : 0);
    free(lat);
    fflush(stdout);

    for (unsigned i = 0; i < connected; i++) {
        mosquitto_disconnect(devices[i]->mosq);
    }
    for (unsigned i = 0; i < opt.devices; i++) {
        if (devices[i] == NULL) continue;
        mosquitto_destroy(devices[i]->mosq);
        free(devices[i]->payload);
        free(devices[i]->sent_at_ns);
        free(devices[i]->ack_lat_ns);
        free(devices[i]);
    }
    free(devices);
    free(threads);
    mosquitto_lib_cleanup();
    return status;
}
