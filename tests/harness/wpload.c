/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wpload: a load generator and bad-input client for the collector.
 *
 *   wpload mkcerts --ca-dir D --out DIR --agents N [--prefix load]
 *       issue N client certificates DIR/<prefix><i>.crt/.key (i = 0..N-1) with wp_pki;
 *       existing pairs are kept, so a bench reuses them.
 *   wpload load --port P --ca CA --certs DIR --agents N --series M --fields F --rate R
 *               --duration S [--prefix load] [--report FILE] [...]
 *       N simulated agents on one libuv loop, each its own TLS context and certificate:
 *       connect (staggered over --ramp seconds), HELLO, DEFS (M series of F fields), then
 *       every 1/R s a batch of M rows; at most 64 unacked batches per agent, resent after a
 *       reconnect from WELCOME's acked + 1 (like the real agent's spool). Measures values
 *       acked per second, ack latency, handshake and reconnect times, its own CPU and RSS.
 *   wpload raw --port P [--ca CA --cert C --key K | --no-tls] [--hello ID]
 *              [--send HEX_OR_FILE | --frame-len N | --truncate] [--wait S]
 *       one connection that sends what it is told, prints what came back and exits 0 when
 *       the collector closed the connection, 1 when it did not within --wait seconds.
 *
 * Harness code: one process, bounded loops, everything stops after --duration.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "wp/buf.h"
#include "wp/clock.h"
#include "wp/err.h"
#include "wp/mem.h"
#include "wp/pki.h"
#include "wp/tls.h"
#include "wp/wire.h"

#define RING          64         /* unacked batches per agent */
#define SLOT_MS       10         /* send-slot granularity inside a period */
#define RX_FRAME_MAX  (1u << 20) /* largest frame accepted from the collector */
#define MAX_AGENTS    100000
#define LOG_FIRST     5 /* failure messages printed per kind */
#define DEFAULT_SNAME "watchpost-collector"

/* ---- small helpers ------------------------------------------------------------------- */

static double now_s(void)
{
    return (double)uv_hrtime() / 1e9;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    /* xorshift64*: jitter only, not security */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static uint64_t rnd_range(uint64_t lo, uint64_t hi)
{
    if (hi <= lo) {
        return lo;
    }
    return lo + rnd() % (hi - lo + 1);
}

static long parse_long(const char *opt, const char *s, long lo, long hi)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "wpload: %s: expected an integer in %ld..%ld, got \"%s\"\n", opt, lo, hi,
                s);
        exit(2);
    }
    return v;
}

static double parse_double(const char *opt, const char *s, double lo, double hi)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi)) {
        fprintf(stderr, "wpload: %s: expected a number in %g..%g, got \"%s\"\n", opt, lo, hi, s);
        exit(2);
    }
    return v;
}

/* Resident set size in KiB now (from /proc/self/statm). */
static long rss_kib(void)
{
    long pages = 0;
    long rss = 0;
    FILE *f = fopen("/proc/self/statm", "re");

    if (f == NULL) {
        return -1;
    }
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2) {
        rss = -1;
    }
    fclose(f);
    return rss < 0 ? -1 : rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---- histogram: log-linear, 16 buckets per octave (~6% resolution), microseconds ----- */

#define H_NB 1024

struct lhist {
    uint64_t n;
    uint64_t max;
    double sum;
    uint64_t b[H_NB];
};

static unsigned h_idx(uint64_t v)
{
    if (v < 16) {
        return (unsigned)v;
    }
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned o = msb - 4;
    return 16 + o * 16 + (unsigned)((v >> o) & 15);
}

static uint64_t h_upper(unsigned b)
{
    if (b < 16) {
        return b;
    }
    unsigned o = (b - 16) / 16;
    unsigned s = (b - 16) % 16;
    return ((16ull + s + 1) << o) - 1;
}

static void h_add(struct lhist *h, uint64_t us)
{
    unsigned i = h_idx(us);
    h->b[i < H_NB ? i : H_NB - 1]++;
    h->n++;
    h->sum += (double)us;
    if (us > h->max) {
        h->max = us;
    }
}

/* Percentile p (0..1) as the upper bound of its bucket, in ms. */
static double h_pct_ms(const struct lhist *h, double p)
{
    if (h->n == 0) {
        return 0.0;
    }
    uint64_t want = (uint64_t)ceil(p * (double)h->n);
    uint64_t seen = 0;
    if (want == 0) {
        want = 1;
    }
    for (unsigned i = 0; i < H_NB; i++) {
        seen += h->b[i];
        if (seen >= want) {
            uint64_t u = h_upper(i);
            return (double)(u < h->max ? u : h->max) / 1000.0;
        }
    }
    return (double)h->max / 1000.0;
}

/* ---- load mode: state ------------------------------------------------------------------ */

/* One period's batch tail (ts + recs), shared by every agent that sends that period. */
struct ltail {
    unsigned refs;
    uint32_t nvals;
    size_t len;
    uint8_t data[];
};

struct lslot {
    struct ltail *tail;
    uint64_t sent_ns; /* last send on the wire; 0 = not sent on this connection */
};

enum astate { A_IDLE, A_CONNECTING, A_HANDSHAKE, A_HELLO, A_STREAM, A_CLOSING };

enum fail_kind { F_CONNECT, F_TLS, F_AUTH, F_CLOSED, F_TIMEOUT, F_PROTO, F_ERRFRAME, F_NKINDS };

static const char *const fail_names[F_NKINDS] = {"connect", "tls",   "auth",    "closed",
                                                 "timeout", "proto", "errframe"};

struct lrun;

struct lagent {
    struct lrun *R;
    uint32_t idx;
    char id[WP_PKI_NAME_MAX + 1];
    enum astate st;
    struct wp_tls_ctx *ctx;
    struct wp_tls_conn *tls;
    uv_tcp_t tcp;
    int tcp_open;
    uv_connect_t creq;
    uv_timer_t timer;
    struct wp_buf in;  /* decrypted bytes not yet framed */
    uint64_t next_seq; /* next seq to assign */
    uint64_t acked;    /* highest seq acked (or committed per WELCOME) */
    uint64_t sent;     /* highest seq written on the current connection */
    struct lslot ring[RING];
    uint64_t attempt_ns; /* start of the current connection attempt */
    uint64_t down_ns;    /* when streaming stopped; 0 while up or never up */
    uint32_t attempts;   /* failures since the last good connection */
    int ever_streamed;
    int errframe_seen;    /* the collector sent an error frame on this connection */
    struct lagent *snext; /* next agent in the same send slot */
};

struct lopts {
    const char *host;
    int port;
    const char *ca;
    const char *certs;
    const char *prefix;
    const char *report;
    const char *server_name;
    uint32_t agents;
    uint32_t series;
    uint32_t fields;
    double rate;
    double duration;
    double ramp;
    double warmup;          /* seconds of steady streaming before the window opens */
    double connect_timeout; /* wait at most this for all agents before measuring */
    double hs_timeout;
    uint32_t backoff_min_ms, backoff_max_ms;
    int quiet;
};

enum phase { P_RAMP, P_MEASURE, P_DONE };

struct lrun {
    uv_loop_t loop;
    struct lopts o;
    struct sockaddr_in addr;
    struct lagent *ag;
    uv_timer_t tick, prog, stop_t;
    uv_signal_t sigint, sigterm;
    int stopping;
    int fatal;
    enum phase phase;

    struct wp_buf defs;    /* the shared DEFS frame */
    struct wp_buf scratch; /* one plaintext frame at a time */
    struct wp_batch_enc enc;
    struct wp_buf tailbuf;
    struct ltail *cur_tail;
    int64_t cur_period;
    int64_t period_ms;
    uint32_t nslots;
    struct lagent **slots;
    int64_t slot_pos; /* last absolute slot (wall ms / SLOT_MS) processed */

    double t0, t_ready, t_measure, t_end, t_all_up;
    double cpu0, cpu_measure, cpu_end;
    uint32_t n_conn, n_stream, stream_at_end;
    int all_up;
    double down_at;
    uint32_t recoveries;
    double last_recovery_s, max_recovery_s;

    /* counters */
    uint64_t values_acked, values_acked_win, batches_sent, batches_acked, batches_made;
    uint64_t values_committed_welcome;
    uint64_t skipped_ticks, lag_slots, dup_acks, reconnects, hs_full, hs_resumed;
    uint64_t fails[F_NKINDS];
    uint64_t prog_last_acked;
    long rss_max;
    struct lhist ack, hs_full_h, hs_res_h, outage;
};

static void agent_fail(struct lagent *a, enum fail_kind k, const char *why);
static void agent_schedule(struct lagent *a, uint64_t delay_ms);
static void run_stop(struct lrun *R);

/* ---- tails ------------------------------------------------------------------------------- */

static struct ltail *tail_ref(struct ltail *t)
{
    t->refs++;
    return t;
}

static void tail_unref(struct ltail *t)
{
    if (t != NULL && --t->refs == 0) {
        free(t);
    }
}

/* The tail of period k: M rows, ts aligned to the period start, identical for all agents. */
static struct ltail *period_tail(struct lrun *R, int64_t k)
{
    double vals[WP_SERIES_MAX_FIELDS];
    int64_t ts = k * R->period_ms;

    if (R->cur_tail != NULL && R->cur_period == k) {
        return R->cur_tail;
    }
    wp_batch_enc_reset(&R->enc, ts);
    for (uint32_t j = 0; j < R->o.series; j++) {
        for (uint32_t f = 0; f < R->o.fields; f++) {
            vals[f] = (double)((k + j) % 1000) + (double)f * 0.25;
        }
        wp_batch_enc_metric(&R->enc, j + 1, ts, vals, R->o.fields);
    }
    wp_buf_reset(&R->tailbuf);
    wp_batch_enc_finish(&R->enc, &R->tailbuf);
    size_t len = wp_buf_unread(&R->tailbuf);
    struct ltail *t = wp_xmalloc(sizeof(*t) + len);
    t->refs = 1;
    t->nvals = R->o.series * R->o.fields;
    t->len = len;
    memcpy(t->data, wp_buf_head(&R->tailbuf), len);
    tail_unref(R->cur_tail);
    R->cur_tail = t;
    R->cur_period = k;
    return t;
}

/* ---- sockets ----------------------------------------------------------------------------- */

struct wreq {
    uv_write_t req;
    uint8_t data[];
};

static void write_cb(uv_write_t *req, int status)
{
    struct lagent *a = req->handle->data;

    free(req);
    if (status < 0 && status != UV_ECANCELED && a->st != A_CLOSING && a->st != A_IDLE) {
        agent_fail(a, F_CLOSED, uv_strerror(status));
    }
}

/* Write the TLS layer's pending ciphertext: try_write first, queue the rest. */
static void agent_flush(struct lagent *a)
{
    struct wp_buf *out = NULL;
    size_t n = 0;

    if (a->tls == NULL || a->st == A_CLOSING || a->st == A_IDLE) {
        return;
    }
    out = wp_tls_outbuf(a->tls);
    n = wp_buf_unread(out);
    if (n == 0) {
        return;
    }
    uv_buf_t b = uv_buf_init((char *)(out->data + out->off), (unsigned)n);
    int w = uv_try_write((uv_stream_t *)&a->tcp, &b, 1);
    if (w == UV_EAGAIN || w == UV_ENOSYS) {
        w = 0;
    }
    if (w < 0) {
        wp_buf_reset(out);
        agent_fail(a, F_CLOSED, uv_strerror(w));
        return;
    }
    if ((size_t)w < n) {
        size_t rest = n - (size_t)w;
        struct wreq *r = wp_xmalloc(sizeof(*r) + rest);
        memcpy(r->data, wp_buf_head(out) + w, rest);
        uv_buf_t rb = uv_buf_init((char *)r->data, (unsigned)rest);
        int rc = uv_write(&r->req, (uv_stream_t *)&a->tcp, &rb, 1, write_cb);
        if (rc < 0) {
            free(r);
            wp_buf_reset(out);
            agent_fail(a, F_CLOSED, uv_strerror(rc));
            return;
        }
    }
    wp_buf_reset(out);
}

/* Encrypt the scratch frame. */
static int agent_write_scratch(struct lagent *a)
{
    struct lrun *R = a->R;
    if (wp_tls_write(a->tls, wp_buf_head(&R->scratch), wp_buf_unread(&R->scratch)) < 0) {
        agent_fail(a, F_TLS, wp_tls_last_error(a->tls));
        return -1;
    }
    return 0;
}

/* Send every batch from sent + 1 to next_seq - 1 (resends after a WELCOME included). */
static void agent_send_pending(struct lagent *a)
{
    struct lrun *R = a->R;
    uint64_t now = uv_hrtime();

    for (uint64_t s = a->sent + 1; s < a->next_seq && a->st == A_STREAM; s++) {
        struct lslot *sl = &a->ring[s % RING];
        wp_buf_reset(&R->scratch);
        wp_put_batch(&R->scratch, s, sl->tail->data, sl->tail->len);
        if (agent_write_scratch(a) < 0) {
            return;
        }
        sl->sent_ns = now;
        a->sent = s;
        R->batches_sent++;
    }
    agent_flush(a);
}

/* ---- connection lifecycle --------------------------------------------------------------- */

static void note_down(struct lagent *a)
{
    struct lrun *R = a->R;

    if (a->st == A_STREAM) {
        R->n_stream--;
        a->down_ns = uv_hrtime();
        if (R->all_up) {
            R->all_up = 0;
            R->down_at = now_s();
        }
    }
    if (a->st == A_HANDSHAKE || a->st == A_HELLO || a->st == A_STREAM) {
        R->n_conn--;
    }
}

static void tcp_close_cb(uv_handle_t *h)
{
    struct lagent *a = h->data;
    struct lrun *R = a->R;

    a->tcp_open = 0;
    wp_tls_conn_free(a->tls);
    a->tls = NULL;
    wp_buf_reset(&a->in);
    a->st = A_IDLE;
    if (R->stopping) {
        return;
    }
    /* full jitter in [min, min(max, min * 2^n)], like the agent's sender */
    uint64_t hi = R->o.backoff_min_ms;
    for (uint32_t i = 0; i < a->attempts && hi < R->o.backoff_max_ms; i++) {
        hi *= 2;
    }
    if (hi > R->o.backoff_max_ms) {
        hi = R->o.backoff_max_ms;
    }
    a->attempts++;
    agent_schedule(a, rnd_range(R->o.backoff_min_ms, hi));
}

static void agent_close(struct lagent *a)
{
    if (a->st == A_CLOSING || a->st == A_IDLE) {
        return;
    }
    note_down(a);
    a->st = A_CLOSING;
    uv_timer_stop(&a->timer);
    if (a->tcp_open) {
        uv_read_stop((uv_stream_t *)&a->tcp);
        uv_close((uv_handle_t *)&a->tcp, tcp_close_cb);
    } else {
        a->st = A_IDLE;
    }
}

static void agent_fail(struct lagent *a, enum fail_kind k, const char *why)
{
    struct lrun *R = a->R;

    if (a->st == A_CLOSING || a->st == A_IDLE) {
        return;
    }
    if (a->errframe_seen && k == F_CLOSED) {
        k = F_ERRFRAME; /* counted once, as the error frame */
    }
    R->fails[k]++;
    if (R->fails[k] <= LOG_FIRST && !R->o.quiet && !R->stopping) {
        fprintf(stderr, "wpload: agent %s: %s: %s%s\n", a->id, fail_names[k], why,
                R->fails[k] == LOG_FIRST ? " (further ones not shown)" : "");
    }
    agent_close(a);
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    static uint8_t rbuf[64 * 1024]; /* one loop thread: consumed before the next read */
    (void)h;
    (void)hint;
    *buf = uv_buf_init((char *)rbuf, sizeof(rbuf));
}

static void on_welcome(struct lagent *a, uint64_t committed)
{
    struct lrun *R = a->R;
    uint64_t now = uv_hrtime();

    /* batches the collector committed but whose ACK we lost: durable, no latency sample */
    for (uint64_t s = a->acked + 1; s <= committed && s < a->next_seq; s++) {
        struct lslot *sl = &a->ring[s % RING];
        R->values_acked += sl->tail->nvals;
        R->values_committed_welcome += sl->tail->nvals;
        if (R->phase == P_MEASURE) {
            R->values_acked_win += sl->tail->nvals;
        }
        tail_unref(sl->tail);
        sl->tail = NULL;
    }
    if (committed > a->acked) {
        a->acked = committed < a->next_seq ? committed : a->next_seq - 1;
    }
    if (committed >= a->next_seq) {
        /* the collector knows this id from an earlier run: continue its numbering */
        a->next_seq = committed + 1;
        a->acked = committed;
    }
    wp_buf_reset(&R->scratch);
    wp_buf_append(&R->scratch, wp_buf_head(&R->defs), wp_buf_unread(&R->defs));
    if (agent_write_scratch(a) < 0) {
        return;
    }
    uv_timer_stop(&a->timer);
    a->st = A_STREAM;
    R->n_stream++;
    a->attempts = 0;
    if (a->down_ns != 0) {
        h_add(&R->outage, (now - a->down_ns) / 1000);
        R->reconnects++;
        a->down_ns = 0;
    }
    a->ever_streamed = 1;
    a->sent = a->acked;
    agent_send_pending(a);
    if (R->n_stream == R->o.agents && !R->all_up) {
        R->all_up = 1;
        double t = now_s();
        if (R->t_all_up == 0) {
            R->t_all_up = t;
        } else if (R->down_at > 0) {
            double rec = t - R->down_at;
            R->recoveries++;
            R->last_recovery_s = rec;
            if (rec > R->max_recovery_s) {
                R->max_recovery_s = rec;
            }
            fprintf(stderr, "wpload: all %u agents streaming again after %.2f s\n", R->o.agents,
                    rec);
        }
    }
}

static void on_ack(struct lagent *a, uint64_t seq)
{
    struct lrun *R = a->R;
    uint64_t now = uv_hrtime();

    if (seq <= a->acked || seq >= a->next_seq) {
        R->dup_acks++;
        return;
    }
    for (uint64_t s = a->acked + 1; s <= seq; s++) {
        struct lslot *sl = &a->ring[s % RING];
        if (sl->sent_ns != 0 && s <= a->sent && R->phase == P_MEASURE) {
            h_add(&R->ack, (now - sl->sent_ns) / 1000);
        }
        R->values_acked += sl->tail->nvals;
        if (R->phase == P_MEASURE) {
            R->values_acked_win += sl->tail->nvals;
        }
        R->batches_acked++;
        tail_unref(sl->tail);
        sl->tail = NULL;
        sl->sent_ns = 0;
    }
    a->acked = seq;
}

/* Parse every complete frame in a->in. */
static void agent_process(struct lagent *a)
{
    struct wp_msg m;
    char why[200];

    wp_msg_init(&m);
    for (int guard = 0; guard < 100000 && a->st != A_CLOSING && a->st != A_IDLE; guard++) {
        uint32_t len = 0;
        int rc = wp_frame_peek(wp_buf_head(&a->in), wp_buf_unread(&a->in), RX_FRAME_MAX, &len);
        if (rc == WP_EAGAIN) {
            break;
        }
        if (rc < 0) {
            agent_fail(a, F_PROTO, "bad frame header from the collector");
            break;
        }
        if (wp_buf_unread(&a->in) < WP_FRAME_HDR + (size_t)len) {
            break;
        }
        rc = wp_msg_decode(&m, wp_buf_head(&a->in) + WP_FRAME_HDR, len);
        if (rc < 0) {
            snprintf(why, sizeof(why), "bad frame from the collector: %s", wp_strerror(rc));
            agent_fail(a, F_PROTO, why);
            break;
        }
        switch (m.type) {
        case WP_MSG_WELCOME:
            if (a->st == A_HELLO) {
                on_welcome(a, m.u.welcome.acked);
            } else {
                agent_fail(a, F_PROTO, "unexpected welcome");
            }
            break;
        case WP_MSG_ACK:
            on_ack(a, m.u.ack.seq);
            break;
        case WP_MSG_ERROR:
            snprintf(why, sizeof(why), "error frame: %.*s", (int)m.u.error.msg.len,
                     m.u.error.msg.p);
            a->errframe_seen = 1;
            agent_fail(a, F_ERRFRAME, why);
            break;
        default:
            snprintf(why, sizeof(why), "unexpected %s frame", wp_msg_name(m.type));
            agent_fail(a, F_PROTO, why);
            break;
        }
        wp_msg_cleanup(&m);
        if (a->st != A_CLOSING && a->st != A_IDLE) {
            wp_buf_consume(&a->in, WP_FRAME_HDR + (size_t)len);
        }
    }
    wp_msg_cleanup(&m);
    if (wp_buf_unread(&a->in) == 0) {
        wp_buf_reset(&a->in);
    }
}

static void handshake_done(struct lagent *a)
{
    struct lrun *R = a->R;
    uint64_t us = (uv_hrtime() - a->attempt_ns) / 1000;

    if (wp_tls_resumed(a->tls)) {
        R->hs_resumed++;
        h_add(&R->hs_res_h, us);
    } else {
        R->hs_full++;
        h_add(&R->hs_full_h, us);
    }
    wp_buf_reset(&R->scratch);
    wp_put_hello(&R->scratch, a->id, a->id, "wpload", NULL, (int64_t)(R->t0 * 1000.0));
    a->st = A_HELLO;
    if (agent_write_scratch(a) == 0) {
        agent_flush(a);
    }
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct lagent *a = st->data;

    if (a->st == A_CLOSING || a->st == A_IDLE) {
        return;
    }
    if (nread < 0) {
        agent_fail(a, F_CLOSED,
                   nread == UV_EOF ? "closed by the collector" : uv_strerror((int)nread));
        return;
    }
    if (nread == 0) {
        return;
    }
    wp_tls_feed(a->tls, buf->base, (size_t)nread);
    if (a->st == A_HANDSHAKE) {
        int rc = wp_tls_handshake(a->tls);
        agent_flush(a);
        if (rc == WP_EAGAIN) {
            return;
        }
        if (rc < 0) {
            agent_fail(a, rc == WP_EAUTH ? F_AUTH : F_TLS, wp_tls_last_error(a->tls));
            return;
        }
        handshake_done(a);
        if (a->st != A_HELLO) {
            return;
        }
    }
    for (int guard = 0; guard < 4096; guard++) {
        uint8_t *dst = wp_buf_reserve(&a->in, 16384);
        ssize_t n = wp_tls_read(a->tls, dst, 16384);
        if (n == WP_EAGAIN) {
            break;
        }
        if (n == WP_ECLOSED) {
            agent_fail(a, F_CLOSED, "close_notify from the collector");
            return;
        }
        if (n < 0) {
            agent_fail(a, F_TLS, wp_tls_last_error(a->tls));
            return;
        }
        a->in.len += (size_t)n;
    }
    agent_flush(a);
    agent_process(a);
}

static void connect_cb(uv_connect_t *req, int status)
{
    struct lagent *a = req->data;

    if (a->st != A_CONNECTING) {
        return; /* closed meanwhile (timeout or stop) */
    }
    if (status < 0) {
        agent_fail(a, F_CONNECT, uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(&a->tcp, 1);
    if (wp_tls_conn_new(a->ctx, a->R->o.server_name, &a->tls) < 0) {
        agent_fail(a, F_TLS, "cannot create TLS state");
        return;
    }
    a->st = A_HANDSHAKE;
    a->R->n_conn++;
    a->errframe_seen = 0;
    int rc = wp_tls_handshake(a->tls);
    if (rc != WP_EAGAIN && rc < 0) {
        agent_fail(a, F_TLS, wp_tls_last_error(a->tls));
        return;
    }
    agent_flush(a);
    rc = uv_read_start((uv_stream_t *)&a->tcp, alloc_cb, read_cb);
    if (rc < 0) {
        agent_fail(a, F_CONNECT, uv_strerror(rc));
    }
}

static void agent_timer_cb(uv_timer_t *t);

/* Open a context on first use (spreads the key loading over the ramp). */
static int agent_ctx(struct lagent *a)
{
    struct lrun *R = a->R;
    char crt[4096];
    char key[4096];
    char err[512];

    if (a->ctx != NULL) {
        return 0;
    }
    snprintf(crt, sizeof(crt), "%s/%s.crt", R->o.certs, a->id);
    snprintf(key, sizeof(key), "%s/%s.key", R->o.certs, a->id);
    struct wp_tls_opts to = {
        .ca_path = R->o.ca,
        .cert_path = crt,
        .key_path = key,
        .is_server = 0,
    };
    int rc = wp_tls_ctx_new(&to, err, sizeof(err), &a->ctx);
    if (rc < 0) {
        fprintf(stderr, "wpload: agent %s: %s\n", a->id, err);
        return rc;
    }
    return 0;
}

static void agent_connect(struct lagent *a)
{
    struct lrun *R = a->R;

    if (agent_ctx(a) < 0) {
        R->fatal = 1;
        run_stop(R);
        return;
    }
    uv_tcp_init(&R->loop, &a->tcp);
    a->tcp.data = a;
    a->tcp_open = 1;
    a->creq.data = a;
    a->attempt_ns = uv_hrtime();
    a->st = A_CONNECTING;
    /* connect, handshake and WELCOME must finish within hs_timeout */
    uv_timer_start(&a->timer, agent_timer_cb, (uint64_t)(R->o.hs_timeout * 1000.0), 0);
    int rc = uv_tcp_connect(&a->creq, &a->tcp, (const struct sockaddr *)&R->addr, connect_cb);
    if (rc < 0) {
        agent_fail(a, F_CONNECT, uv_strerror(rc));
    }
}

static void agent_timer_cb(uv_timer_t *t)
{
    struct lagent *a = t->data;

    if (a->R->stopping) {
        return;
    }
    if (a->st == A_IDLE) {
        agent_connect(a);
    } else if (a->st != A_STREAM && a->st != A_CLOSING) {
        agent_fail(a, F_TIMEOUT,
                   a->st == A_CONNECTING  ? "TCP connect timeout"
                   : a->st == A_HANDSHAKE ? "TLS handshake timeout"
                                          : "no WELCOME");
    }
}

static void agent_schedule(struct lagent *a, uint64_t delay_ms)
{
    uv_timer_start(&a->timer, agent_timer_cb, delay_ms, 0);
}

/* The agent's turn in this period: make a batch (spooled while down) and send it. */
static void agent_tick(struct lagent *a, struct ltail *t)
{
    struct lrun *R = a->R;

    if (!a->ever_streamed) {
        return; /* no history before the first WELCOME */
    }
    if (a->next_seq - 1 - a->acked >= RING) {
        R->skipped_ticks++;
        return;
    }
    uint64_t seq = a->next_seq++;
    struct lslot *sl = &a->ring[seq % RING];
    sl->tail = tail_ref(t);
    sl->sent_ns = 0;
    R->batches_made++;
    if (a->st == A_STREAM) {
        agent_send_pending(a);
    }
}

/* ---- run control ------------------------------------------------------------------------- */

static void stop_cb(uv_timer_t *t)
{
    run_stop(t->data);
}

static void begin_measure(struct lrun *R)
{
    R->phase = P_MEASURE;
    R->t_measure = now_s();
    R->cpu_measure = cpu_s();
    uv_timer_start(&R->stop_t, stop_cb, (uint64_t)(R->o.duration * 1000.0), 0);
    fprintf(stderr, "wpload: measuring for %.0f s (%u of %u agents streaming)\n", R->o.duration,
            R->n_stream, R->o.agents);
}

static void tick_cb(uv_timer_t *t)
{
    struct lrun *R = t->data;
    int64_t target = wp_clock_now_ms() / SLOT_MS;

    if (R->stopping) {
        return;
    }
    if (target - R->slot_pos > (int64_t)R->nslots) {
        R->lag_slots += (uint64_t)(target - R->slot_pos - (int64_t)R->nslots);
        R->slot_pos = target - (int64_t)R->nslots;
    }
    for (int64_t s = R->slot_pos + 1; s <= target; s++) {
        int64_t k = (s * SLOT_MS) / R->period_ms;
        struct lagent *a = R->slots[(uint64_t)s % R->nslots];
        if (a == NULL) {
            continue;
        }
        struct ltail *tl = period_tail(R, k);
        for (; a != NULL && !R->stopping; a = a->snext) {
            agent_tick(a, tl);
        }
    }
    R->slot_pos = target;
}

static void prog_cb(uv_timer_t *t)
{
    struct lrun *R = t->data;
    double el = now_s() - R->t0;
    long rss = rss_kib();

    if (rss > R->rss_max) {
        R->rss_max = rss;
    }
    if (R->phase == P_RAMP && R->t_ready == 0 &&
        (R->n_stream == R->o.agents || el >= R->o.ramp + R->o.connect_timeout)) {
        R->t_ready = now_s();
    }
    if (R->phase == P_RAMP && R->t_ready > 0 && now_s() >= R->t_ready + R->o.warmup) {
        begin_measure(R);
    }
    if (!R->o.quiet) {
        fprintf(stderr,
                "[%7.1fs] conn=%u stream=%u acked/s=%" PRIu64 " hs_full=%" PRIu64
                " hs_resumed=%" PRIu64 " reconnects=%" PRIu64 " fails=%" PRIu64 "/%" PRIu64
                "/%" PRIu64 "/%" PRIu64 "/%" PRIu64 " rss=%ldMiB\n",
                el, R->n_conn, R->n_stream, R->values_acked - R->prog_last_acked, R->hs_full,
                R->hs_resumed, R->reconnects, R->fails[F_CONNECT],
                R->fails[F_TLS] + R->fails[F_AUTH], R->fails[F_CLOSED], R->fails[F_TIMEOUT],
                R->fails[F_PROTO] + R->fails[F_ERRFRAME], rss / 1024);
    }
    R->prog_last_acked = R->values_acked;
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        uv_close(h, h->type == UV_TCP ? tcp_close_cb : NULL);
    }
}

static void run_stop(struct lrun *R)
{
    if (R->stopping) {
        return;
    }
    R->t_end = now_s();
    R->cpu_end = cpu_s();
    if (R->phase == P_RAMP) {
        R->t_measure = R->t_end;
        R->cpu_measure = R->cpu_end;
    }
    R->phase = P_DONE;
    R->stopping = 1;
    R->stream_at_end = R->n_stream;
    for (uint32_t i = 0; i < R->o.agents; i++) {
        struct lagent *a = &R->ag[i];
        if (a->st != A_IDLE && a->st != A_CLOSING) {
            note_down(a);
            a->st = A_CLOSING;
        }
    }
    uv_walk(&R->loop, close_walk_cb, NULL);
}

static void signal_cb(uv_signal_t *s, int signum)
{
    (void)signum;
    run_stop(s->data);
}

/* ---- report ------------------------------------------------------------------------------- */

static void report(struct lrun *R)
{
    double win = R->t_end - R->t_measure;
    double cpu_win = R->cpu_end - R->cpu_measure;
    double total = R->t_end - R->t0;
    double cpu_total = R->cpu_end - R->cpu0;
    char buf[8192];
    FILE *f = NULL;
    long rss = rss_kib();

    if (rss > R->rss_max) {
        R->rss_max = rss;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    snprintf(buf, sizeof(buf),
             "agents=%u\nseries=%u\nfields=%u\nrate=%g\nvalues_offered_per_s=%.0f\n"
             "window_s=%.2f\nrun_s=%.2f\nconnect_all_s=%.2f\nstreaming_at_end=%u\n"
             "values_acked_total=%" PRIu64 "\nvalues_acked_window=%" PRIu64
             "\nvalues_acked_per_s=%.0f\nvalues_committed_by_welcome=%" PRIu64 "\n"
             "batches_made=%" PRIu64 "\nbatches_sent=%" PRIu64 "\nbatches_acked=%" PRIu64
             "\nskipped_ticks=%" PRIu64 "\nlag_slots=%" PRIu64 "\ndup_acks=%" PRIu64 "\n"
             "ack_samples=%" PRIu64
             "\nack_p50_ms=%.2f\nack_p90_ms=%.2f\nack_p99_ms=%.2f\nack_max_ms=%.2f\n"
             "hs_full=%" PRIu64 "\nhs_full_p50_ms=%.2f\nhs_full_p99_ms=%.2f\nhs_full_max_ms=%.2f\n"
             "hs_resumed=%" PRIu64 "\nhs_resumed_p50_ms=%.2f\nhs_resumed_p99_ms=%.2f\n"
             "reconnects=%" PRIu64 "\noutage_p50_ms=%.1f\noutage_p99_ms=%.1f\noutage_max_ms=%.1f\n"
             "recoveries=%u\nlast_recovery_s=%.2f\nmax_recovery_s=%.2f\n"
             "fail_connect=%" PRIu64 "\nfail_tls=%" PRIu64 "\nfail_auth=%" PRIu64
             "\nfail_closed=%" PRIu64 "\nfail_timeout=%" PRIu64 "\nfail_proto=%" PRIu64
             "\nfail_errframe=%" PRIu64 "\n"
             "cpu_window_s=%.2f\ncpu_window_pct=%.1f\ncpu_total_s=%.2f\ncpu_total_pct=%.1f\n"
             "rss_max_kib=%ld\nmaxrss_kib=%ld\n",
             R->o.agents, R->o.series, R->o.fields, R->o.rate,
             (double)R->o.agents * R->o.series * R->o.fields * R->o.rate, win, total,
             R->t_all_up > 0 ? R->t_all_up - R->t0 : -1.0, R->stream_at_end, R->values_acked,
             R->values_acked_win, win > 0 ? (double)R->values_acked_win / win : 0.0,
             R->values_committed_welcome, R->batches_made, R->batches_sent, R->batches_acked,
             R->skipped_ticks, R->lag_slots, R->dup_acks, R->ack.n, h_pct_ms(&R->ack, 0.5),
             h_pct_ms(&R->ack, 0.9), h_pct_ms(&R->ack, 0.99), (double)R->ack.max / 1000.0,
             R->hs_full, h_pct_ms(&R->hs_full_h, 0.5), h_pct_ms(&R->hs_full_h, 0.99),
             (double)R->hs_full_h.max / 1000.0, R->hs_resumed, h_pct_ms(&R->hs_res_h, 0.5),
             h_pct_ms(&R->hs_res_h, 0.99), R->reconnects, h_pct_ms(&R->outage, 0.5),
             h_pct_ms(&R->outage, 0.99), (double)R->outage.max / 1000.0, R->recoveries,
             R->last_recovery_s, R->max_recovery_s, R->fails[F_CONNECT], R->fails[F_TLS],
             R->fails[F_AUTH], R->fails[F_CLOSED], R->fails[F_TIMEOUT], R->fails[F_PROTO],
             R->fails[F_ERRFRAME], cpu_win, win > 0 ? 100.0 * cpu_win / win : 0.0, cpu_total,
             total > 0 ? 100.0 * cpu_total / total : 0.0, R->rss_max, ru.ru_maxrss);
    printf("---- wpload summary\n%s", buf);
    fflush(stdout);
    if (R->o.report != NULL) {
        f = fopen(R->o.report, "we");
        if (f == NULL || fputs(buf, f) == EOF) {
            fprintf(stderr, "wpload: cannot write %s: %s\n", R->o.report, strerror(errno));
        }
        if (f != NULL) {
            fclose(f);
        }
    }
}

/* ---- load mode: main --------------------------------------------------------------------- */

static void load_usage(void)
{
    fprintf(stderr,
            "usage: wpload load --port P --ca CA --certs DIR --agents N --series M --fields F\n"
            "                   --rate R --duration S [--prefix load] [--report FILE]\n"
            "                   [--host 127.0.0.1] [--server-name watchpost-collector]\n"
            "                   [--ramp S] [--warmup S] [--connect-timeout S] [--hs-timeout S]\n"
            "                   [--backoff-min MS] [--backoff-max MS] [--quiet]\n"
            "  --duration: the measured window, which opens --warmup s after every agent\n"
            "  streams (or --ramp + --connect-timeout s after the start)\n"
            "  --ramp: connects are spread over this (default 2 + N/50 s: a full handshake\n"
            "  costs ~10 ms of CPU on each side)\n");
}

static int load_main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"port", required_argument, NULL, 'p'},
        {"host", required_argument, NULL, 'H'},
        {"ca", required_argument, NULL, 'c'},
        {"certs", required_argument, NULL, 'C'},
        {"agents", required_argument, NULL, 'n'},
        {"series", required_argument, NULL, 'm'},
        {"fields", required_argument, NULL, 'f'},
        {"rate", required_argument, NULL, 'r'},
        {"duration", required_argument, NULL, 'd'},
        {"prefix", required_argument, NULL, 'P'},
        {"report", required_argument, NULL, 'o'},
        {"server-name", required_argument, NULL, 's'},
        {"ramp", required_argument, NULL, 'R'},
        {"warmup", required_argument, NULL, 'W'},
        {"connect-timeout", required_argument, NULL, 'T'},
        {"hs-timeout", required_argument, NULL, 't'},
        {"backoff-min", required_argument, NULL, 'b'},
        {"backoff-max", required_argument, NULL, 'B'},
        {"quiet", no_argument, NULL, 'q'},
        {NULL, 0, NULL, 0},
    };
    struct lrun *R = wp_xcalloc(1, sizeof(*R));
    int opt = 0;
    int rc = 0;

    R->o = (struct lopts){
        .host = "127.0.0.1",
        .prefix = "load",
        .server_name = DEFAULT_SNAME,
        .series = 10,
        .fields = 10,
        .rate = 1.0,
        .duration = 30,
        .ramp = -1,
        .connect_timeout = 120,
        .hs_timeout = 30,
        .backoff_min_ms = 500,
        .backoff_max_ms = 10000,
    };
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (opt) {
        case 'p':
            R->o.port = (int)parse_long("--port", optarg, 1, 65535);
            break;
        case 'H':
            R->o.host = optarg;
            break;
        case 'c':
            R->o.ca = optarg;
            break;
        case 'C':
            R->o.certs = optarg;
            break;
        case 'n':
            R->o.agents = (uint32_t)parse_long("--agents", optarg, 1, MAX_AGENTS);
            break;
        case 'm':
            R->o.series = (uint32_t)parse_long("--series", optarg, 1, 100000);
            break;
        case 'f':
            R->o.fields = (uint32_t)parse_long("--fields", optarg, 1, WP_SERIES_MAX_FIELDS);
            break;
        case 'r':
            R->o.rate = parse_double("--rate", optarg, 0.001, 100);
            break;
        case 'd':
            R->o.duration = parse_double("--duration", optarg, 1, 86400);
            break;
        case 'P':
            R->o.prefix = optarg;
            break;
        case 'o':
            R->o.report = optarg;
            break;
        case 's':
            R->o.server_name = optarg[0] ? optarg : NULL;
            break;
        case 'R':
            R->o.ramp = parse_double("--ramp", optarg, 0, 3600);
            break;
        case 'W':
            R->o.warmup = parse_double("--warmup", optarg, 0, 3600);
            break;
        case 'T':
            R->o.connect_timeout = parse_double("--connect-timeout", optarg, 0, 3600);
            break;
        case 't':
            R->o.hs_timeout = parse_double("--hs-timeout", optarg, 1, 600);
            break;
        case 'b':
            R->o.backoff_min_ms = (uint32_t)parse_long("--backoff-min", optarg, 1, 600000);
            break;
        case 'B':
            R->o.backoff_max_ms = (uint32_t)parse_long("--backoff-max", optarg, 1, 600000);
            break;
        case 'q':
            R->o.quiet = 1;
            break;
        default:
            load_usage();
            free(R);
            return 2;
        }
    }
    if (R->o.port == 0 || R->o.ca == NULL || R->o.certs == NULL || R->o.agents == 0) {
        load_usage();
        free(R);
        return 2;
    }
    if (R->o.backoff_max_ms < R->o.backoff_min_ms) {
        R->o.backoff_max_ms = R->o.backoff_min_ms;
    }
    if (R->o.ramp < 0) {
        R->o.ramp = 2.0 + R->o.agents / 50.0; /* ~10 ms of CPU per full handshake, each side */
    }
    if (uv_ip4_addr(R->o.host, R->o.port, &R->addr) != 0) {
        fprintf(stderr, "wpload: --host must be an IPv4 address\n");
        free(R);
        return 2;
    }
    rng_state ^= (uint64_t)getpid() * 0x100000001b3ull ^ uv_hrtime();
    signal(SIGPIPE, SIG_IGN);

    R->period_ms = (int64_t)llround(1000.0 / R->o.rate);
    if (R->period_ms < SLOT_MS) {
        R->period_ms = SLOT_MS;
    }
    R->period_ms = (R->period_ms / SLOT_MS) * SLOT_MS;
    R->nslots = (uint32_t)(R->period_ms / SLOT_MS);
    R->slots = wp_xcalloc(R->nslots, sizeof(*R->slots));

    /* the shared DEFS frame: series j+1 = load/s<j> with fields f0.. */
    {
        struct wp_series_def *defs = wp_xcalloc(R->o.series, sizeof(*defs));
        char(*insts)[16] = wp_xcalloc(R->o.series, sizeof(*insts));
        static char fnames[WP_SERIES_MAX_FIELDS][16];
        for (uint32_t f = 0; f < R->o.fields; f++) {
            snprintf(fnames[f], sizeof(fnames[f]), "f%u", f);
        }
        for (uint32_t j = 0; j < R->o.series; j++) {
            snprintf(insts[j], sizeof(insts[j]), "s%u", j);
            defs[j].id = j + 1;
            defs[j].group = (struct wp_str){"load", 4};
            defs[j].inst = (struct wp_str){insts[j], (uint32_t)strlen(insts[j])};
            defs[j].nfields = R->o.fields;
            for (uint32_t f = 0; f < R->o.fields; f++) {
                defs[j].fields[f] = (struct wp_str){fnames[f], (uint32_t)strlen(fnames[f])};
            }
            defs[j].type = WP_DS_GAUGE;
            defs[j].step_s = R->period_ms >= 1000 ? (uint32_t)(R->period_ms / 1000) : 1;
        }
        wp_buf_init(&R->defs);
        wp_put_defs(&R->defs, defs, R->o.series);
        free(defs);
        free(insts);
    }
    wp_buf_init(&R->scratch);
    wp_buf_init(&R->tailbuf);
    wp_batch_enc_init(&R->enc, 0);
    R->cur_period = -1;

    uv_loop_init(&R->loop);
    R->ag = wp_xcalloc(R->o.agents, sizeof(*R->ag));
    R->t0 = now_s();
    R->cpu0 = cpu_s();
    for (uint32_t i = 0; i < R->o.agents; i++) {
        struct lagent *a = &R->ag[i];
        a->R = R;
        a->idx = i;
        snprintf(a->id, sizeof(a->id), "%s%u", R->o.prefix, i);
        if (!wp_pki_name_ok(a->id)) {
            fprintf(stderr, "wpload: \"%s\" is not a valid agent id\n", a->id);
            R->fatal = 1;
        }
        wp_buf_init(&a->in);
        a->next_seq = 1;
        uv_timer_init(&R->loop, &a->timer);
        a->timer.data = a;
        /* spread sends evenly over the period, connects evenly over the ramp */
        uint32_t slot = (uint32_t)(((uint64_t)i * R->nslots) / R->o.agents);
        a->snext = R->slots[slot];
        R->slots[slot] = a;
        uint64_t at = (uint64_t)(R->o.ramp * 1000.0 * i / R->o.agents);
        agent_schedule(a, at + rnd_range(0, 50));
    }
    uv_timer_init(&R->loop, &R->tick);
    uv_timer_init(&R->loop, &R->prog);
    uv_timer_init(&R->loop, &R->stop_t);
    R->tick.data = R;
    R->prog.data = R;
    R->stop_t.data = R;
    R->slot_pos = wp_clock_now_ms() / SLOT_MS;
    uv_timer_start(&R->tick, tick_cb, SLOT_MS, SLOT_MS);
    uv_timer_start(&R->prog, prog_cb, 1000, 1000);
    uv_signal_init(&R->loop, &R->sigint);
    uv_signal_init(&R->loop, &R->sigterm);
    R->sigint.data = R;
    R->sigterm.data = R;
    uv_signal_start(&R->sigint, signal_cb, SIGINT);
    uv_signal_start(&R->sigterm, signal_cb, SIGTERM);
    fprintf(stderr,
            "wpload: %u agents x %u series x %u fields every %lld ms = %.0f values/s offered; "
            "ramp %.1f s\n",
            R->o.agents, R->o.series, R->o.fields, (long long)R->period_ms,
            (double)R->o.agents * R->o.series * R->o.fields * 1000.0 / (double)R->period_ms,
            R->o.ramp);
    if (R->fatal) {
        run_stop(R);
    }
    uv_run(&R->loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 10 && uv_loop_close(&R->loop) == UV_EBUSY; i++) {
        uv_run(&R->loop, UV_RUN_NOWAIT);
    }
    if (!R->fatal) {
        report(R);
    }
    rc = R->fatal ? 1 : 0;
    for (uint32_t i = 0; i < R->o.agents; i++) {
        struct lagent *a = &R->ag[i];
        for (uint64_t s = a->acked + 1; s < a->next_seq; s++) {
            tail_unref(a->ring[s % RING].tail);
        }
        wp_tls_conn_free(a->tls);
        wp_tls_ctx_free(a->ctx);
        wp_buf_cleanup(&a->in);
    }
    tail_unref(R->cur_tail);
    free(R->ag);
    free(R->slots);
    wp_buf_cleanup(&R->defs);
    wp_buf_cleanup(&R->scratch);
    wp_buf_cleanup(&R->tailbuf);
    wp_batch_enc_cleanup(&R->enc);
    free(R);
    return rc;
}

/* ---- mkcerts ------------------------------------------------------------------------------ */

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static int mkcerts_main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"ca-dir", required_argument, NULL, 'c'},
        {"out", required_argument, NULL, 'o'},
        {"agents", required_argument, NULL, 'n'},
        {"prefix", required_argument, NULL, 'P'},
        {NULL, 0, NULL, 0},
    };
    const char *ca = NULL;
    const char *out = NULL;
    const char *prefix = "load";
    long n = 0;
    int opt = 0;
    char err[512];
    char name[WP_PKI_NAME_MAX + 8];
    char path[4096];
    long issued = 0;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (opt) {
        case 'c':
            ca = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'n':
            n = parse_long("--agents", optarg, 1, MAX_AGENTS);
            break;
        case 'P':
            prefix = optarg;
            break;
        default:
            fprintf(stderr, "usage: wpload mkcerts --ca-dir D --out DIR --agents N [--prefix P]\n");
            return 2;
        }
    }
    if (ca == NULL || out == NULL || n == 0) {
        fprintf(stderr, "usage: wpload mkcerts --ca-dir D --out DIR --agents N [--prefix P]\n");
        return 2;
    }
    if (mkdir(out, 0700) < 0 && errno != EEXIST) {
        fprintf(stderr, "wpload: mkdir %s: %s\n", out, strerror(errno));
        return 1;
    }
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "%s%ld", prefix, i);
        snprintf(path, sizeof(path), "%s/%s.crt", out, name);
        if (file_exists(path)) {
            snprintf(path, sizeof(path), "%s/%s.key", out, name);
            if (file_exists(path)) {
                continue;
            }
        }
        /* wp_pki makes a fresh P-256 key per certificate: it has no key-reuse call */
        int rc = wp_pki_issue(ca, name, WP_PKI_CLIENT, WP_PKI_CERT_DAYS, out, err, sizeof(err));
        if (rc < 0) {
            fprintf(stderr, "wpload: issue %s: %s\n", name, err);
            return 1;
        }
        issued++;
        if (issued % 1000 == 0) {
            fprintf(stderr, "wpload: issued %ld certificates (%.1f s)\n", issued, now_s() - t0);
        }
    }
    double el = now_s() - t0;
    printf("mkcerts: issued=%ld kept=%ld seconds=%.2f ms_per_cert=%.2f\n", issued, n - issued, el,
           issued > 0 ? el * 1000.0 / (double)issued : 0.0);
    return 0;
}

/* ---- raw mode ------------------------------------------------------------------------------ */

struct rawc {
    int fd;
    struct wp_tls_ctx *ctx;
    struct wp_tls_conn *tls;
    struct wp_buf plain; /* decrypted, not yet framed */
    int closed;          /* the collector closed (EOF, reset, close_notify, TLS alert) */
    char why[300];
    uint64_t acked;
};

static int send_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0) {
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int raw_flush(struct rawc *c)
{
    if (c->tls == NULL) {
        return 0;
    }
    struct wp_buf *out = wp_tls_outbuf(c->tls);
    int rc = send_all(c->fd, wp_buf_head(out), wp_buf_unread(out));
    wp_buf_reset(out);
    return rc;
}

/* Receive once (waiting up to ms): >0 bytes fed or appended, 0 on timeout, <0 closed. */
static int raw_recv(struct rawc *c, int ms)
{
    uint8_t buf[16384];
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};

    int pr = poll(&pfd, 1, ms);
    if (pr == 0) {
        return 0;
    }
    if (pr < 0) {
        return errno == EINTR ? 0 : -errno;
    }
    ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
    if (n == 0) {
        snprintf(c->why, sizeof(c->why), "EOF");
        c->closed = 1;
        return -1;
    }
    if (n < 0) {
        snprintf(c->why, sizeof(c->why), "%s", strerror(errno));
        c->closed = 1;
        return -1;
    }
    if (c->tls != NULL) {
        wp_tls_feed(c->tls, buf, (size_t)n);
    } else {
        wp_buf_append(&c->plain, buf, (size_t)n);
        printf("recv raw %zd bytes\n", n);
    }
    return (int)n;
}

/* Decrypt what is buffered and print every complete frame; 1 when a WELCOME arrived. */
static int raw_drain(struct rawc *c)
{
    int welcome = 0;
    struct wp_msg m;

    if (c->tls == NULL) {
        return 0;
    }
    for (int guard = 0; guard < 1024; guard++) {
        uint8_t *dst = wp_buf_reserve(&c->plain, 16384);
        ssize_t n = wp_tls_read(c->tls, dst, 16384);
        if (n == WP_EAGAIN) {
            break;
        }
        if (n < 0) {
            snprintf(c->why, sizeof(c->why), "%s",
                     n == WP_ECLOSED ? "close_notify" : wp_tls_last_error(c->tls));
            c->closed = 1;
            break;
        }
        c->plain.len += (size_t)n;
    }
    raw_flush(c);
    wp_msg_init(&m);
    for (int guard = 0; guard < 1024; guard++) {
        uint32_t len = 0;
        int rc =
            wp_frame_peek(wp_buf_head(&c->plain), wp_buf_unread(&c->plain), RX_FRAME_MAX, &len);
        if (rc == WP_EAGAIN || (rc == 0 && wp_buf_unread(&c->plain) < WP_FRAME_HDR + len)) {
            break;
        }
        if (rc < 0) {
            printf("recv bad frame header: %s\n", wp_strerror(rc));
            wp_buf_reset(&c->plain);
            break;
        }
        rc = wp_msg_decode(&m, wp_buf_head(&c->plain) + WP_FRAME_HDR, len);
        if (rc < 0) {
            printf("recv undecodable frame: %s\n", wp_strerror(rc));
        } else if (m.type == WP_MSG_WELCOME) {
            printf("recv welcome acked=%" PRIu64 "\n", m.u.welcome.acked);
            c->acked = m.u.welcome.acked;
            welcome = 1;
        } else if (m.type == WP_MSG_ACK) {
            printf("recv ack seq=%" PRIu64 "\n", m.u.ack.seq);
        } else if (m.type == WP_MSG_ERROR) {
            printf("recv error msg=\"%.*s\"\n", (int)m.u.error.msg.len, m.u.error.msg.p);
        } else {
            printf("recv %s\n", wp_msg_name(m.type));
        }
        wp_msg_cleanup(&m);
        wp_buf_consume(&c->plain, WP_FRAME_HDR + (size_t)len);
    }
    wp_msg_cleanup(&m);
    fflush(stdout);
    return welcome;
}

/* Parse hex (whitespace ignored) or read a file. */
static int load_payload(const char *arg, struct wp_buf *out)
{
    struct stat st;

    if (stat(arg, &st) == 0 && S_ISREG(st.st_mode)) {
        FILE *f = fopen(arg, "rbe");
        if (f == NULL) {
            return -errno;
        }
        uint8_t buf[4096];
        size_t n = 0;
        while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
            wp_buf_append(out, buf, n);
        }
        fclose(f);
        return 0;
    }
    int hi = -1;
    for (const char *p = arg; *p; p++) {
        int v = -1;
        if (*p >= '0' && *p <= '9') {
            v = *p - '0';
        } else if (*p >= 'a' && *p <= 'f') {
            v = *p - 'a' + 10;
        } else if (*p >= 'A' && *p <= 'F') {
            v = *p - 'A' + 10;
        } else if (*p == ' ' || *p == '\n' || *p == '\t' || *p == ':') {
            continue;
        } else {
            return WP_EPROTO;
        }
        if (hi < 0) {
            hi = v;
        } else {
            uint8_t b = (uint8_t)(hi << 4 | v);
            wp_buf_append(out, &b, 1);
            hi = -1;
        }
    }
    return hi < 0 ? 0 : WP_EPROTO;
}

static void raw_usage(void)
{
    fprintf(stderr,
            "usage: wpload raw --port P [--host 127.0.0.1] (--ca CA --cert C --key K | --no-tls)\n"
            "                  [--server-name watchpost-collector] [--hello ID]\n"
            "                  [--send HEX_OR_FILE | --frame-len N | --truncate] [--wait S]\n"
            "exit 0: the collector closed the connection; 1: it did not within --wait s;\n"
            "2: usage or local error\n");
}

static int raw_main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"port", required_argument, NULL, 'p'},
        {"host", required_argument, NULL, 'H'},
        {"ca", required_argument, NULL, 'c'},
        {"cert", required_argument, NULL, 'C'},
        {"key", required_argument, NULL, 'k'},
        {"no-tls", no_argument, NULL, 'N'},
        {"server-name", required_argument, NULL, 's'},
        {"hello", required_argument, NULL, 'h'},
        {"send", required_argument, NULL, 'S'},
        {"frame-len", required_argument, NULL, 'L'},
        {"truncate", no_argument, NULL, 'T'},
        {"wait", required_argument, NULL, 'w'},
        {NULL, 0, NULL, 0},
    };
    const char *host = "127.0.0.1";
    const char *ca = NULL;
    const char *cert = NULL;
    const char *key = NULL;
    const char *sname = DEFAULT_SNAME;
    const char *hello = NULL;
    const char *send_arg = NULL;
    long port = 0;
    long frame_len = -1;
    int no_tls = 0;
    int truncate_frame = 0;
    double wait_s = 5.0;
    int opt = 0;
    int rc = 2;
    char err[512];
    struct rawc c = {.fd = -1};
    struct wp_buf payload;

    wp_buf_init(&payload);
    wp_buf_init(&c.plain);
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (opt) {
        case 'p':
            port = parse_long("--port", optarg, 1, 65535);
            break;
        case 'H':
            host = optarg;
            break;
        case 'c':
            ca = optarg;
            break;
        case 'C':
            cert = optarg;
            break;
        case 'k':
            key = optarg;
            break;
        case 'N':
            no_tls = 1;
            break;
        case 's':
            sname = optarg[0] ? optarg : NULL;
            break;
        case 'h':
            hello = optarg;
            break;
        case 'S':
            send_arg = optarg;
            break;
        case 'L':
            frame_len = parse_long("--frame-len", optarg, 0, 0xffffffffL);
            break;
        case 'T':
            truncate_frame = 1;
            break;
        case 'w':
            wait_s = parse_double("--wait", optarg, 0.1, 600);
            break;
        default:
            raw_usage();
            goto out;
        }
    }
    if (port == 0 || (!no_tls && (ca == NULL || cert == NULL || key == NULL)) ||
        (send_arg != NULL) + (frame_len >= 0) + truncate_frame > 1 || (no_tls && hello)) {
        raw_usage();
        goto out;
    }
    if (send_arg != NULL && load_payload(send_arg, &payload) < 0) {
        fprintf(stderr, "wpload: --send: not a file and not hex: %s\n", send_arg);
        goto out;
    }
    if (frame_len >= 0) {
        uint8_t h[4] = {(uint8_t)(frame_len >> 24), (uint8_t)(frame_len >> 16),
                        (uint8_t)(frame_len >> 8), (uint8_t)frame_len};
        wp_buf_append(&payload, h, 4);
    }
    if (!no_tls) {
        struct wp_tls_opts to = {.ca_path = ca, .cert_path = cert, .key_path = key};
        if (wp_tls_ctx_new(&to, err, sizeof(err), &c.ctx) < 0) {
            fprintf(stderr, "wpload: %s\n", err);
            goto out;
        }
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "wpload: --host must be an IPv4 address\n");
        goto out;
    }
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c.fd < 0 || connect(c.fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        fprintf(stderr, "wpload: connect %s:%ld: %s\n", host, port, strerror(errno));
        goto out;
    }
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    printf("connected %s:%ld\n", host, port);
    rc = 1;

    double deadline = now_s() + 10.0;
    if (!no_tls) {
        if (wp_tls_conn_new(c.ctx, sname, &c.tls) < 0) {
            fprintf(stderr, "wpload: cannot create TLS state\n");
            rc = 2;
            goto out;
        }
        int hs = WP_EAGAIN;
        for (int guard = 0; guard < 10000; guard++) {
            hs = wp_tls_handshake(c.tls);
            raw_flush(&c);
            if (hs != WP_EAGAIN || c.closed || now_s() > deadline) {
                break;
            }
            raw_recv(&c, 200);
        }
        if (hs != 0) {
            printf("handshake failed: %s: %s\n",
                   hs == WP_EAGAIN ? (c.closed ? "closed" : "timeout") : wp_strerror(hs),
                   c.closed && hs == WP_EAGAIN ? c.why : wp_tls_last_error(c.tls));
            /* a refused handshake: the collector closes; see that it does */
            for (int guard = 0; guard < 100 && !c.closed; guard++) {
                if (raw_recv(&c, 50) == 0 && guard > 40) {
                    break;
                }
            }
            printf("closed=%s%s%s\n", c.closed ? "yes" : "no", c.closed ? " why=" : "",
                   c.closed ? c.why : "");
            rc = c.closed || hs == WP_EAUTH ? 0 : 1;
            goto out;
        }
        printf("handshake ok suite=%s resumed=%d\n", wp_tls_suite(c.tls), wp_tls_resumed(c.tls));
    }
    if (hello != NULL) {
        struct wp_buf f;
        wp_buf_init(&f);
        wp_put_hello(&f, hello, hello, "wpload-raw", NULL, 0);
        int wr = wp_tls_write(c.tls, wp_buf_head(&f), wp_buf_unread(&f));
        wp_buf_cleanup(&f);
        if (wr < 0 || raw_flush(&c) < 0) {
            printf("hello: write failed\n");
        }
        deadline = now_s() + 5.0;
        int got = 0;
        for (int guard = 0; guard < 10000 && !got && !c.closed && now_s() < deadline; guard++) {
            raw_recv(&c, 100);
            got = raw_drain(&c);
        }
        if (!got) {
            printf("hello: no welcome%s\n", c.closed ? " (closed)" : "");
        }
    }
    if (truncate_frame) {
        /* a valid batch (one heartbeat), cut in the middle */
        struct wp_batch_enc e;
        struct wp_buf tail;
        wp_batch_enc_init(&e, wp_clock_now_ms());
        wp_buf_init(&tail);
        wp_batch_enc_heartbeat(&e, e.ts_ms);
        wp_batch_enc_finish(&e, &tail);
        wp_put_batch(&payload, c.acked + 1, wp_buf_head(&tail), wp_buf_unread(&tail));
        payload.len = payload.off + wp_buf_unread(&payload) / 2;
        wp_buf_cleanup(&tail);
        wp_batch_enc_cleanup(&e);
    }
    if (!c.closed && wp_buf_unread(&payload) > 0) {
        int wr = 0;
        if (c.tls != NULL) {
            wr = wp_tls_write(c.tls, wp_buf_head(&payload), wp_buf_unread(&payload));
            if (wr == 0) {
                wr = raw_flush(&c);
            }
        } else {
            wr = send_all(c.fd, wp_buf_head(&payload), wp_buf_unread(&payload));
        }
        printf("sent %zu bytes%s\n", wp_buf_unread(&payload), wr < 0 ? " (write failed)" : "");
    }
    deadline = now_s() + wait_s;
    for (int guard = 0; guard < 100000 && !c.closed && now_s() < deadline; guard++) {
        int ms = (int)((deadline - now_s()) * 1000.0);
        raw_recv(&c, ms > 0 ? (ms < 200 ? ms : 200) : 1);
        raw_drain(&c);
    }
    raw_drain(&c);
    printf("closed=%s%s%s\n", c.closed ? "yes" : "no", c.closed ? " why=" : "",
           c.closed ? c.why : "");
    rc = c.closed ? 0 : 1;
out:
    fflush(stdout);
    if (c.fd >= 0) {
        close(c.fd);
    }
    wp_tls_conn_free(c.tls);
    wp_tls_ctx_free(c.ctx);
    wp_buf_cleanup(&c.plain);
    wp_buf_cleanup(&payload);
    return rc;
}

/* ---- main ------------------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "load") == 0) {
        return load_main(argc - 1, argv + 1);
    }
    if (argc >= 2 && strcmp(argv[1], "raw") == 0) {
        return raw_main(argc - 1, argv + 1);
    }
    if (argc >= 2 && strcmp(argv[1], "mkcerts") == 0) {
        return mkcerts_main(argc - 1, argv + 1);
    }
    fprintf(stderr, "usage: wpload load|raw|mkcerts ... (wpload MODE --help)\n");
    return 2;
}
