/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The linetable probe: reads a telephony middleware's table of phone lines (a file, or the
 * output of a command) and reports each line's state, plus one row of counts.
 *
 *   probes:
 *     - kind: linetable
 *       name: devlink
 *       interval: 10s
 *       file: /var/log/devlink/lines.txt        # or command: [/usr/local/bin/devlink-dump,
 * --lines] group: ivr                              # or group_column: Type (default: the name)
 *       stale_after: 60s                        # file not modified for this long = stale
 *       timeout: 10s                            # command only
 *       header_match: DeviceID                  # the line starting with this is the header
 *       separator: "\t"                         # or "spaces" (runs of blanks), or a string
 *       columns: {line: DeviceNum, in_service: InService, state: State, info: "Call Info"}
 *       in_service_values: [Y]
 *       state_map: {Idle: idle, Busy: busy, ...} # merged over the default map, no case
 *
 * Columns are found by header name (the first column of that name). A line whose in_service
 * value is not one of in_service_values is out_of_service whatever its state; a state not in
 * the map is unknown. A "DevLink State: ..." line before the header is the link's raw state.
 *
 * Each sample emits a state (object = the line, raw = the state as the table gave it, info =
 * the call info) for every line whose (state, raw) changed, and every line on the first sample
 * and after the link recovers; a line that leaves the table becomes unknown ("not in table")
 * once. The link itself is the object "linetable:<name>" in group "telephony_link": idle when
 * the table was read, unavailable (raw = the reason) when the file is stale or unreadable, the
 * command fails or times out, or the header or a configured column is missing; then every
 * known line becomes unknown (raw "link lost") once.
 *
 * Row linetable/<name>: up, age_s (file age; NaN for a command), lines, idle, in_use, busy,
 * ringing, unavailable (unavailable + out_of_service + unknown), blocked.
 *
 * A command runs like the exec probe's checks (argv, no shell, own process group, stdin
 * /dev/null, PATH=/usr/bin:/bin LANG=C.UTF-8, killed with its group at the timeout); output
 * beyond 1 MiB is dropped (the table is read up to there). sample() is WP_PROBE_BLOCKING.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "probe.h"
#include "wp/clock.h"
#include "wp/err.h"
#include "wp/mem.h"

#define LT_OUT_MAX    (1u << 20) /* bytes of table read */
#define LT_LINGER_MS  200        /* reading on after the command exited */
#define LT_TICK_MS    20
#define LT_COLS_MAX   256
#define LT_LINK_GROUP "telephony_link"

enum lt_col { LT_C_LINE = 0, LT_C_INSVC, LT_C_STATE, LT_C_INFO, LT_C_GROUP, LT_C_N };

static const char *const col_keys[] = {"line", "in_service", "state", "info"};
static const char *const col_defaults[] = {"DeviceNum", "InService", "State", "Call Info"};

static const char *const default_map[] = {
    "Idle",   "idle",         "Busy",           "busy",    "Ringing", "ringing", "Connected",
    "in_use", "OutOfService", "out_of_service", "Blocked", "blocked", NULL};

/* the normalised states this probe emits (pointers compared by identity after lookup) */
static const char *const norm_states[] = {"idle",    "in_use",      "on_hold",        "busy",
                                          "ringing", "unavailable", "out_of_service", "blocked",
                                          "unknown", NULL};

/* One known phone line. Strings are heap copies. */
struct lt_line {
    char *name;
    char *group;
    const char *state; /* one of norm_states */
    char *raw;
    char *info;
    int seen; /* in this sample's table */
};

struct lt_ctx {
    /* options */
    char *file;
    struct wp_strlist command;
    char *group;
    char *group_column;
    int64_t stale_after_ms;
    int64_t timeout_ms;
    char *header_match;
    char *separator;
    struct wp_strlist columns;
    struct wp_strlist in_service_values;
    struct wp_strlist state_map;

    /* state */
    const char *colname[LT_C_N]; /* header names (borrowed from options or the defaults) */
    char **envp;
    char *link_obj;
    struct lt_line *lines;
    size_t nlines;
    int first;      /* nothing emitted yet */
    int down;       /* the link is down: lines were set to unknown */
    char *link_raw; /* last emitted link raw state */
    const char *link_state;
};

static const struct wp_opt lt_opts[] = {
    {.name = "file",
     .type = WP_OPT_STR,
     .help = "the table file (or command)",
     .offset = offsetof(struct lt_ctx, file)},
    {.name = "command",
     .type = WP_OPT_STRLIST,
     .help = "argv list printing the table; the first element an absolute path; no shell",
     .offset = offsetof(struct lt_ctx, command)},
    {.name = "group",
     .type = WP_OPT_STR,
     .help = "group label of the lines (default: the probe's name)",
     .offset = offsetof(struct lt_ctx, group)},
    {.name = "group_column",
     .type = WP_OPT_STR,
     .help = "take each line's group from this column instead",
     .offset = offsetof(struct lt_ctx, group_column)},
    {.name = "stale_after",
     .type = WP_OPT_DURATION,
     .def = "60s",
     .help = "a file not modified for this long is stale (the link is down)",
     .offset = offsetof(struct lt_ctx, stale_after_ms),
     .min = 1000,
     .max = 86400000},
    {.name = "timeout",
     .type = WP_OPT_DURATION,
     .def = "10s",
     .help = "a command still running after this is killed (its process group)",
     .offset = offsetof(struct lt_ctx, timeout_ms),
     .min = 100,
     .max = 3600000},
    {.name = "header_match",
     .type = WP_OPT_STR,
     .def = "DeviceID",
     .help = "the header line starts with this",
     .offset = offsetof(struct lt_ctx, header_match)},
    {.name = "separator",
     .type = WP_OPT_STR,
     .def = "\t",
     .help = "column separator: a string (default tab) or \"spaces\" (runs of blanks)",
     .offset = offsetof(struct lt_ctx, separator)},
    {.name = "columns",
     .type = WP_OPT_STRMAP,
     .help = "header names of line, in_service, state, info (default DeviceNum, InService, "
             "State, Call Info)",
     .offset = offsetof(struct lt_ctx, columns)},
    {.name = "in_service_values",
     .type = WP_OPT_STRLIST,
     .def = "Y",
     .help = "in_service values meaning in service; other values are out_of_service",
     .offset = offsetof(struct lt_ctx, in_service_values)},
    {.name = "state_map",
     .type = WP_OPT_STRMAP,
     .help = "raw state -> idle, in_use, busy, ringing, out_of_service, blocked, unavailable, "
             "unknown (over the default map; case-insensitive)",
     .offset = offsetof(struct lt_ctx, state_map)},
    WP_OPT_TABLE_END,
};

static const char *const lt_fields[] = {"up",   "age_s",   "lines",       "idle",   "in_use",
                                        "busy", "ringing", "unavailable", "blocked"};
static const struct wp_series_kind kind_lt = {"linetable", lt_fields, 9, WP_DS_GAUGE};

/* ---- helpers --------------------------------------------------------------------------------- */

static const char *norm_lookup(const char *s)
{
    for (size_t i = 0; norm_states[i] != NULL; i++) {
        if (strcmp(norm_states[i], s) == 0) {
            return norm_states[i];
        }
    }
    return NULL;
}

static void line_free_fields(struct lt_line *l)
{
    free(l->name);
    free(l->group);
    free(l->raw);
    free(l->info);
}

static int streq_opt(const char *a, const char *b)
{
    if (a == NULL || b == NULL) {
        return a == b;
    }
    return strcmp(a, b) == 0;
}

/* ---- reading the table ----------------------------------------------------------------------- */

/* Read at most LT_OUT_MAX bytes of path into *buf (NUL-terminated). 0 or -errno. */
static int read_file(const char *path, char **buf, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    char *b = NULL;
    size_t n = 0;
    int rc = 0;

    *buf = NULL;
    *len = 0;
    if (fd < 0) {
        return -errno;
    }
    b = wp_xmalloc(LT_OUT_MAX + 1);
    while (n < LT_OUT_MAX) {
        ssize_t r = read(fd, b + n, LT_OUT_MAX - n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            rc = -errno;
            break;
        }
        if (r == 0) {
            break;
        }
        n += (size_t)r;
    }
    close(fd);
    if (rc < 0) {
        free(b);
        return rc;
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return 0;
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* Has pid exited? Leaves it a zombie (WNOWAIT), so its group id stays ours to signal. */
static int leader_exited(pid_t pid)
{
    siginfo_t si;

    memset(&si, 0, sizeof(si));
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
        return errno == ECHILD;
    }
    return si.si_pid == pid;
}

/*
 * Run the command and collect its output (at most LT_OUT_MAX bytes, the rest is read and
 * dropped). Returns 0 with *buf (free()) or a negative code with why filled.
 */
static int run_command(struct lt_ctx *x, char **buf, size_t *len, char *why, size_t wlen)
{
    pid_t pid = 0;
    int fd = -1;
    int rc = 0;
    int st = 0;
    int exited = 0;
    int timed_out = 0;
    char *b = wp_xmalloc(LT_OUT_MAX + 1);
    size_t n = 0;
    char drop[4096];
    int64_t deadline = wp_clock_mono_ms() + x->timeout_ms;
    int64_t linger = 0;

    *buf = NULL;
    *len = 0;
    rc = wp_probe_spawn(x->command.v, x->envp, &pid, &fd);
    if (rc < 0) {
        snprintf(why, wlen, "command: cannot start %s: %s", x->command.v[0], wp_strerror(rc));
        free(b);
        return rc;
    }
    for (;;) {
        int64_t now = wp_clock_mono_ms();
        struct pollfd pf = {.fd = fd, .events = POLLIN, .revents = 0};
        int wait = LT_TICK_MS;

        if (fd >= 0) {
            if (poll(&pf, 1, wait) < 0 && errno != EINTR) {
                break;
            }
            while (fd >= 0) {
                ssize_t r =
                    n < LT_OUT_MAX ? read(fd, b + n, LT_OUT_MAX - n) : read(fd, drop, sizeof(drop));
                if (r < 0 && errno == EINTR) {
                    continue;
                }
                if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                    break;
                }
                if (r <= 0) {
                    close_fd(&fd);
                    break;
                }
                if (n < LT_OUT_MAX) {
                    n += (size_t)r;
                }
            }
        } else {
            struct timespec ts = {0, LT_TICK_MS * 1000000L};
            nanosleep(&ts, NULL);
        }
        now = wp_clock_mono_ms();
        if (!exited && leader_exited(pid)) {
            exited = 1;
            linger = now + LT_LINGER_MS;
        }
        if (exited && (fd < 0 || now >= linger)) {
            break;
        }
        if (!exited && now >= deadline) {
            timed_out = 1;
            break;
        }
    }
    close_fd(&fd);
    kill(-pid, SIGKILL); /* the command's processes do not outlive it */
    do {
        rc = waitpid(pid, &st, 0) < 0 ? -errno : 0;
    } while (rc == -EINTR);
    if (timed_out) {
        snprintf(why, wlen, "command timed out after %lld ms, killed", (long long)x->timeout_ms);
        rc = -ETIMEDOUT;
    } else if (rc < 0) {
        snprintf(why, wlen, "command: waitpid: %s", wp_strerror(rc));
    } else if (WIFSIGNALED(st)) {
        snprintf(why, wlen, "command killed by signal %d", WTERMSIG(st));
        rc = -EIO;
    } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        snprintf(why, wlen, "command exited with status %d", WEXITSTATUS(st));
        rc = -EIO;
    }
    if (rc < 0) {
        free(b);
        return rc;
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return 0;
}

/* ---- parsing --------------------------------------------------------------------------------- */

/* Trim blanks and CR at both ends of [*s, *e). */
static void trim(const char **s, const char **e)
{
    while (*s < *e && (**s == ' ' || **s == '\t' || **s == '\r')) {
        (*s)++;
    }
    while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t' || (*e)[-1] == '\r')) {
        (*e)--;
    }
}

/*
 * Split the line [s, e) into at most max fields (heap copies, trimmed) by the separator.
 * Returns the number of fields.
 */
static size_t split(const struct lt_ctx *x, const char *s, const char *e, char **f, size_t max)
{
    size_t n = 0;
    int spaces = strcmp(x->separator, "spaces") == 0;
    const char *sep = x->separator;
    size_t seplen = strlen(sep);

    if (spaces) {
        const char *p = s;
        while (p < e && n < max) {
            const char *q = NULL;
            while (p < e && (*p == ' ' || *p == '\t' || *p == '\r')) {
                p++;
            }
            if (p == e) {
                break;
            }
            q = p;
            while (q < e && *q != ' ' && *q != '\t' && *q != '\r') {
                q++;
            }
            f[n++] = wp_xstrndup(p, (size_t)(q - p));
            p = q;
        }
        return n;
    }
    while (n < max) {
        const char *q = seplen > 0 ? memmem(s, (size_t)(e - s), sep, seplen) : NULL;
        const char *fe = q != NULL ? q : e;
        const char *a = s;
        const char *b = fe;
        trim(&a, &b);
        f[n++] = wp_xstrndup(a, (size_t)(b - a));
        if (q == NULL) {
            break;
        }
        s = q + seplen;
    }
    return n;
}

static void fields_free(char **f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(f[i]);
    }
}

/* The normalised state of a row. */
static const char *normalise(const struct lt_ctx *x, const char *insvc, const char *raw)
{
    int in = 0;

    for (size_t i = 0; i < x->in_service_values.n; i++) {
        if (strcmp(x->in_service_values.v[i], insvc != NULL ? insvc : "") == 0) {
            in = 1;
        }
    }
    if (x->colname[LT_C_INSVC] != NULL && !in) {
        return "out_of_service";
    }
    for (size_t i = 0; i + 1 < x->state_map.n; i += 2) {
        if (strcasecmp(x->state_map.v[i], raw) == 0) {
            return norm_lookup(x->state_map.v[i + 1]);
        }
    }
    for (size_t i = 0; default_map[i] != NULL; i += 2) {
        if (strcasecmp(default_map[i], raw) == 0) {
            return default_map[i + 1];
        }
    }
    return "unknown";
}

/*
 * Parse the table text into *rows (lt_line items, state set, seen = 1). Returns 0, or -1 with
 * why filled (no header, a missing column). *link_raw gets the "DevLink State:" text or NULL.
 */
static int parse_table(struct wp_probe *p, const char *text, size_t len, struct lt_line **rows,
                       size_t *nrows, char **link_raw, char *why, size_t wlen)
{
    struct lt_ctx *x = p->ctx;
    const char *s = text;
    const char *end = text + len;
    int have_header = 0;
    size_t idx[LT_C_N];
    char **f = wp_xcalloc(LT_COLS_MAX, sizeof(*f));
    size_t cap = 0;
    int rc = 0;
    static const char dl[] = "DevLink State:";

    *rows = NULL;
    *nrows = 0;
    *link_raw = NULL;
    for (size_t i = 0; i < LT_C_N; i++) {
        idx[i] = SIZE_MAX;
    }
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *e = nl != NULL ? nl : end;
        const char *a = s;
        const char *b = e;

        if (nl == NULL && len >= LT_OUT_MAX) {
            break; /* a line cut at the cap */
        }
        s = nl != NULL ? nl + 1 : end;
        trim(&a, &b);
        if (!have_header) {
            size_t hl = strlen(x->header_match);
            size_t n = 0;
            if ((size_t)(b - a) >= sizeof(dl) - 1 && memcmp(a, dl, sizeof(dl) - 1) == 0) {
                const char *r = a + sizeof(dl) - 1;
                trim(&r, &b);
                free(*link_raw);
                *link_raw = wp_xstrndup(r, (size_t)(b - r));
                continue;
            }
            if ((size_t)(b - a) < hl || memcmp(a, x->header_match, hl) != 0) {
                continue;
            }
            have_header = 1;
            n = split(x, a, b, f, LT_COLS_MAX);
            for (size_t c = 0; c < LT_C_N; c++) {
                if (x->colname[c] == NULL) {
                    continue;
                }
                for (size_t k = 0; k < n; k++) {
                    if (strcmp(f[k], x->colname[c]) == 0) {
                        idx[c] = k; /* the first column of that name */
                        break;
                    }
                }
                if (idx[c] == SIZE_MAX) {
                    snprintf(why, wlen, "column \"%s\" (%s) is not in the header", x->colname[c],
                             c < 4 ? col_keys[c] : "group_column");
                    fields_free(f, n);
                    rc = -1;
                    goto out;
                }
            }
            fields_free(f, n);
            continue;
        }
        if (a == b) {
            continue;
        }
        {
            size_t n = split(x, a, b, f, LT_COLS_MAX);
            const char *name = idx[LT_C_LINE] < n ? f[idx[LT_C_LINE]] : "";
            const char *raw = idx[LT_C_STATE] < n ? f[idx[LT_C_STATE]] : "";
            struct lt_line *l = NULL;

            if (name[0] == '\0' || strlen(name) >= WP_INST_MAX) {
                fields_free(f, n);
                continue;
            }
            if (*nrows == cap) {
                cap = cap != 0 ? cap * 2 : 64;
                *rows = wp_xrealloc(*rows, cap * sizeof(**rows));
            }
            l = &(*rows)[(*nrows)++];
            memset(l, 0, sizeof(*l));
            l->name = wp_xstrdup(name);
            l->raw = wp_xstrdup(raw);
            l->info = idx[LT_C_INFO] < n ? wp_xstrdup(f[idx[LT_C_INFO]]) : NULL;
            if (x->group_column != NULL) {
                l->group = wp_xstrdup(idx[LT_C_GROUP] < n && f[idx[LT_C_GROUP]][0] != '\0'
                                          ? f[idx[LT_C_GROUP]]
                                          : p->instance);
            } else {
                l->group = wp_xstrdup(x->group != NULL ? x->group : p->instance);
            }
            l->state = normalise(x, idx[LT_C_INSVC] < n ? f[idx[LT_C_INSVC]] : NULL, raw);
            l->seen = 1;
            fields_free(f, n);
        }
    }
    if (!have_header) {
        snprintf(why, wlen, "no header line starting with \"%s\"", x->header_match);
        rc = -1;
    }
out:
    free(f);
    if (rc < 0) {
        for (size_t i = 0; i < *nrows; i++) {
            line_free_fields(&(*rows)[i]);
        }
        free(*rows);
        *rows = NULL;
        *nrows = 0;
    }
    return rc;
}

/* ---- sampling -------------------------------------------------------------------------------- */

static void emit_link(struct wp_probe *p, struct wp_sink *out, const char *state, const char *raw)
{
    struct lt_ctx *x = p->ctx;

    if (x->link_state == state && streq_opt(x->link_raw, raw)) {
        return;
    }
    wp_sink_state(out, x->link_obj, LT_LINK_GROUP, state, raw, NULL);
    x->link_state = state;
    free(x->link_raw);
    x->link_raw = wp_xstrdup(raw);
}

static struct lt_line *find_line(struct lt_ctx *x, const char *name)
{
    for (size_t i = 0; i < x->nlines; i++) {
        if (strcmp(x->lines[i].name, name) == 0) {
            return &x->lines[i];
        }
    }
    return NULL;
}

static int lt_sample(struct wp_probe *p, struct wp_sink *out)
{
    struct lt_ctx *x = p->ctx;
    char why[512];
    char *text = NULL;
    size_t len = 0;
    double age = NAN;
    int rc = 0;
    struct lt_line *rows = NULL;
    size_t nrows = 0;
    char *link_raw = NULL;
    double v[9];
    int full = x->first || x->down;

    why[0] = '\0';
    if (x->file != NULL) {
        struct stat st;
        if (stat(x->file, &st) < 0) {
            rc = -errno;
            snprintf(why, sizeof(why), "%s: %s", x->file, wp_strerror(rc));
        } else {
            int64_t mt = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
            int64_t age_ms = wp_clock_now_ms() - mt;
            age = age_ms > 0 ? (double)age_ms / 1000.0 : 0.0;
            if (age_ms > x->stale_after_ms) {
                rc = -ESTALE;
                snprintf(why, sizeof(why), "%s: stale, not modified for %.0f s", x->file, age);
            } else {
                rc = read_file(x->file, &text, &len);
                if (rc < 0) {
                    snprintf(why, sizeof(why), "%s: %s", x->file, wp_strerror(rc));
                }
            }
        }
    } else {
        rc = run_command(x, &text, &len, why, sizeof(why));
    }
    if (rc == 0) {
        rc = parse_table(p, text, len, &rows, &nrows, &link_raw, why, sizeof(why));
    }
    free(text);

    if (rc < 0) {
        if (!x->down) {
            WP_PLOG(p, WP_LOG_WARN, "line table lost: %s", why);
            for (size_t i = 0; i < x->nlines; i++) {
                struct lt_line *l = &x->lines[i];
                wp_sink_state(out, l->name, l->group, "unknown", "link lost", NULL);
                l->state = "unknown";
                free(l->raw);
                l->raw = wp_xstrdup("link lost");
                free(l->info);
                l->info = NULL;
            }
        }
        x->down = 1;
        emit_link(p, out, "unavailable", why);
    } else {
        if (x->down) {
            WP_PLOG(p, WP_LOG_INFO, "line table back: %zu lines", nrows);
        }
        if (full) {
            x->link_state = NULL; /* re-emit the link state with the snapshot */
        }
        emit_link(p, out, "idle", link_raw != NULL ? link_raw : "ok");
        for (size_t i = 0; i < nrows; i++) {
            struct lt_line *r = &rows[i];
            struct lt_line *old = find_line(x, r->name);
            if (old != NULL && old->seen == 2) {
                continue; /* a line listed twice: the first row counts */
            }
            if (full || old == NULL || old->state != r->state || strcmp(old->raw, r->raw) != 0 ||
                !streq_opt(old->group, r->group)) {
                wp_sink_state(out, r->name, r->group, r->state, r->raw, r->info);
            }
            if (old == NULL) {
                x->lines = wp_xrealloc(x->lines, (x->nlines + 1) * sizeof(*x->lines));
                old = &x->lines[x->nlines++];
                memset(old, 0, sizeof(*old));
            } else {
                line_free_fields(old);
            }
            *old = *r;
            old->seen = 2;
            memset(r, 0, sizeof(*r));
        }
        /* lines gone from the table: unknown once, then forgotten */
        {
            size_t k = 0;
            for (size_t i = 0; i < x->nlines; i++) {
                struct lt_line *l = &x->lines[i];
                if (l->seen != 2) {
                    wp_sink_state(out, l->name, l->group, "unknown", "not in table", NULL);
                    line_free_fields(l);
                    continue;
                }
                l->seen = 0;
                x->lines[k++] = *l;
            }
            x->nlines = k;
        }
        x->down = 0;
    }
    x->first = 0;
    for (size_t i = 0; i < nrows; i++) {
        line_free_fields(&rows[i]);
    }
    free(rows);
    free(link_raw);

    for (size_t i = 0; i < 9; i++) {
        v[i] = 0;
    }
    v[0] = x->down ? 0 : 1;
    v[1] = age;
    v[2] = (double)x->nlines;
    for (size_t i = 0; i < x->nlines; i++) {
        const char *s = x->lines[i].state;
        if (strcmp(s, "idle") == 0) {
            v[3]++;
        } else if (strcmp(s, "in_use") == 0) {
            v[4]++;
        } else if (strcmp(s, "busy") == 0) {
            v[5]++;
        } else if (strcmp(s, "ringing") == 0) {
            v[6]++;
        } else if (strcmp(s, "blocked") == 0) {
            v[8]++;
        } else {
            v[7]++;
        }
    }
    wp_sink_metric(out, &kind_lt, p->instance, v);
    return 0;
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

static int lt_init(struct wp_probe *p)
{
    struct lt_ctx *x = p->ctx;
    struct stat st;

    if ((x->file == NULL) == (x->command.n == 0)) {
        WP_PLOG(p, WP_LOG_ERROR,
                "expected exactly one of file: PATH or command: [/abs/path, ...]"
                " (got %s)",
                x->file == NULL ? "neither" : "both");
        return WP_ECONFIG;
    }
    if (x->group != NULL && x->group_column != NULL) {
        WP_PLOG(p, WP_LOG_ERROR, "group and group_column exclude each other");
        return WP_ECONFIG;
    }
    if (x->command.n > 0) {
        const char *exe = x->command.v[0];
        if (exe[0] != '/') {
            WP_PLOG(p, WP_LOG_ERROR, "command[0]: expected an absolute path, got \"%s\"", exe);
            return WP_ECONFIG;
        }
        if (stat(exe, &st) < 0 || !S_ISREG(st.st_mode) || access(exe, X_OK) < 0) {
            WP_PLOG(p, WP_LOG_ERROR, "command[0]: %s: not an executable file", exe);
            return WP_ECONFIG;
        }
        x->envp = wp_xcalloc(3, sizeof(*x->envp));
        x->envp[0] = wp_xstrdup("PATH=/usr/bin:/bin");
        x->envp[1] = wp_xstrdup("LANG=C.UTF-8");
    }
    if (x->header_match[0] == '\0' || x->separator[0] == '\0') {
        WP_PLOG(p, WP_LOG_ERROR, "header_match and separator must not be empty");
        return WP_ECONFIG;
    }
    for (size_t c = 0; c < 4; c++) {
        x->colname[c] = col_defaults[c];
    }
    for (size_t i = 0; i + 1 < x->columns.n; i += 2) {
        size_t c = 0;
        while (c < 4 && strcmp(col_keys[c], x->columns.v[i]) != 0) {
            c++;
        }
        if (c == 4) {
            WP_PLOG(p, WP_LOG_ERROR,
                    "columns: unknown key \"%s\" (expected line, in_service, state, info)",
                    x->columns.v[i]);
            return WP_ECONFIG;
        }
        /* an empty name drops an optional column (in_service, info) */
        x->colname[c] = x->columns.v[i + 1][0] != '\0' ? x->columns.v[i + 1] : NULL;
    }
    if (x->colname[LT_C_LINE] == NULL || x->colname[LT_C_STATE] == NULL) {
        WP_PLOG(p, WP_LOG_ERROR, "columns: line and state need a header name");
        return WP_ECONFIG;
    }
    x->colname[LT_C_GROUP] = x->group_column;
    for (size_t i = 0; i + 1 < x->state_map.n; i += 2) {
        if (norm_lookup(x->state_map.v[i + 1]) == NULL) {
            WP_PLOG(p, WP_LOG_ERROR,
                    "state_map.%s: expected idle, in_use, busy, ringing, out_of_service, "
                    "blocked, unavailable or unknown, got \"%s\"",
                    x->state_map.v[i], x->state_map.v[i + 1]);
            return WP_ECONFIG;
        }
    }
    x->link_obj = wp_xasprintf("linetable:%s", p->instance);
    x->first = 1;
    return 0;
}

static void lt_destroy(struct wp_probe *p)
{
    struct lt_ctx *x = p->ctx;

    if (x == NULL) {
        return;
    }
    for (size_t i = 0; x->envp != NULL && x->envp[i] != NULL; i++) {
        free(x->envp[i]);
    }
    free(x->envp);
    x->envp = NULL;
    for (size_t i = 0; i < x->nlines; i++) {
        line_free_fields(&x->lines[i]);
    }
    free(x->lines);
    x->lines = NULL;
    x->nlines = 0;
    free(x->link_obj);
    x->link_obj = NULL;
    free(x->link_raw);
    x->link_raw = NULL;
}

const struct wp_probe_ops wp_probe_linetable = {
    .name = "linetable",
    .summary = "telephony middleware line table (file or command): line states and counts",
    .opts = lt_opts,
    .ctx_size = sizeof(struct lt_ctx),
    .flags = WP_PROBE_BLOCKING,
    .init = lt_init,
    .sample = lt_sample,
    .start = NULL,
    .stop = NULL,
    .destroy = lt_destroy,
    .committed = NULL,
};
