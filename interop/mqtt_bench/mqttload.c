/* MQTT load generator on libmosquitto: fan-in / fan-out throughput at QoS 0 or 1.
 *
 *   mqttload --port P [--host H] --pubs N --subs M --count C --qos Q --size B [--user U --pass P]
 *   mqttload --sink ...           the same load against a built-in sink (no broker): the
 *                                 generator's own ceiling (publishers are acked at once,
 *                                 subscribers are flooded with pre-encoded PUBLISH packets)
 *
 * Each publisher sends C messages to bench/<i>; each subscriber subscribes to bench/#, so
 * every subscriber receives N*C messages. Prints one JSON line: messages published per
 * second, deliveries per second, elapsed seconds, counts. Bounded by a 120 s deadline.
 * Build: cc -O2 -o mqttload mqttload.c -lmosquitto -lpthread  (Debian: libmosquitto-dev)
 */
#include <arpa/inet.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *host = "127.0.0.1", *user = "guest", *pass = "guest";
static int port = 1883, pubs = 1, subs = 1, qos = 0, size = 16, sink = 0;
static long count = 10000;
static atomic_long received, acked, subscribed;
static double deadline;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void on_message(struct mosquitto *m, void *u, const struct mosquitto_message *msg) {
    (void)m; (void)u; (void)msg;
    atomic_fetch_add(&received, 1);
}
static void on_publish(struct mosquitto *m, void *u, int mid) {
    (void)m; (void)u; (void)mid;
    atomic_fetch_add(&acked, 1);
}
static void on_subscribe(struct mosquitto *m, void *u, int mid, int n, const int *g) {
    (void)m; (void)u; (void)mid; (void)n; (void)g;
    atomic_fetch_add(&subscribed, 1);
}

static struct mosquitto *client(const char *id) {
    struct mosquitto *m = mosquitto_new(id, true, NULL);
    if (!m) { perror("mosquitto_new"); exit(1); }
    mosquitto_username_pw_set(m, user, pass);
    mosquitto_max_inflight_messages_set(m, 100);
    mosquitto_message_callback_set(m, on_message);
    mosquitto_publish_callback_set(m, on_publish);
    mosquitto_subscribe_callback_set(m, on_subscribe);
    if (mosquitto_connect(m, host, port, 60) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "connect to %s:%d failed\n", host, port);
        exit(1);
    }
    mosquitto_loop_start(m);
    return m;
}

/* -- the sink: a minimal MQTT peer that acks and floods, to measure the generator -------- */
static long sink_flood_total;  /* messages each subscriber connection gets */

static int read_packet(int fd, unsigned char *hdr, unsigned char *buf, size_t cap, size_t *len) {
    if (recv(fd, hdr, 1, MSG_WAITALL) != 1) return -1;
    size_t n = 0; int shift = 0; unsigned char b;
    do {
        if (recv(fd, &b, 1, MSG_WAITALL) != 1) return -1;
        n |= (size_t)(b & 0x7f) << shift; shift += 7;
    } while (b & 0x80);
    if (n > cap) return -1;
    if (n && recv(fd, buf, n, MSG_WAITALL) != (ssize_t)n) return -1;
    *len = n;
    return 0;
}

static void *sink_conn(void *arg) {
    int fd = (int)(long)arg, one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    unsigned char hdr, buf[65536]; size_t len;
    static const unsigned char connack[] = {0x20, 0x02, 0x00, 0x00};
    while (read_packet(fd, &hdr, buf, sizeof buf, &len) == 0) {
        int type = hdr >> 4;
        if (type == 1) { send(fd, connack, 4, 0); }
        else if (type == 3 && ((hdr >> 1) & 3) == 1) {  /* QoS 1 publish: PUBACK its id */
            size_t tlen = (buf[0] << 8) | buf[1];
            unsigned char ack[4] = {0x40, 0x02, buf[2 + tlen], buf[3 + tlen]};
            send(fd, ack, 4, 0);
        } else if (type == 8) {  /* SUBSCRIBE: SUBACK, then flood QoS 0 publishes */
            unsigned char suback[5] = {0x90, 0x03, buf[0], buf[1], 0x00};
            send(fd, suback, 5, 0);
            size_t plen = 2 + 7 + size;  /* topic "bench/0" + payload */
            unsigned char one_pkt[8 + 2 + 7 + 65536];
            size_t h = 0; one_pkt[h++] = 0x30; size_t rem = plen;
            do { unsigned char d = rem & 0x7f; rem >>= 7; if (rem) d |= 0x80; one_pkt[h++] = d; } while (rem);
            one_pkt[h++] = 0; one_pkt[h++] = 7; memcpy(one_pkt + h, "bench/0", 7); h += 7;
            memset(one_pkt + h, 'x', size); h += size;
            enum { BATCH = 256 };
            unsigned char *batch = malloc(h * BATCH);
            for (int i = 0; i < BATCH; i++) memcpy(batch + i * h, one_pkt, h);
            for (long sent = 0; sent < sink_flood_total && now() < deadline; sent += BATCH) {
                long k = sink_flood_total - sent < BATCH ? sink_flood_total - sent : BATCH;
                if (send(fd, batch, h * k, 0) < 0) break;
            }
            free(batch);
        } else if (type == 12) { unsigned char pr[2] = {0xd0, 0}; send(fd, pr, 2, 0); }
        else if (type == 14) break;
    }
    close(fd);
    return NULL;
}

static void *sink_server(void *arg) {
    int lfd = (int)(long)arg;
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) return NULL;
        pthread_t t;
        pthread_create(&t, NULL, sink_conn, (void *)(long)fd);
        pthread_detach(t);
    }
}

static void start_sink(void) {
    int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    bind(lfd, (struct sockaddr *)&a, sizeof a);
    listen(lfd, 64);
    socklen_t al = sizeof a;
    getsockname(lfd, (struct sockaddr *)&a, &al);
    port = ntohs(a.sin_port);
    host = "127.0.0.1";
    sink_flood_total = (long)pubs * count;
    pthread_t t;
    pthread_create(&t, NULL, sink_server, (void *)(long)lfd);
    pthread_detach(t);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(a, "--sink")) { sink = 1; continue; }
        if (!strcmp(a, "--host")) host = v;
        else if (!strcmp(a, "--port")) port = atoi(v);
        else if (!strcmp(a, "--pubs")) pubs = atoi(v);
        else if (!strcmp(a, "--subs")) subs = atoi(v);
        else if (!strcmp(a, "--count")) count = atol(v);
        else if (!strcmp(a, "--qos")) qos = atoi(v);
        else if (!strcmp(a, "--size")) size = atoi(v);
        else if (!strcmp(a, "--user")) user = v;
        else if (!strcmp(a, "--pass")) pass = v;
        else { fprintf(stderr, "unknown option %s\n", a); return 2; }
        i++;
    }
    if (size > 65536) size = 65536;
    deadline = now() + 120;
    if (sink) start_sink();
    mosquitto_lib_init();
    char id[64];
    struct mosquitto **sc = calloc(subs, sizeof *sc), **pc = calloc(pubs, sizeof *pc);
    for (int i = 0; i < subs; i++) {
        snprintf(id, sizeof id, "load-sub-%d-%d", getpid(), i);
        sc[i] = client(id);
    }
    /* subscribers first (in sink mode the flood starts at SUBACK: measured below) */
    double t0 = now();
    if (!sink) {
        for (int i = 0; i < subs; i++) mosquitto_subscribe(sc[i], NULL, "bench/#", qos);
        while (atomic_load(&subscribed) < subs && now() < deadline) usleep(1000);
        usleep(200000);
    }
    for (int i = 0; i < pubs; i++) {
        snprintf(id, sizeof id, "load-pub-%d-%d", getpid(), i);
        pc[i] = client(id);
    }
    usleep(100000);
    char *payload = malloc(size);
    memset(payload, 'x', size);
    long expected = (long)pubs * count * subs;
    t0 = now();
    if (sink)
        for (int i = 0; i < subs; i++) mosquitto_subscribe(sc[i], NULL, "bench/#", qos);
    /* publishers: round robin over clients, keeping each one's queue bounded */
    char topic[32];
    long sent = 0, total = (long)pubs * count;
    while (sent < total && now() < deadline) {
        for (int i = 0; i < pubs && sent < total; i++) {
            snprintf(topic, sizeof topic, "bench/%d", i);
            int rc = mosquitto_publish(pc[i], NULL, topic, size, payload, qos, false);
            if (rc == MOSQ_ERR_SUCCESS) sent++;
        }
        if (qos && sent - atomic_load(&acked) > 100L * pubs) {
            while (sent - atomic_load(&acked) > 50L * pubs && now() < deadline) usleep(100);
        }
        if (!qos && (sent % 2000) == 0) usleep(200);  /* let the network threads drain */
    }
    double t_pub = 0;
    while (now() < deadline) {
        int pubs_done = !qos || atomic_load(&acked) >= total;
        if (pubs_done && !t_pub) t_pub = now();
        if (pubs_done && atomic_load(&received) >= expected) break;
        if (!subs && pubs_done) break;
        usleep(500);
    }
    double t1 = now();
    if (!t_pub) t_pub = t1;
    double el = t1 - t0;
    printf("{\"pubs\": %d, \"subs\": %d, \"qos\": %d, \"size\": %d, \"sent\": %ld, "
           "\"acked\": %ld, \"received\": %ld, \"expected\": %ld, \"seconds\": %.3f, "
           "\"publish_rate\": %.0f, \"delivery_rate\": %.0f, \"sink\": %s}\n",
           pubs, subs, qos, size, sent, atomic_load(&acked), atomic_load(&received), expected,
           el, sent / (t_pub - t0 > 0 ? t_pub - t0 : el), atomic_load(&received) / el,
           sink ? "true" : "false");
    fflush(stdout);
    _exit(atomic_load(&received) >= expected ? 0 : 3);
}
