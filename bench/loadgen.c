/* A compiled JSON-lines load generator: one thread, epoll, non-blocking sockets.
 *
 * Built and run by bench/cloadgen.py (cc -O2, cached in bench/.build/). Each of --conns
 * connections writes --pipeline requests in one write, reads that many reply lines, and
 * repeats until --duration seconds or --max-requests requests (both bounded), exactly as
 * bench/loadgen.py does. Latency is per request: from its batch's write to its own reply
 * line, kept in a log-linear histogram (about 3% resolution, microseconds).
 *
 * Workloads over --keys keys ("key:N") with --value-size byte values: set, get, or mix
 * (90% get). For get and mix every key is set first (not measured), so gets hit and a
 * reply without "success":true is an error (as is a line of "type":"error").
 *
 * Output, one JSON line on stdout:
 *   {"ops":..,"errors":..,"seconds":..,"ops_per_s":..,"p50_ms":..,"p99_ms":..,
 *    "cpu_s":..,"prefill_errors":..,"hist":[[upper_us,count],...]}
 * cpu_s: this process's user + system CPU seconds over the measured run (prefill excluded).
 * Exit status 2 on bad arguments or when a connection fails.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NBUCKETS 2048
static uint64_t hist[NBUCKETS];

static int bucket_of(uint64_t us) {
    if (us < 64) return (int)us;
    int msb = 63 - __builtin_clzll(us);
    int shift = msb - 5;
    int idx = shift * 32 + (int)(us >> shift);
    return idx < NBUCKETS ? idx : NBUCKETS - 1;
}

static uint64_t bucket_upper(int idx) {
    if (idx < 64) return (uint64_t)idx;
    int shift = idx / 32 - 1;
    uint64_t m = (uint64_t)(idx % 32 + 32);
    return ((m + 1) << shift) - 1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
    int fd;
    uint64_t rng;
    char *out;
    size_t out_len, out_off, out_cap;
    char *in;
    size_t in_len, in_cap;
    int awaiting; /* replies still due for the batch in flight */
    int busy;     /* a batch is in flight */
    int want_out; /* EPOLLOUT registered */
    double sent_at;
} conn_t;

static const char *workload = "mix";
static int n_conns = 50, pipeline = 1, n_keys = 10000, value_size = 32;
static double duration = 3.0;
static long long max_requests = 10000000;
static char *value;
static int epfd;

/* Phase state. */
static int prefill;          /* 1: setting every key once, not measured */
static long long next_key;   /* prefill: next key to set */
static long long issued, ops, errors, prefill_errors;
static double stop_at;

static uint64_t xorshift(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void out_reserve(conn_t *c, size_t extra) {
    if (c->out_len + extra <= c->out_cap) return;
    while (c->out_len + extra > c->out_cap) c->out_cap = c->out_cap ? c->out_cap * 2 : 4096;
    c->out = realloc(c->out, c->out_cap);
    if (!c->out) { perror("realloc"); exit(2); }
}

static void add_request(conn_t *c, int is_get, long long key) {
    out_reserve(c, 96 + (size_t)value_size);
    char *p = c->out + c->out_len;
    if (is_get)
        p += sprintf(p, "{\"type\":\"get\",\"key\":\"key:%lld\"}\n", key);
    else {
        p += sprintf(p, "{\"type\":\"set\",\"key\":\"key:%lld\",\"value\":\"", key);
        memcpy(p, value, (size_t)value_size);
        p += value_size;
        memcpy(p, "\"}\n", 3);
        p += 3;
    }
    c->out_len = (size_t)(p - c->out);
}

static void set_events(conn_t *c, int want_out) {
    if (c->want_out == want_out) return;
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) { perror("epoll_ctl"); exit(2); }
    c->want_out = want_out;
}

static void flush_out(conn_t *c) {
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) { set_events(c, 1); return; }
            if (errno == EINTR) continue;
            perror("send");
            exit(2);
        }
        c->out_off += (size_t)n;
    }
    c->out_len = c->out_off = 0;
    set_events(c, 0);
}

/* Start the next batch on c if the phase allows; returns 1 when one was started. */
static int start_batch(conn_t *c, double now) {
    int count = 0;
    if (prefill) {
        for (; count < pipeline && next_key < n_keys; count++) add_request(c, 0, next_key++);
    } else {
        if (now >= stop_at || issued >= max_requests) return 0;
        for (; count < pipeline; count++) {
            long long key = (long long)(xorshift(&c->rng) % (uint64_t)n_keys);
            int is_get = workload[0] == 'g' || (workload[0] == 'm' && xorshift(&c->rng) % 10 != 0);
            add_request(c, is_get, key);
        }
        issued += count;
    }
    if (!count) return 0;
    c->awaiting = count;
    c->busy = 1;
    c->sent_at = now;
    flush_out(c);
    return 1;
}

static int line_ok(const char *line, size_t len) {
    if (memmem(line, len < 40 ? len : 40, "\"type\":\"error\"", 14)) return 0;
    return memmem(line, len, "\"success\":true", 14) != NULL || memmem(line, len, "\"success\": true", 15) != NULL;
}

/* Read what is there; handle every complete line. Returns how many batches completed. */
static int read_replies(conn_t *c) {
    int done = 0;
    for (;;) {
        if (c->in_cap - c->in_len < 65536) {
            c->in_cap = c->in_cap ? c->in_cap * 2 : 131072;
            c->in = realloc(c->in, c->in_cap);
            if (!c->in) { perror("realloc"); exit(2); }
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            if (errno == EINTR) continue;
            perror("recv");
            exit(2);
        }
        if (n == 0) { fprintf(stderr, "server closed a connection\n"); exit(2); }
        c->in_len += (size_t)n;
        if ((size_t)n < c->in_cap - c->in_len + (size_t)n) break; /* short read: drained */
    }
    double t = now_s();
    size_t start = 0;
    char *nl;
    while ((nl = memchr(c->in + start, '\n', c->in_len - start)) != NULL) {
        size_t len = (size_t)(nl - (c->in + start));
        int ok = line_ok(c->in + start, len);
        start += len + 1;
        if (!c->busy || c->awaiting <= 0) { fprintf(stderr, "unexpected reply line\n"); exit(2); }
        if (prefill) {
            if (!ok) prefill_errors++;
        } else {
            if (!ok) errors++;
            ops++;
            uint64_t us = (uint64_t)((t - c->sent_at) * 1e6);
            hist[bucket_of(us)]++;
        }
        if (--c->awaiting == 0) { c->busy = 0; done++; }
    }
    if (start) {
        memmove(c->in, c->in + start, c->in_len - start);
        c->in_len -= start;
    }
    return done;
}

/* Run one phase until no connection has a batch in flight and none may start. */
static void run_phase(conn_t *conns) {
    struct epoll_event evs[256];
    int in_flight = 0;
    double t = now_s();
    for (int i = 0; i < n_conns; i++) in_flight += start_batch(&conns[i], t);
    double hard_stop = (prefill ? t + 60.0 : stop_at + 10.0);
    while (in_flight > 0) {
        int n = epoll_wait(epfd, evs, 256, 100);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("epoll_wait");
            exit(2);
        }
        if (now_s() > hard_stop) { fprintf(stderr, "replies did not come back in time\n"); exit(2); }
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (evs[i].events & EPOLLOUT) flush_out(c);
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                int done = read_replies(c);
                if (done) {
                    in_flight -= done;
                    in_flight += start_batch(c, now_s());
                }
            }
        }
    }
}

static double percentile_ms(double q, long long total) {
    if (!total) return -1;
    long long rank = (long long)(q * (double)total);
    if (rank >= total) rank = total - 1;
    long long seen = 0;
    for (int i = 0; i < NBUCKETS; i++) {
        seen += (long long)hist[i];
        if (seen > rank) return bucket_upper(i) / 1000.0;
    }
    return bucket_upper(NBUCKETS - 1) / 1000.0;
}

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen [--host 127.0.0.1] --port P [--conns 50] [--pipeline 1] [--workload set|get|mix]\n"
            "               [--keys 10000] [--value-size 32] [--duration 3] [--max-requests N] [--seed S] [--no-prefill]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    int port = 0, do_prefill = 1;
    uint64_t seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--no-prefill")) { do_prefill = 0; continue; }
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--host")) host = v;
        else if (!strcmp(a, "--port")) port = atoi(v);
        else if (!strcmp(a, "--conns")) n_conns = atoi(v);
        else if (!strcmp(a, "--pipeline")) pipeline = atoi(v);
        else if (!strcmp(a, "--workload")) workload = v;
        else if (!strcmp(a, "--keys")) n_keys = atoi(v);
        else if (!strcmp(a, "--value-size")) value_size = atoi(v);
        else if (!strcmp(a, "--duration")) duration = atof(v);
        else if (!strcmp(a, "--max-requests")) max_requests = atoll(v);
        else if (!strcmp(a, "--seed")) seed = strtoull(v, NULL, 10);
        else usage();
    }
    if (port <= 0 || port > 65535 || n_conns <= 0 || pipeline <= 0 || n_keys <= 0 || value_size < 0 ||
        duration <= 0 || duration > 3600 || max_requests <= 0 ||
        (strcmp(workload, "set") && strcmp(workload, "get") && strcmp(workload, "mix")))
        usage();
    value = malloc((size_t)value_size + 1);
    memset(value, 'x', (size_t)value_size);

    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) { fprintf(stderr, "bad host %s\n", host); return 2; }
    epfd = epoll_create1(0);
    conn_t *conns = calloc((size_t)n_conns, sizeof(conn_t));
    for (int i = 0; i < n_conns; i++) {
        conn_t *c = &conns[i];
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
            perror("connect");
            return 2;
        }
        c->rng = (seed * 1000003ULL + (uint64_t)i * 7919ULL) | 1;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
        c->want_out = 1;
        epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
    }
    /* Wait until every connection is established (writable) or failed. */
    {
        int ready = 0;
        double deadline = now_s() + 10.0;
        struct epoll_event evs[256];
        while (ready < n_conns) {
            if (now_s() > deadline) { fprintf(stderr, "connect timed out\n"); return 2; }
            int n = epoll_wait(epfd, evs, 256, 100);
            for (int i = 0; i < n; i++) {
                conn_t *c = evs[i].data.ptr;
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err || (evs[i].events & (EPOLLERR | EPOLLHUP))) {
                    fprintf(stderr, "connect: %s\n", strerror(err ? err : ECONNREFUSED));
                    return 2;
                }
                if (c->want_out) { set_events(c, 0); ready++; }
            }
        }
    }

    if (do_prefill && strcmp(workload, "set")) {
        prefill = 1;
        next_key = 0;
        run_phase(conns);
        prefill = 0;
    }
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    double t0 = now_s();
    stop_at = t0 + duration;
    run_phase(conns);
    double seconds = now_s() - t0;
    getrusage(RUSAGE_SELF, &ru1);
    double cpu = (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) + (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) * 1e-6 +
                 (ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) + (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) * 1e-6;

    printf("{\"ops\":%lld,\"errors\":%lld,\"seconds\":%.6f,\"ops_per_s\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
           "\"cpu_s\":%.3f,\"prefill_errors\":%lld,\"hist\":[",
           ops, errors, seconds, seconds > 0 ? ops / seconds : 0.0, percentile_ms(0.5, ops), percentile_ms(0.99, ops),
           cpu, prefill_errors);
    int first = 1;
    for (int i = 0; i < NBUCKETS; i++) {
        if (!hist[i]) continue;
        printf("%s[%llu,%llu]", first ? "" : ",", (unsigned long long)bucket_upper(i), (unsigned long long)hist[i]);
        first = 0;
    }
    printf("]}\n");
    for (int i = 0; i < n_conns; i++) close(conns[i].fd);
    return 0;
}
