/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of the ami probe: its message parser (the recorded sessions split at every byte, LF
 * and CRLF, limits) and the probe against a scripted AMI server thread that replays the
 * server side of recorded sessions (tests/fixtures/telephony/ami-session.txt; ami-queues.txt
 * then ami-queues-reconnect.txt, Asterisk 20: queues, calls, contacts, agents, seats). */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <uv.h>

#include "ami.h"
#include "capture.h"
#include "peers.h"
#include "probe.h"
#include "wp/clock.h"
#include "wp/err.h"
#include "wp/mem.h"

extern const struct wp_probe_ops wp_probe_ami;

/* ---- helpers ---- */

static char *load_fixture_named(const char *name, size_t *len)
{
    const char *dir = getenv("WP_FIXTURES");
    char path[1024];
    FILE *fp = NULL;
    char *buf = NULL;
    long n = 0;

    snprintf(path, sizeof(path), "%s/telephony/%s", dir != NULL ? dir : "tests/fixtures", name);
    fp = fopen(path, "rb");
    if (fp == NULL) {
        fail_msg("cannot open %s", path);
    }
    fseek(fp, 0, SEEK_END);
    n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    buf = wp_xmalloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    buf[n] = '\0';
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

static char *load_fixture(size_t *len)
{
    return load_fixture_named("ami-session.txt", len);
}

/* Messages rendered as text: "B banner\n" or "K\tV\n"... then "--\n". */
struct render {
    char *s;
    size_t len, cap;
    int n;
};

static void render_add(struct render *r, const char *a, const char *b, const char *c)
{
    size_t need = strlen(a) + strlen(b) + strlen(c);

    if (r->len + need + 1 > r->cap) {
        r->cap = (r->len + need + 1) * 2;
        r->s = wp_xrealloc(r->s, r->cap);
    }
    memcpy(r->s + r->len, a, strlen(a));
    r->len += strlen(a);
    memcpy(r->s + r->len, b, strlen(b));
    r->len += strlen(b);
    memcpy(r->s + r->len, c, strlen(c));
    r->len += strlen(c);
    r->s[r->len] = '\0';
}

static int render_msg(void *arg, const struct wp_ami_msg *m)
{
    struct render *r = arg;

    if (m->banner != NULL) {
        render_add(r, "B ", m->banner, "\n");
    }
    for (size_t i = 0; i < m->nkeys; i++) {
        render_add(r, m->key[i], "\t", m->val[i]);
        render_add(r, "\n", "", "");
    }
    render_add(r, "--\n", "", "");
    r->n++;
    return 0;
}

/* Feed buf in pieces cut at the offsets cuts[0..ncuts) (ascending); the rendered messages. */
static char *parse_cut(const char *buf, size_t len, const size_t *cuts, size_t ncuts, int *rc)
{
    struct wp_ami_parser p;
    struct render r = {0};
    size_t at = 0;

    wp_ami_parser_init(&p, 1);
    *rc = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        int n = wp_ami_parse_feed(&p, buf + at, end - at, render_msg, &r);
        if (n < 0) {
            *rc = n;
            break;
        }
        at = end;
    }
    wp_ami_parser_cleanup(&p);
    if (r.s == NULL) {
        r.s = wp_xstrdup("");
    }
    return r.s;
}

/* ---- parser tests ---- */

static void parser_every_split(void **state)
{
    size_t len = 0;
    char *fx = load_fixture(&len);
    int rc = 0;
    char *whole = parse_cut(fx, len, NULL, 0, &rc);

    (void)state;
    assert_int_equal(rc, 0);
    /* banner, then 19 messages, client and server side alike */
    assert_non_null(strstr(whole, "B Asterisk Call Manager/11.0.0\n--\n"));
    assert_non_null(strstr(whole, "Event\tDeviceStateListComplete\nActionID\tmon-2\n"
                                  "EventList\tComplete\nListItems\t5\n--\n"));
    assert_non_null(strstr(whole, "Message\tThanks for all the fish.\n--\n"));
    for (size_t k = 1; k < len; k++) {
        char *got = parse_cut(fx, len, &k, 1, &rc);
        assert_int_equal(rc, 0);
        if (strcmp(got, whole) != 0) {
            fail_msg("split at %zu differs", k);
        }
        free(got);
    }
    /* one byte at a time */
    size_t *cuts = wp_xcalloc(len, sizeof(*cuts));
    for (size_t k = 0; k + 1 < len; k++) {
        cuts[k] = k + 1;
    }
    char *bytes = parse_cut(fx, len, cuts, len - 1, &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(bytes, whole);
    free(bytes);
    free(cuts);

    /* bare LF gives the same messages */
    char *lf = wp_xmalloc(len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (fx[i] != '\r') {
            lf[n++] = fx[i];
        }
    }
    char *got = parse_cut(lf, n, NULL, 0, &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(got, whole);
    free(got);
    free(lf);
    free(whole);
    free(fx);
}

static void parser_keys(void **state)
{
    const char *in = "Asterisk Call Manager/2.10.6\n\n\r\nState: INUSE\r\nevent:   "
                     "DeviceStateChange\r\nDevice: SIP/a:b\r\nnocolon\r\n\r\n";
    struct wp_ami_parser p;
    struct render r = {0};

    (void)state;
    wp_ami_parser_init(&p, 1);
    assert_int_equal(wp_ami_parse_feed(&p, in, strlen(in), render_msg, &r), 2);
    assert_string_equal(r.s, "B Asterisk Call Manager/2.10.6\n--\nState\tINUSE\n"
                             "event\tDeviceStateChange\nDevice\tSIP/a:b\nnocolon\t\n--\n");
    free(r.s);
    wp_ami_parser_cleanup(&p);
}

static int lookup_cb(void *arg, const struct wp_ami_msg *m)
{
    int *ok = arg;

    *ok = m->banner == NULL && wp_ami_get(m, "EVENT") != NULL &&
          strcmp(wp_ami_get(m, "event"), "X") == 0 && wp_ami_get(m, "nope") == NULL &&
          strcmp(wp_ami_get(m, "Variable"), "a=1") == 0; /* the first of repeated keys */
    return 0;
}

static void parser_lookup(void **state)
{
    const char *in = "Variable: a=1\nEvent: X\nVariable: b=2\n\n";
    struct wp_ami_parser p;
    int ok = 0;

    (void)state;
    wp_ami_parser_init(&p, 0);
    assert_int_equal(wp_ami_parse_feed(&p, in, strlen(in), lookup_cb, &ok), 1);
    assert_true(ok);
    wp_ami_parser_cleanup(&p);
}

static void parser_limits(void **state)
{
    struct wp_ami_parser p;
    struct render r = {0};
    size_t n = WP_AMI_LINE_MAX;
    char *line = wp_xmalloc(n + 16);

    (void)state;
    /* exactly WP_AMI_LINE_MAX bytes (CR not counted) is fine */
    memset(line, 'x', n);
    memcpy(line, "Output: ", 8);
    memcpy(line + n, "\r\n\r\n", 4);
    wp_ami_parser_init(&p, 0);
    assert_int_equal(wp_ami_parse_feed(&p, line, n + 4, render_msg, &r), 1);
    /* one byte more is an error, sticky until reset */
    line[n] = 'x';
    memcpy(line + n + 1, "\r\n\r\n", 4);
    assert_int_equal(wp_ami_parse_feed(&p, line, n + 5, render_msg, &r), WP_ETOOBIG);
    assert_int_equal(wp_ami_parse_feed(&p, "\n", 1, render_msg, &r), WP_ETOOBIG);
    /* also when the line comes a byte at a time, with no line end yet */
    wp_ami_parser_reset(&p, 0);
    int rc = 0;
    for (size_t i = 0; i < n + 5 && rc >= 0; i++) {
        rc = wp_ami_parse_feed(&p, line + i, 1, render_msg, &r);
    }
    assert_int_equal(rc, WP_ETOOBIG);
    /* a message over WP_AMI_MSG_MAX made of short lines */
    wp_ami_parser_reset(&p, 0);
    rc = 0;
    for (int i = 0; i < 20000 && rc >= 0; i++) {
        rc = wp_ami_parse_feed(&p, "Variable: v\r\n", 13, render_msg, &r);
    }
    assert_int_equal(rc, WP_ETOOBIG);
    /* a NUL byte */
    wp_ami_parser_reset(&p, 0);
    assert_int_equal(wp_ami_parse_feed(&p, "Event: a\0b\r\n\r\n", 14, render_msg, &r), WP_EPROTO);
    /* after a reset, a normal message again */
    wp_ami_parser_reset(&p, 0);
    assert_int_equal(wp_ami_parse_feed(&p, "Event: A\n\n", 10, render_msg, &r), 1);
    free(r.s);
    free(line);
    wp_ami_parser_cleanup(&p);
}

/* ---- scripted AMI server ---- */

struct blk {
    int action;
    char name[64]; /* Action value */
    char aid[32];  /* ActionID value in the fixture */
    char *text;    /* including the final empty line */
};

/* One recorded session: the server side of connection k comes from fixture min(k, nfx - 1). */
struct fxs {
    char banner[128];
    struct blk b[128];
    size_t nb;
};

struct srv {
    int lfd;
    int port;
    int ctl[2]; /* the test writes commands to ctl[1]: see srv_conn */
    pthread_t th;
    struct fxs fx[2];
    size_t nfx;
    const char *banner; /* the current connection's fixture */
    struct blk *b;
    size_t nb;
    int cut;         /* M: the next QueueStatus closes the link after its first member */
    int bytewise;    /* B: send everything one byte per send() from now on */
    size_t held[32]; /* blocks sent on E */
    size_t nheld;
    char held_from[32], held_to[32]; /* ActionID substitution for the held blocks */
    int hold;                        /* H: the next list holds back its completion too */
    int lists;                       /* DeviceStateList actions answered (atomic) */
    int fd;
    int close_now;
    int silent;   /* S: ignore the client and send nothing until the next connection */
    int restart;  /* R: the next FullyBooted says Uptime: 5 (the PBX restarted) */
    int omit;     /* D: the next lists leave out Queue:hotline_avail */
    int pings;    /* Ping actions answered (atomic: the test reads it while running) */
    int accepted; /* connections accepted (read by the test after joins only) */
    int logins;
};

static void blk_field(const char *text, const char *key, char *out, size_t len)
{
    const char *s = strstr(text, key);

    out[0] = '\0';
    if (s == NULL) {
        return;
    }
    s += strlen(key);
    size_t n = strcspn(s, "\r\n");
    snprintf(out, len, "%.*s", (int)n, s);
}

static void srv_load(struct fxs *s, const char *name)
{
    size_t len = 0;
    char *fx = load_fixture_named(name, &len);
    char *at = strstr(fx, "\r\n");

    assert_non_null(at);
    snprintf(s->banner, sizeof(s->banner), "%.*s\r\n", (int)(at - fx), fx);
    at += 2;
    while (*at != '\0') {
        char *end = strstr(at, "\r\n\r\n");
        assert_non_null(end);
        assert_true(s->nb < 128);
        struct blk *b = &s->b[s->nb++];
        b->text = wp_xasprintf("%.*s\r\n\r\n", (int)(end - at), at);
        b->action = strncmp(at, "Action:", 7) == 0;
        blk_field(b->text, "Action: ", b->name, sizeof(b->name));
        blk_field(b->text, "ActionID: ", b->aid, sizeof(b->aid));
        at = end + 4;
    }
    free(fx);
}

static void srv_send(struct srv *s, const char *text)
{
    size_t len = strlen(text);

    while (len > 0) {
        ssize_t n = send(s->fd, text, s->bytewise ? 1 : len, MSG_NOSIGNAL);
        if (n <= 0) {
            return;
        }
        text += n;
        len -= (size_t)n;
    }
}

/* Send a fixture block with the recorded ActionID replaced by the client's. */
static void srv_send_blk(struct srv *s, const struct blk *b, const char *from, const char *to)
{
    char pat[64];
    const char *t = b->text;
    char *out = NULL;
    const char *hit = NULL;

    if (s->restart && strstr(t, "Uptime: 86400\r\n") != NULL) {
        s->restart = 0;
        out = wp_xasprintf("%.*sUptime: 5\r\n%s", (int)(strstr(t, "Uptime: ") - t), t,
                           strstr(t, "Uptime: 86400\r\n") + 15);
        srv_send(s, out);
        free(out);
        return;
    }
    snprintf(pat, sizeof(pat), "ActionID: %s\r\n", from);
    hit = from[0] != '\0' ? strstr(t, pat) : NULL;
    if (hit == NULL) {
        srv_send(s, t);
        return;
    }
    out = wp_xasprintf("%.*sActionID: %s\r\n%s", (int)(hit - t), t, to, hit + strlen(pat));
    srv_send(s, out);
    free(out);
}

static int srv_on_msg(void *arg, const struct wp_ami_msg *m)
{
    struct srv *s = arg;
    const char *action = wp_ami_get(m, "Action");
    const char *aid = wp_ami_get(m, "ActionID");
    size_t i = 0;
    char *err = NULL;

    if (action == NULL) {
        return 0;
    }
    if (aid == NULL) {
        aid = "";
    }
    for (i = 0; i < s->nb; i++) {
        if (s->b[i].action && strcasecmp(s->b[i].name, action) == 0) {
            break;
        }
    }
    if (strcasecmp(action, "Login") == 0) {
        const char *secret = wp_ami_get(m, "Secret");
        const char *user = wp_ami_get(m, "Username");
        if (secret == NULL || strcmp(secret, "s3cr3t") != 0 || user == NULL ||
            strcmp(user, "monitor") != 0) {
            err = wp_xasprintf("Response: Error\r\nActionID: %s\r\nMessage: Authentication "
                               "failed\r\n\r\n",
                               aid);
            srv_send(s, err);
            free(err);
            s->close_now = 1;
            return -1;
        }
        s->logins++;
    }
    if (strcasecmp(action, "Ping") == 0) {
        __atomic_fetch_add(&s->pings, 1, __ATOMIC_SEQ_CST);
    }
    if (i == s->nb) {
        err = wp_xasprintf("Response: Error\r\nActionID: %s\r\nMessage: Invalid/unknown "
                           "command\r\n\r\n",
                           aid);
        srv_send(s, err);
        free(err);
        return 0;
    }
    int done = 0;
    if (strcasecmp(action, "DeviceStateList") == 0) {
        __atomic_fetch_add(&s->lists, 1, __ATOMIC_SEQ_CST);
    }
    snprintf(s->held_from, sizeof(s->held_from), "%s", s->b[i].aid);
    snprintf(s->held_to, sizeof(s->held_to), "%s", aid);
    for (size_t j = i + 1; j < s->nb && !s->b[j].action; j++) {
        if (s->hold && strstr(s->b[j].text, "EventList: Complete") != NULL) {
            s->hold = 0;
            done = 1;
        }
        if (done) {
            if (s->nheld < 32) {
                s->held[s->nheld++] = j; /* asynchronous events for later (E) */
            }
            continue;
        }
        if (!(s->omit && strstr(s->b[j].text, "Device: Queue:hotline_avail\r\n") != NULL)) {
            srv_send_blk(s, &s->b[j], s->b[i].aid, aid);
        }
        if (s->cut && strcasecmp(action, "QueueStatus") == 0 &&
            strstr(s->b[j].text, "Event: QueueMember\r\n") != NULL) {
            s->cut = 0; /* the link breaks mid-list */
            s->close_now = 1;
            return -1;
        }
        if (strstr(s->b[j].text, "EventList: Complete") != NULL) {
            done = 1;
        }
    }
    return 0;
}

/* Serve one connection until it closes or the test says C or Q. Returns 0 on Q. Commands:
 * E send the held blocks (the events after a list; with H also its completion), C close,
 * S go silent, R restart (Uptime 5 in the next FullyBooted), D leave a device out of the
 * next lists, H hold back the next list's completion, M close the link after the first member
 * of the next QueueStatus, B send one byte per send() from now on, Q quit. */
static int srv_conn(struct srv *s, struct wp_ami_parser *p)
{
    char buf[4096];

    s->close_now = 0;
    s->silent = 0;
    s->nheld = 0;
    wp_ami_parser_reset(p, 0);
    srv_send(s, s->banner);
    for (;;) {
        struct pollfd pf[2] = {{s->fd, POLLIN, 0}, {s->ctl[0], POLLIN, 0}};
        if (poll(pf, 2, 5000) <= 0) {
            continue;
        }
        if (pf[1].revents != 0) {
            char cmd = 0;
            if (read(s->ctl[0], &cmd, 1) != 1 || cmd == 'Q') {
                return 0;
            }
            if (cmd == 'C') {
                return 1;
            }
            if (cmd == 'S') {
                s->silent = 1;
            } else if (cmd == 'H') {
                s->hold = 1;
            } else if (cmd == 'D') {
                s->omit = 1;
            } else if (cmd == 'R') {
                s->restart = 1;
            } else if (cmd == 'M') {
                s->cut = 1;
            } else if (cmd == 'B') {
                s->bytewise = 1;
            } else if (cmd == 'E') {
                for (size_t i = 0; i < s->nheld; i++) {
                    srv_send_blk(s, &s->b[s->held[i]], s->held_from, s->held_to);
                }
                s->nheld = 0;
            }
            continue;
        }
        if (pf[0].revents != 0) {
            ssize_t n = recv(s->fd, buf, sizeof(buf), 0);
            if (n <= 0) {
                return 1;
            }
            if (s->silent) {
                continue;
            }
            wp_ami_parse_feed(p, buf, (size_t)n, srv_on_msg, s);
            if (s->close_now) {
                return 1;
            }
        }
    }
}

static void *srv_main(void *arg)
{
    struct srv *s = arg;
    struct wp_ami_parser *p = wp_xmalloc(sizeof(*p));
    int run = 1;

    wp_ami_parser_init(p, 0);
    while (run) {
        struct pollfd pf[2] = {{s->lfd, POLLIN, 0}, {s->ctl[0], POLLIN, 0}};
        if (poll(pf, 2, 5000) <= 0) {
            continue;
        }
        if (pf[1].revents != 0) {
            char cmd = 0;
            if (read(s->ctl[0], &cmd, 1) != 1 || cmd == 'Q') {
                break;
            }
            continue; /* E or C without a connection */
        }
        s->fd = accept(s->lfd, NULL, NULL);
        if (s->fd < 0) {
            continue;
        }
        s->accepted++;
        struct fxs *f =
            &s->fx[(size_t)s->accepted - 1 < s->nfx ? (size_t)s->accepted - 1 : s->nfx - 1];
        s->banner = f->banner;
        s->b = f->b;
        s->nb = f->nb;
        run = srv_conn(s, p);
        close(s->fd);
        s->fd = -1;
    }
    wp_ami_parser_cleanup(p);
    free(p);
    return NULL;
}

/* Start the server on the fixtures fx1 (the first connection) and fx2 (the later ones; NULL:
 * fx1 again). */
static void srv_start(struct srv *s, const char *fx1, const char *fx2, int bytewise)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);

    memset(s, 0, sizeof(*s));
    srv_load(&s->fx[0], fx1);
    s->nfx = 1;
    if (fx2 != NULL) {
        srv_load(&s->fx[1], fx2);
        s->nfx = 2;
    }
    s->bytewise = bytewise;
    s->fd = -1;
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s->lfd >= 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->lfd, 8), 0);
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &alen), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pipe(s->ctl), 0);
    assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
}

static void srv_cmd(struct srv *s, char cmd)
{
    assert_int_equal(write(s->ctl[1], &cmd, 1), 1);
}

static void srv_stop(struct srv *s)
{
    srv_cmd(s, 'Q');
    pthread_join(s->th, NULL);
    close(s->lfd);
    close(s->ctl[0]);
    close(s->ctl[1]);
    for (size_t k = 0; k < s->nfx; k++) {
        for (size_t i = 0; i < s->fx[k].nb; i++) {
            free(s->fx[k].b[i].text);
        }
    }
}

/* ---- probe tests ---- */

struct env {
    struct srv srv;
    uv_loop_t loop;
    struct capture cap;
    struct wp_probe *p;
    char secret[64];
    char *seats; /* every seat event sampled: "seat|queue|interface|action|reason|at|observed"
                    (interface then ">device" and "|login_at" when present), one a line */
    size_t seats_len;
    char *board[64]; /* the last state of every object sampled: "object\tstate\traw\tinfo" */
    size_t nboard;
};

/* Append the seat events of the last sample to e->seats; update e->board. */
static void collect_seats(struct env *e)
{
    for (size_t i = 0; i < e->cap.nrecs; i++) {
        const struct cap_rec *r = &e->cap.recs[i];
        size_t k = 0;
        if (r->kind != WP_REC_STATE) {
            continue;
        }
        size_t on = strlen(r->name);
        for (k = 0; k < e->nboard; k++) {
            if (strncmp(e->board[k], r->name, on) == 0 && e->board[k][on] == '\t') {
                break;
            }
        }
        if (k == e->nboard) {
            assert_true(e->nboard < 64);
            e->nboard++;
        } else {
            free(e->board[k]);
        }
        e->board[k] = wp_xasprintf("%s\t%s\t%s\t%s", r->name, r->text, r->raw, r->info);
    }
    for (size_t i = 0; i < e->cap.nrecs; i++) {
        const struct cap_rec *r = &e->cap.recs[i];
        if (r->kind != WP_REC_EVENT || strcmp(r->group, "seat") != 0) {
            continue;
        }
        assert_string_equal(r->name, "ami:pbx1");
        const char *la = capture_field(r, "login_at");
        const char *dev = capture_field(r, "device");
        char *line = wp_xasprintf(
            "%s|%s|%s%s%s|%s|%s|%s|%s%s%s\n", capture_field(r, "seat"), capture_field(r, "queue"),
            capture_field(r, "interface"), dev != NULL ? ">" : "", dev != NULL ? dev : "",
            capture_field(r, "action"), capture_field(r, "reason"), capture_field(r, "at"),
            capture_field(r, "observed"), la != NULL ? "|" : "", la != NULL ? la : "");
        size_t n = strlen(line);
        e->seats = wp_xrealloc(e->seats, e->seats_len + n + 1);
        memcpy(e->seats + e->seats_len, line, n + 1);
        e->seats_len += n;
        free(line);
    }
}

static double mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void spin(struct env *e, double ms)
{
    double end = mono_ms() + ms;

    while (mono_ms() < end) {
        uv_run(&e->loop, UV_RUN_NOWAIT);
        usleep(500);
    }
}

/* Run the loop and sample (into a fresh capture) until object has state (NULL: any). */
static int sample_until(struct env *e, const char *object, const char *state)
{
    double end = mono_ms() + 5000;

    while (mono_ms() < end) {
        spin(e, 5);
        capture_clear(&e->cap);
        assert_int_equal(e->p->ops->sample(e->p, &e->cap.sink), 0);
        collect_seats(e);
        const struct cap_rec *r = capture_rec(&e->cap, WP_REC_STATE, object);
        if (r != NULL && (state == NULL || strcmp(r->text, state) == 0)) {
            return 1;
        }
    }
    return 0;
}

static size_t nstates(const struct env *e)
{
    size_t n = 0;

    for (size_t i = 0; i < e->cap.nrecs; i++) {
        n += e->cap.recs[i].kind == WP_REC_STATE;
    }
    return n;
}

static void expect_state(const struct env *e, const char *object, const char *group,
                         const char *state, const char *raw)
{
    const struct cap_rec *r = capture_rec(&e->cap, WP_REC_STATE, object);

    if (r == NULL) {
        fail_msg("no state for %s", object);
    }
    if (strcmp(r->group, group) != 0 || strcmp(r->text, state) != 0 || strcmp(r->raw, raw) != 0) {
        fail_msg("%s: got %s/%s (raw %s), expected %s/%s (raw %s)", object, r->group, r->text,
                 r->raw, group, state, raw);
    }
    assert_string_equal(r->info, "");
}

static double metric(const struct env *e, const char *field)
{
    return peers_field(&e->cap, "ami", "pbx1", field);
}

static void env_start_fx(struct env *e, const char *user, const char *extra, const char *fx1,
                         const char *fx2, int bytewise)
{
    FILE *fp = NULL;
    char *yaml = NULL;

    memset(e, 0, sizeof(*e));
    srv_start(&e->srv, fx1, fx2, bytewise);
    snprintf(e->secret, sizeof(e->secret), "/tmp/wp-ami-secret-XXXXXX");
    int fd = mkstemp(e->secret);
    assert_true(fd >= 0);
    fp = fdopen(fd, "w");
    fputs("s3cr3t\n", fp);
    fclose(fp);
    yaml = wp_xasprintf("kind: ami\nname: pbx1\ninterval: 1s\nhost: 127.0.0.1\nport: %d\n"
                        "username: %s\nsecret_file: %s\nreconnect_min: 200ms\n"
                        "reconnect_max: 400ms\n%s",
                        e->srv.port, user, e->secret, extra);
    e->p = peers_probe(&wp_probe_ami, yaml);
    free(yaml);
    capture_init(&e->cap, 1700000000000, 1);
    assert_int_equal(uv_loop_init(&e->loop), 0);
    assert_int_equal(e->p->ops->start(e->p, &e->loop), 0);
}

static void env_start(struct env *e, const char *user, const char *extra)
{
    env_start_fx(e, user, extra, "ami-session.txt", NULL, 0);
}

static void env_stop(struct env *e)
{
    int rc = 0;

    e->p->ops->stop(e->p);
    /* the probe closes all it opened: the loop must close without help */
    for (int i = 0; i < 200; i++) {
        uv_run(&e->loop, UV_RUN_NOWAIT);
        rc = uv_loop_close(&e->loop);
        if (rc == 0) {
            break;
        }
        usleep(1000);
    }
    assert_int_equal(rc, 0);
    srv_stop(&e->srv);
    wp_probe_free(e->p);
    assert_int_equal(e->cap.bad, 0);
    capture_cleanup(&e->cap);
    unlink(e->secret);
    free(e->seats);
    e->seats = NULL;
    for (size_t i = 0; i < e->nboard; i++) {
        free(e->board[i]);
    }
    e->nboard = 0;
}

static void expect_snapshot(struct env *e)
{
    assert_true(sample_until(e, "Custom:DND1004", "busy"));
    expect_state(e, "PJSIP/1001", "pbx1", "idle", "NOT_INUSE");
    expect_state(e, "PJSIP/1002", "pbx1", "in_use", "INUSE");
    expect_state(e, "PJSIP/1003", "pbx1", "unavailable", "UNAVAILABLE");
    expect_state(e, "Custom:DND1004", "pbx1", "busy", "BUSY");
    expect_state(e, "Queue:hotline_avail", "pbx1", "idle", "NOT_INUSE");
    expect_state(e, "ami:pbx1", "telephony_link", "available", "connected");
    assert_int_equal(nstates(e), 6);
    assert_true(metric(e, "up") == 1.0);
    assert_true(metric(e, "lines") == 5.0);
    assert_true(metric(e, "lines_unavailable") == 1.0);
    assert_true(metric(e, "lines_in_use") == 2.0); /* INUSE and BUSY */
    double age = metric(e, "last_message_age_s");
    assert_true(age >= 0.0 && age < 5.0);
}

static void ami_session(void **state)
{
    struct env *e = wp_xcalloc(1, sizeof(*e));

    (void)state;
    env_start(e, "monitor", "");

    /* after login and resync: a full snapshot */
    expect_snapshot(e);
    assert_true(metric(e, "reconnects") == 0.0);

    /* nothing changed: no states, still a metric row */
    spin(e, 20);
    capture_clear(&e->cap);
    assert_int_equal(e->p->ops->sample(e->p, &e->cap.sink), 0);
    assert_int_equal(nstates(e), 0);
    assert_true(metric(e, "up") == 1.0);

    /* a later DeviceStateChange (after ContactStatus and PeerStatus): the diff only */
    srv_cmd(&e->srv, 'E');
    assert_true(sample_until(e, "PJSIP/1003", "idle"));
    expect_state(e, "PJSIP/1003", "pbx1", "idle", "NOT_INUSE");
    assert_int_equal(nstates(e), 1);
    assert_true(metric(e, "lines_unavailable") == 0.0);

    /* the PBX closes the link: every line unknown, the link unavailable */
    srv_cmd(&e->srv, 'C');
    assert_true(sample_until(e, "ami:pbx1", "unavailable"));
    expect_state(e, "ami:pbx1", "telephony_link", "unavailable", "link lost");
    expect_state(e, "PJSIP/1001", "pbx1", "unknown", "link lost");
    expect_state(e, "PJSIP/1002", "pbx1", "unknown", "link lost");
    expect_state(e, "PJSIP/1003", "pbx1", "unknown", "link lost");
    expect_state(e, "Custom:DND1004", "pbx1", "unknown", "link lost");
    expect_state(e, "Queue:hotline_avail", "pbx1", "unknown", "link lost");
    assert_int_equal(nstates(e), 6);
    assert_true(metric(e, "up") == 0.0);
    assert_true(metric(e, "lines_unavailable") == 5.0);

    /* reconnect (backoff 100..200 ms) and resync: a full snapshot again */
    expect_snapshot(e);
    assert_true(metric(e, "reconnects") >= 1.0);

    env_stop(e);
    assert_int_equal(e->srv.accepted, 2);
    assert_int_equal(e->srv.logins, 2);
    free(e);
}

static void ami_login_refused(void **state)
{
    struct env *e = wp_xcalloc(1, sizeof(*e));

    (void)state;
    env_start(e, "intruder", "");
    assert_true(sample_until(e, "ami:pbx1", "unavailable"));
    expect_state(e, "ami:pbx1", "telephony_link", "unavailable", "link lost");
    assert_int_equal(nstates(e), 1);
    assert_true(metric(e, "up") == 0.0);
    assert_true(metric(e, "lines") == 0.0);
    env_stop(e);
    assert_true(e->srv.accepted >= 1);
    assert_int_equal(e->srv.logins, 0);
    free(e);
}

/* Keepalive: Pings every ping_interval; a silent PBX drops the link after two. */
static void ami_ping_watchdog(void **state)
{
    struct env *e = wp_xcalloc(1, sizeof(*e));

    (void)state;
    env_start(e, "monitor", "ping_interval: 100ms\n");
    expect_snapshot(e);
    spin(e, 450);
    assert_true(__atomic_load_n(&e->srv.pings, __ATOMIC_SEQ_CST) >= 2);
    capture_clear(&e->cap);
    assert_int_equal(e->p->ops->sample(e->p, &e->cap.sink), 0);
    assert_int_equal(nstates(e), 0); /* Pongs change nothing */
    assert_true(metric(e, "up") == 1.0);
    assert_true(metric(e, "last_message_age_s") < 0.2);

    srv_cmd(&e->srv, 'S');
    assert_true(sample_until(e, "ami:pbx1", "unavailable"));
    expect_state(e, "PJSIP/1001", "pbx1", "unknown", "link lost");
    expect_snapshot(e); /* the next connection answers again */
    env_stop(e);
    assert_true(e->srv.accepted >= 2);
    free(e);
}

/* A FullyBooted with a smaller Uptime after a reconnect: the PBX restarted (logged). */
static void ami_pbx_restart(void **state)
{
    struct env *e = wp_xcalloc(1, sizeof(*e));
    char logpath[] = "/tmp/wp-ami-log-XXXXXX";
    int logfd = mkstemp(logpath);
    int saved = dup(STDERR_FILENO);
    char buf[8192];
    ssize_t n = 0;

    (void)state;
    assert_true(logfd >= 0 && saved >= 0);
    env_start(e, "monitor", "");
    expect_snapshot(e);
    fflush(stderr);
    dup2(logfd, STDERR_FILENO);
    srv_cmd(&e->srv, 'R');
    srv_cmd(&e->srv, 'C');
    assert_true(sample_until(e, "ami:pbx1", "unavailable"));
    expect_snapshot(e);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    n = pread(logfd, buf, sizeof(buf) - 1, 0);
    close(logfd);
    unlink(logpath);
    assert_true(n > 0);
    buf[n] = '\0';
    fputs(buf, stderr);
    assert_non_null(strstr(buf, "PBX restarted (uptime 5 s, was 86400 s"));
    assert_null(strstr(buf, "s3cr3t")); /* the secret is never logged */
    env_stop(e);
    free(e);
}

/* A device missing from the resync list: reported unknown ("not listed") once, then gone. */
static void ami_device_removed(void **state)
{
    struct env *e = wp_xcalloc(1, sizeof(*e));

    (void)state;
    env_start(e, "monitor", "");
    expect_snapshot(e);
    srv_cmd(&e->srv, 'D');
    srv_cmd(&e->srv, 'C');
    assert_true(sample_until(e, "ami:pbx1", "unavailable"));
    assert_true(sample_until(e, "ami:pbx1", "available"));
    expect_state(e, "PJSIP/1001", "pbx1", "idle", "NOT_INUSE");
    expect_state(e, "Custom:DND1004", "pbx1", "busy", "BUSY");
    expect_state(e, "Queue:hotline_avail", "pbx1", "unknown", "not listed");
    assert_int_equal(nstates(e), 6);
    assert_true(metric(e, "lines") == 4.0);
    assert_true(metric(e, "lines_unavailable") == 1.0); /* PJSIP/1003 */
    spin(e, 20);
    capture_clear(&e->cap);
    assert_int_equal(e->p->ops->sample(e->p, &e->cap.sink), 0);
    assert_int_equal(nstates(e), 0);
    assert_true(metric(e, "lines") == 4.0);
    env_stop(e);
    free(e);
}

/* Resync: nothing changes until the list is complete, then one full snapshot. */
static void ami_resync_waits_for_complete(void **state)
{
    struct env *e = wp_xcalloc(1, sizeof(*e));
    double end = 0;

    (void)state;
    env_start(e, "monitor", "");
    expect_snapshot(e);
    srv_cmd(&e->srv, 'H');
    srv_cmd(&e->srv, 'C');
    assert_true(sample_until(e, "ami:pbx1", "unavailable"));
    end = mono_ms() + 5000;
    while (__atomic_load_n(&e->srv.lists, __ATOMIC_SEQ_CST) < 2 && mono_ms() < end) {
        spin(e, 5);
    }
    assert_int_equal(__atomic_load_n(&e->srv.lists, __ATOMIC_SEQ_CST), 2);
    spin(e, 100); /* the list items are in; its completion is not */
    capture_clear(&e->cap);
    assert_int_equal(e->p->ops->sample(e->p, &e->cap.sink), 0);
    assert_int_equal(nstates(e), 0);
    assert_true(metric(e, "up") == 0.0);
    assert_true(metric(e, "lines_unavailable") == 5.0); /* still "link lost" */
    srv_cmd(&e->srv, 'E');
    assert_true(sample_until(e, "ami:pbx1", "available"));
    expect_state(e, "PJSIP/1001", "pbx1", "idle", "NOT_INUSE");
    expect_state(e, "PJSIP/1002", "pbx1", "in_use", "INUSE");
    expect_state(e, "Custom:DND1004", "pbx1", "busy", "BUSY");
    assert_non_null(capture_rec(&e->cap, WP_REC_STATE, "PJSIP/1003")); /* its event follows */
    assert_int_equal(nstates(e), 6);
    assert_true(metric(e, "up") == 1.0);
    env_stop(e);
    free(e);
}

/* ---- queues, calls, contacts and seats (ami-queues*.txt, Asterisk 20) ---- */

/* Every split of the recorded queue sessions parses like the whole. */
static void parser_every_split_queues(void **state)
{
    static const char *const names[] = {"ami-queues.txt", "ami-queues-reconnect.txt"};

    (void)state;
    for (size_t f = 0; f < 2; f++) {
        size_t len = 0;
        char *fx = load_fixture_named(names[f], &len);
        int rc = 0;
        char *whole = parse_cut(fx, len, NULL, 0, &rc);
        assert_int_equal(rc, 0);
        assert_non_null(strstr(whole, "B Asterisk Call Manager/9.0.0\n--\n"));
        assert_non_null(strstr(whole, "EventList\tComplete\nListItems\t5\n--\n"));
        for (size_t k = 1; k < len; k++) {
            char *got = parse_cut(fx, len, &k, 1, &rc);
            assert_int_equal(rc, 0);
            if (strcmp(got, whole) != 0) {
                fail_msg("%s: split at %zu differs", names[f], k);
            }
            free(got);
        }
        free(whole);
        free(fx);
    }
}

static void expect_line(const struct env *e, const char *object, const char *state, const char *raw,
                        const char *info)
{
    const struct cap_rec *r = capture_rec(&e->cap, WP_REC_STATE, object);

    if (r == NULL) {
        fail_msg("no state for %s", object);
    }
    if (strcmp(r->group, "pbx1") != 0 || strcmp(r->text, state) != 0 || strcmp(r->raw, raw) != 0 ||
        strcmp(r->info, info) != 0) {
        fail_msg("%s: got %s (raw %s, info \"%s\"), expected %s (raw %s, info \"%s\")", object,
                 r->text, r->raw, r->info, state, raw, info);
    }
}

/* The last sampled state of object is "state\traw\tinfo". */
static void expect_board(const struct env *e, const char *object, const char *want)
{
    size_t on = strlen(object);

    for (size_t k = 0; k < e->nboard; k++) {
        if (strncmp(e->board[k], object, on) == 0 && e->board[k][on] == '\t') {
            if (strcmp(e->board[k] + on + 1, want) != 0) {
                fail_msg("%s: got \"%s\", expected \"%s\"", object, e->board[k] + on + 1, want);
            }
            return;
        }
    }
    fail_msg("no state for %s", object);
}

static double seat_metric(const struct env *e, const char *field)
{
    return peers_field(&e->cap, "ami_seats", "pbx1", field);
}

/* Sample until e->seats holds want (a suffix of the seat events so far). */
static void seats_until(struct env *e, const char *want)
{
    double end = mono_ms() + 5000;

    while (mono_ms() < end) {
        spin(e, 5);
        capture_clear(&e->cap);
        assert_int_equal(e->p->ops->sample(e->p, &e->cap.sink), 0);
        collect_seats(e);
        if (e->seats != NULL && strstr(e->seats, want) != NULL) {
            return;
        }
    }
    fail_msg("seat events:\n%s\nexpected:\n%s", e->seats != NULL ? e->seats : "", want);
}

/* The queue session: resync with the four lists (call info, extension fallback, members
 * logged in as observed), live events (seats, calls, contacts, agents), an over-privileged
 * account warned about once, then a link lost in the middle of the next QueueStatus: the
 * partial resync is discarded and the complete one gives the outage's logout and login. */
static void queues_run(int bytewise)
{
    struct env *e = wp_xcalloc(1, sizeof(*e));
    char logpath[] = "/tmp/wp-ami-log-XXXXXX";
    int logfd = mkstemp(logpath);
    int saved = dup(STDERR_FILENO);
    char buf[16384];
    ssize_t n = 0;
    size_t mark = 0;

    assert_true(logfd >= 0 && saved >= 0);
    fflush(stderr);
    dup2(logfd, STDERR_FILENO);
    wp_clock_set_fake(1767254455000LL); /* the link comes up at 08:00:55Z */
    env_start_fx(e, "monitor", "", "ami-queues.txt", "ami-queues-reconnect.txt", bytewise);

    assert_true(sample_until(e, "ami:pbx1", "available"));
    expect_line(e, "PJSIP/1001", "in_use", "INUSE",
                "caller=1001 (Alice) connected=0800555123 state=Up since=2026-01-01T07:59:15Z");
    expect_line(e, "PJSIP/carrier-trunk", "in_use", "INUSE",
                "caller=0800555123 connected=1001 (Alice) state=Up since=2026-01-01T07:59:17Z");
    expect_line(e, "PJSIP/1002", "idle", "NOT_INUSE", "");
    expect_line(e, "PJSIP/1003", "idle", "NOT_INUSE", "");
    expect_line(e, "PJSIP/1004", "idle", "NOT_INUSE", "");
    /* no device state: the hint's (PJSIP/1001&PJSIP/1002 names two devices: ignored) */
    expect_line(e, "PJSIP/1005", "unavailable", "Unavailable", "");
    assert_int_equal(nstates(e), 7);
    assert_true(metric(e, "lines") == 6.0);
    assert_true(seat_metric(e, "logged_in") == 3.0);
    assert_true(seat_metric(e, "paused") == 1.0);
    /* the static member (Night Desk) has no session */
    assert_string_equal(e->seats, "Alice|support|PJSIP/1001>PJSIP/1001|login||1767250800000|1\n"
                                  "Bob|support|PJSIP/1002>PJSIP/1002|login||1767251400000|1\n"
                                  "Bob|support|PJSIP/1002>PJSIP/1002|pause|lunch|1767253800000|1\n"
                                  "Alice|sales|PJSIP/1001>PJSIP/1001|login||1767250805000|1\n");
    mark = e->seats_len;

    /* live events */
    srv_cmd(&e->srv, 'E');
    seats_until(e, "Bob|support|PJSIP/1002>PJSIP/1002|logout||1767254700000|0\n");
    assert_string_equal(e->seats + mark,
                        "Carol|support|PJSIP/1003>PJSIP/1003|login||1767254460000|0\n"
                        "Alice|support|PJSIP/1001>PJSIP/1001|pause|break|1767254520501|0\n"
                        "Bob|support|PJSIP/1002>PJSIP/1002|unpause||1767254580100|0\n"
                        "2001||PJSIP/1004-00000014>PJSIP/1004|login||1767254590000|0\n"
                        "2001|||logout||1767254680000|0|1767254590000\n"
                        "Bob|support|PJSIP/1002>PJSIP/1002|logout||1767254700000|0\n");
    mark = e->seats_len;
    /* the call moved from 1001 to 1002; 1003's contact is unreachable (device state idle) */
    expect_board(e, "PJSIP/1001", "idle\tNOT_INUSE\t");
    expect_board(e, "PJSIP/carrier-trunk", "in_use\tINUSE\t");
    expect_board(e, "PJSIP/1002",
                 "in_use\tINUSE\tcaller=1002 (Bob) connected=1004 (Dave) "
                 "state=Up since=2026-01-01T08:03:30Z");
    expect_board(e, "PJSIP/1003", "unavailable\tUnreachable\t");
    expect_board(e, "PJSIP/1005", "idle\tIdle\t");   /* ExtensionStatus */
    assert_true(seat_metric(e, "logged_in") == 3.0); /* Alice twice, Carol */
    assert_true(seat_metric(e, "paused") == 1.0);
    assert_true(seat_metric(e, "agent_calls") == 1.0);
    assert_true(seat_metric(e, "talk_s") == 42.0);

    /* the link breaks in the middle of the next QueueStatus; the attempt after it completes */
    wp_clock_set_fake(1767255100000LL);
    srv_cmd(&e->srv, 'M');
    srv_cmd(&e->srv, 'C');
    assert_true(sample_until(e, "ami:pbx1", "unavailable"));
    assert_true(sample_until(e, "ami:pbx1", "available"));
    /* Carol left during the outage (logout when the link came back), Dave came; nothing from
     * the partial list (it named Alice/support only: no logout for Alice/sales) */
    assert_string_equal(e->seats + mark,
                        "Carol|support|PJSIP/1003>PJSIP/1003|logout||1767255100000|1\n"
                        "Dave|support|PJSIP/1004>PJSIP/1004|login||1767254900000|1\n");
    expect_line(e, "PJSIP/1003", "unavailable", "UNAVAILABLE", ""); /* contacts start afresh */
    expect_line(e, "PJSIP/1002", "idle", "NOT_INUSE", "");          /* no calls listed */
    expect_line(e, "PJSIP/1005", "idle", "Idle", "");               /* hints refused: kept */
    assert_int_equal(nstates(e), 7);
    assert_true(seat_metric(e, "logged_in") == 3.0);

    env_stop(e);
    assert_int_equal(e->srv.accepted, 3);
    wp_clock_set_fake(-1);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    n = pread(logfd, buf, sizeof(buf) - 1, 0);
    close(logfd);
    unlink(logpath);
    assert_true(n > 0);
    buf[n] = '\0';
    fputs(buf, stderr);
    const char *w = "AMI user monitor has more rights than it needs (write=originate,command)";
    const char *hit = strstr(buf, w);
    assert_non_null(hit);
    assert_null(strstr(hit + 1, w)); /* once: the second account's rights are fine */
    assert_null(strstr(buf, "s3cr3t"));
    free(e);
}

static void ami_queues(void **state)
{
    (void)state;
    queues_run(0);
}

/* The same with the server writing one byte at a time. */
static void ami_queues_bytewise(void **state)
{
    (void)state;
    queues_run(1);
}

static void ami_connect_refused(void **state)
{
    (void)state;
    /* a port nobody listens on: attempts fail, the link is unavailable, backoff retries */
    int port = peers_free_port();
    assert_true(port > 0);
    char *yaml = wp_xasprintf("kind: ami\nname: pbx1\nport: %d\nusername: monitor\n"
                              "secret_file: /nonexistent\nreconnect_min: 50ms\n"
                              "reconnect_max: 100ms\n",
                              port);
    struct wp_probe *p = peers_probe(&wp_probe_ami, yaml);
    free(yaml);
    uv_loop_t loop;
    struct capture cap;
    capture_init(&cap, 1, 1);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(p->ops->start(p, &loop), 0);
    double end = mono_ms() + 1000;
    while (mono_ms() < end) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_int_equal(p->ops->sample(p, &cap.sink), 0);
    const struct cap_rec *r = capture_rec(&cap, WP_REC_STATE, "ami:pbx1");
    assert_non_null(r);
    assert_string_equal(r->text, "unavailable");
    assert_true(peers_field(&cap, "ami", "pbx1", "reconnects") >= 2.0);
    assert_true(peers_field(&cap, "ami", "pbx1", "up") == 0.0);
    assert_true(isnan(peers_field(&cap, "ami", "pbx1", "last_message_age_s")));
    p->ops->stop(p);
    int rc = 0;
    for (int i = 0; i < 200; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        rc = uv_loop_close(&loop);
        if (rc == 0) {
            break;
        }
        usleep(1000);
    }
    assert_int_equal(rc, 0);
    wp_probe_free(p);
    capture_cleanup(&cap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parser_every_split),
        cmocka_unit_test(parser_keys),
        cmocka_unit_test(parser_lookup),
        cmocka_unit_test(parser_limits),
        cmocka_unit_test(ami_session),
        cmocka_unit_test(ami_login_refused),
        cmocka_unit_test(ami_connect_refused),
        cmocka_unit_test(ami_ping_watchdog),
        cmocka_unit_test(ami_pbx_restart),
        cmocka_unit_test(ami_device_removed),
        cmocka_unit_test(ami_resync_waits_for_complete),
        cmocka_unit_test(parser_every_split_queues),
        cmocka_unit_test(ami_queues),
        cmocka_unit_test(ami_queues_bytewise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
