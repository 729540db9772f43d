/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The exec probe: runs Nagios / monitoring-plugins compatible checks (exit status 0 OK,
 * 1 WARNING, 2 CRITICAL, 3 UNKNOWN, a line of output, perf data after '|') and reports each
 * as a check result plus rows.
 *
 * Config (commands come only from the agent's config: nothing the network sends runs):
 *
 *   probes:
 *     - kind: exec
 *       interval: 60s
 *       timeout: 10s        # per check, unless the check sets its own
 *       concurrency: 4      # plugins running at once
 *       checks:
 *         - name: disk_root
 *           command: [/usr/lib/nagios/plugins/check_disk, -w, "20%", -c, "10%", -p, /]
 *         - name: web
 *           command: [/usr/lib/nagios/plugins/check_http, -H, localhost]
 *           timeout: 5s
 *           env: {TZ: UTC}
 *
 * command is an argv list, never a shell string: no shell runs and nothing is expanded. Its
 * first element must be an absolute path to an executable regular file; the decoder checks
 * that with the file:line:col of the offending node. The environment is PATH=/usr/bin:/bin
 * and LANG=C.UTF-8; a check's env map adds variables or overrides those two.
 *
 * Running (sample() is WP_PROBE_BLOCKING: it runs on a libuv pool thread and returns when
 * every check is done): up to concurrency plugins at once, each started with posix_spawn()
 * in its own process group (POSIX_SPAWN_SETPGROUP), working directory /, stdin /dev/null,
 * stdout and stderr into one pipe (Nagios plugins print errors on stderr), every other fd
 * closed (our fds are O_CLOEXEC and the child runs closefrom(3)), default signal dispositions
 * and an empty signal mask (the agent ignores SIGPIPE). One poll() loop watches the pipes and
 * a pidfd per child (or polls waitid() every 20 ms where pidfd_open() is missing):
 *   - output beyond 64 KiB is read and discarded, so the plugin never blocks on a full pipe,
 *     and the result says it was cut;
 *   - at the timeout the whole group gets SIGTERM, then SIGKILL after a 1 s grace; the check
 *     is UNKNOWN "(timed out after 10s, killed)";
 *   - when the plugin exits, its output is read until EOF, or for at most 200 ms when a
 *     process it left behind still holds the pipe; then anything left in its group gets
 *     SIGKILL: a check's processes do not outlive it (a real daemon calls setsid()).
 * The leader is reaped only after the last signal to its group (exit is seen with WNOWAIT),
 * so the group id cannot be reused by an unrelated process while we signal it. A leader that
 * still lives 5 s after SIGKILL (stuck in the kernel) is given up on; later samples and
 * destroy() reap it.
 *
 * Results per check:
 *   check record  name, status, output: the status is the exit status 0..3; anything else,
 *                 a signal, a timeout or a spawn error is UNKNOWN (3). The output is the first
 *                 line up to '|', trimmed, invalid UTF-8 and control characters replaced, with
 *                 " (exit status 7)", " (killed by signal 9)", " (output cut at 64 KiB)" or
 *                 " (timed out after 10s, killed)" appended when they apply.
 *   exec/<check>  status, duration_s (spawn to reap), output_bytes (everything the plugin
 *                 wrote, also what was discarded), timed_out and cut (0 or 1).
 *   perf/<check>/<label>  value warn crit min max, one row per perf data item, NaN when
 *                 absent. Perf data is read after '|' on the first line, and from the long
 *                 output: after '|' on the first later line that has one, and every line
 *                 after it (the plugin guidelines' layout).
 *
 * Perf data items are `label=value[UOM];warn;crit;min;max` separated by blanks. A label is
 * either unquoted (no blanks, '=' or quote) or in single quotes, where it may hold blanks and
 * '' stands for one quote. value is a decimal number (or U: unknown, NaN). UOM is one of
 * s ms us % B KB MB GB TB c or empty; values are converted to base units: ms and us to
 * seconds, KB MB GB TB to bytes with 1024 steps (what the monitoring-plugins mean, e.g.
 * check_disk's MB), c (a counter) is stored as it is. warn and crit that are plain numbers
 * are converted like value; a threshold range ("10:", "~:5", "@1:2") is valid but has no one
 * number and gives NaN. The parser is strict and bounded: an item that does not parse
 * (unknown UOM, not a number, more than five fields, no label) is skipped, never guessed at;
 * an unterminated quote ends the perf data of that line; a line cut by the 64 KiB limit is
 * not read for perf data; at most 64 items per check; a label seen twice in one check keeps
 * its first value. The row instance is "<check>/<label>" with control characters replaced
 * by '_', cut to WP_INST_MAX - 1 bytes on a UTF-8 boundary.
 *
 * Logging: a check's name and status when the status changes (INFO; a timeout or spawn
 * failure WARN), each run at DEBUG. The command line is never logged: arguments may hold
 * passwords.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "probe.h"
#include "wp/clock.h"
#include "wp/err.h"
#include "wp/mem.h"

#define EXEC_OUT_MAX     (64u << 10)  /* output kept per check */
#define EXEC_GRACE_MS    1000         /* SIGTERM -> SIGKILL */
#define EXEC_LINGER_MS   200          /* reading on after the plugin exited */
#define EXEC_ABANDON_MS  5000         /* after SIGKILL, then the leader is left to reap later */
#define EXEC_TICK_MS     20           /* waitid() polling without pidfd */
#define EXEC_READ_BUDGET (256u << 10) /* bytes read from one pipe per wakeup */
#define EXEC_PERF_MAX    64           /* perf items per check */
#define EXEC_LABEL_MAX   WP_INST_MAX  /* label bytes kept (the instance is cut anyway) */
#define EXEC_NUM_MAX     64           /* characters of one number */
#define EXEC_CHECKS_MAX  1000
#define EXEC_NAME_MAX    64
#define EXEC_ENV_PATH    "PATH=/usr/bin:/bin"
#define EXEC_ENV_LANG    "LANG=C.UTF-8"
#define EXEC_NO_STATUS   255u /* last_status before the first run */

/* One configured check; strings are heap copies owned by struct exec_checks. */
struct exec_check {
    char *name;
    char **argv;        /* NULL-terminated */
    char **envp;        /* NULL-terminated */
    int64_t timeout_ms; /* 0 until init: the probe's timeout */
    unsigned last_status;
    int last_reason; /* EXEC_R_* of the last result, for change logging */
};

/* The decoded "checks" option (a pointer in the context, so the registry can move it). */
struct exec_checks {
    struct exec_check *v;
    size_t n;
};

enum exec_phase { EXEC_RUNNING = 0, EXEC_TERM_SENT, EXEC_KILL_SENT };
enum exec_reason { EXEC_R_EXIT = 0, EXEC_R_BADEXIT, EXEC_R_SIGNAL, EXEC_R_TIMEOUT, EXEC_R_SPAWN };

/* A running plugin (a slot; pid 0 = free). */
struct exec_run {
    struct exec_check *chk;
    pid_t pid;
    int out_fd; /* read end of stdout+stderr, -1 once closed */
    int pid_fd; /* pidfd, -1 without */
    char *buf;  /* EXEC_OUT_MAX + 1 bytes, allocated in init */
    size_t len;
    uint64_t total;
    int cut, timed_out, exited;
    enum exec_phase phase;
    int64_t start_ms, deadline_ms, kill_ms, linger_ms;
    int out_pollix, pid_pollix; /* indexes in this round's pollfd array, -1 if absent */
};

struct exec_ctx {
    /* options, decoded by the registry with exec_opts (it owns and frees them) */
    int64_t timeout_ms;
    int64_t concurrency;
    struct exec_checks *checks;

    /* state, owned by the probe */
    struct exec_run *runs;
    size_t nruns;
    struct pollfd *pfds;
    pid_t *orphans; /* leaders that outlived SIGKILL, reaped later */
    size_t norphans;
};

/* A parsed perf data item. */
struct exec_perf {
    char label[EXEC_LABEL_MAX];
    double v[5];            /* value warn crit min max */
    char inst[WP_INST_MAX]; /* "<check>/<label>", cleaned and cut */
};

static int decode_checks(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                         const void *arg, struct wp_conf_err *err);
static void free_checks(void *field, const void *arg);

static const struct wp_opt exec_opts[] = {
    {.name = "timeout",
     .type = WP_OPT_DURATION,
     .def = "10s",
     .help = "a plugin still running after this is killed (its process group) and UNKNOWN",
     .offset = offsetof(struct exec_ctx, timeout_ms),
     .min = 100,
     .max = 3600000},
    {.name = "concurrency",
     .type = WP_OPT_INT,
     .def = "4",
     .help = "plugins running at once",
     .offset = offsetof(struct exec_ctx, concurrency),
     .min = 1,
     .max = 64},
    {.name = "checks",
     .type = WP_OPT_CUSTOM,
     .help = "[{name, command: [/abs/path, arg, ...], timeout, env: {K: V}}]; no shell",
     .offset = offsetof(struct exec_ctx, checks),
     .required = 1,
     .custom = decode_checks,
     .custom_free = free_checks},
    WP_OPT_TABLE_END,
};

/* What one item of "checks" decodes into before it is checked and copied. */
struct check_item {
    char *name;
    struct wp_strlist command;
    int64_t timeout_ms;
    struct wp_strlist env;
};

static const struct wp_opt check_opts[] = {
    {.name = "name",
     .type = WP_OPT_STR,
     .help = "check name: letters, digits, '_', '-', '.'; unique in the probe",
     .offset = offsetof(struct check_item, name),
     .required = 1},
    {.name = "command",
     .type = WP_OPT_STRLIST,
     .help = "argv list; the first element is an absolute path to an executable",
     .offset = offsetof(struct check_item, command),
     .required = 1},
    {.name = "timeout",
     .type = WP_OPT_DURATION,
     .help = "this check's timeout (default: the probe's)",
     .offset = offsetof(struct check_item, timeout_ms),
     .min = 100,
     .max = 3600000},
    {.name = "env",
     .type = WP_OPT_STRMAP,
     .help = "environment variables added to PATH=/usr/bin:/bin LANG=C.UTF-8 (or replacing them)",
     .offset = offsetof(struct check_item, env)},
    WP_OPT_TABLE_END,
};

static const char *const exec_fields[] = {"status", "duration_s", "output_bytes", "timed_out",
                                          "cut"};
static const char *const perf_fields[] = {"value", "warn", "crit", "min", "max"};

static const struct wp_series_kind kind_exec = {"exec", exec_fields, 5, WP_DS_GAUGE};
static const struct wp_series_kind kind_perf = {"perf", perf_fields, 5, WP_DS_GAUGE};

static const char *const status_names[] = {"OK", "WARNING", "CRITICAL", "UNKNOWN"};

/* ---- config ---------------------------------------------------------------------------------- */

static void check_free_fields(struct exec_check *c)
{
    free(c->name);
    for (size_t i = 0; c->argv != NULL && c->argv[i] != NULL; i++) {
        free(c->argv[i]);
    }
    free(c->argv);
    for (size_t i = 0; c->envp != NULL && c->envp[i] != NULL; i++) {
        free(c->envp[i]);
    }
    free(c->envp);
}

static void free_checks(void *field, const void *arg)
{
    struct exec_checks **pc = field;
    struct exec_checks *cs = *pc;

    (void)arg;
    if (cs == NULL) {
        return;
    }
    for (size_t i = 0; i < cs->n; i++) {
        check_free_fields(&cs->v[i]);
    }
    free(cs->v);
    free(cs);
    *pc = NULL;
}

/* The environment: PATH and LANG unless env sets them, then env's pairs in order. */
static char **build_env(const struct wp_strlist *env)
{
    size_t npairs = env->n / 2;
    char **envp = wp_xcalloc(npairs + 3, sizeof(*envp));
    size_t n = 0;
    int has_path = 0;
    int has_lang = 0;

    for (size_t i = 0; i < npairs; i++) {
        has_path |= strcmp(env->v[2 * i], "PATH") == 0;
        has_lang |= strcmp(env->v[2 * i], "LANG") == 0;
    }
    if (!has_path) {
        envp[n++] = wp_xstrdup(EXEC_ENV_PATH);
    }
    if (!has_lang) {
        envp[n++] = wp_xstrdup(EXEC_ENV_LANG);
    }
    for (size_t i = 0; i < npairs; i++) {
        envp[n++] = wp_xasprintf("%s=%s", env->v[2 * i], env->v[2 * i + 1]);
    }
    envp[n] = NULL;
    return envp;
}

/* Check one decoded item; on success move it into c. 0 or WP_ECONFIG (err filled). */
static int check_item_take(struct wp_conf_doc *doc, struct wp_conf_node *it, const char *path,
                           struct check_item *ci, const struct exec_checks *done,
                           struct exec_check *c, struct wp_conf_err *err)
{
    struct wp_conf_node *cmd = wp_conf_map_get(doc, it, "command");
    struct wp_conf_node *env = wp_conf_map_get(doc, it, "env");
    struct wp_conf_node *arg0 = NULL;
    struct stat st;
    const char *exe = NULL;

    if (!wp_probe_name_ok(ci->name, EXEC_NAME_MAX)) {
        return wp_conf_errorf(doc, wp_conf_map_get(doc, it, "name"), err,
                              "%s.name: expected 1 to %d letters, digits, '_', '-' or '.', got "
                              "\"%s\"",
                              path, EXEC_NAME_MAX, ci->name);
    }
    for (size_t i = 0; i < done->n; i++) {
        if (strcmp(done->v[i].name, ci->name) == 0) {
            return wp_conf_errorf(doc, wp_conf_map_get(doc, it, "name"), err,
                                  "%s.name: \"%s\" is used by checks[%zu] already", path, ci->name,
                                  i);
        }
    }
    if (!wp_conf_is_seq(cmd)) {
        return wp_conf_errorf(doc, cmd, err,
                              "%s.command: expected an argv list like [/usr/lib/nagios/plugins/"
                              "check_load, -w, \"5,4,3\"] (no shell runs), got a single string",
                              path);
    }
    if (ci->command.n == 0) {
        return wp_conf_errorf(doc, cmd, err,
                              "%s.command: expected an argv list with the program first, got an "
                              "empty list",
                              path);
    }
    arg0 = wp_conf_seq_at(doc, cmd, 0);
    exe = ci->command.v[0];
    if (exe[0] != '/') {
        return wp_conf_errorf(doc, arg0, err,
                              "%s.command[0]: expected an absolute path to an executable, got "
                              "\"%s\"",
                              path, exe);
    }
    if (stat(exe, &st) < 0) {
        return wp_conf_errorf(doc, arg0, err, "%s.command[0]: %s: %s", path, exe, strerror(errno));
    }
    if (!S_ISREG(st.st_mode) || (st.st_mode & 0111) == 0 || access(exe, X_OK) < 0) {
        return wp_conf_errorf(doc, arg0, err, "%s.command[0]: %s: not an executable file", path,
                              exe);
    }
    for (size_t i = 0; i + 1 < ci->env.n; i += 2) {
        const char *k = ci->env.v[i];
        if (k[0] == '\0' || strchr(k, '=') != NULL) {
            return wp_conf_errorf(doc, env, err,
                                  "%s.env: variable names must be non-empty without '=', got "
                                  "\"%s\"",
                                  path, k);
        }
    }
    memset(c, 0, sizeof(*c));
    c->name = ci->name;
    ci->name = NULL;
    c->argv = ci->command.v; /* NULL-terminated already */
    ci->command.v = NULL;
    ci->command.n = 0;
    c->envp = build_env(&ci->env);
    c->timeout_ms = ci->timeout_ms;
    c->last_status = EXEC_NO_STATUS;
    return 0;
}

static int decode_checks(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                         const void *arg, struct wp_conf_err *err)
{
    struct exec_checks **pc = field;
    struct exec_checks *cs = NULL;
    size_t n = wp_conf_seq_len(doc, node);
    char path[48];

    (void)arg;
    free_checks(field, NULL); /* a key given twice */
    if (!wp_conf_is_seq(node) || n == 0) {
        return wp_conf_errorf(doc, node, err,
                              "checks: expected a non-empty list like [{name: load, command: "
                              "[/usr/lib/nagios/plugins/check_load, -w, \"5,4,3\", -c, "
                              "\"9,8,7\"]}]");
    }
    if (n > EXEC_CHECKS_MAX) {
        return wp_conf_errorf(doc, node, err, "checks: at most %d checks per probe, got %zu",
                              EXEC_CHECKS_MAX, n);
    }
    cs = wp_xcalloc(1, sizeof(*cs));
    cs->v = wp_xcalloc(n, sizeof(*cs->v));
    *pc = cs; /* free_checks() frees what is decoded so far when this fails */
    for (size_t i = 0; i < n; i++) {
        struct wp_conf_node *it = wp_conf_seq_at(doc, node, i);
        struct check_item ci;
        int rc = 0;

        memset(&ci, 0, sizeof(ci));
        snprintf(path, sizeof(path), "checks[%zu]", i);
        rc = wp_opts_apply(doc, it, check_opts, &ci, path, err);
        if (rc == 0) {
            rc = check_item_take(doc, it, path, &ci, cs, &cs->v[i], err);
        }
        wp_opts_free(check_opts, &ci);
        if (rc < 0) {
            return rc;
        }
        cs->n = i + 1;
    }
    return 0;
}

/* ---- text helpers ---------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 if the bytes are invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len = 0;
    unsigned char lo = 0x80;
    unsigned char hi = 0xbf;

    if (s[0] < 0x80) {
        return 1;
    }
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        lo = s[0] == 0xe0 ? 0xa0 : 0x80; /* no overlong forms */
        hi = s[0] == 0xed ? 0x9f : 0xbf; /* no surrogates */
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        lo = s[0] == 0xf0 ? 0x90 : 0x80;
        hi = s[0] == 0xf4 ? 0x8f : 0xbf;
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < len; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf) {
            return 0;
        }
    }
    return len;
}

/*
 * Append src[0..n) to dst (length *dlen, capacity cap with the NUL), valid UTF-8 only:
 * an invalid byte becomes '?', a control character ctl_repl. Stops before a sequence that
 * does not fit. Returns the bytes of src consumed.
 */
static size_t utf8_clean(char *dst, size_t *dlen, size_t cap, const char *src, size_t n,
                         char ctl_repl)
{
    const unsigned char *s = (const unsigned char *)src;
    size_t i = 0;

    while (i < n) {
        size_t l = utf8_len(s + i, n - i);
        if (*dlen + (l != 0 ? l : 1) >= cap) {
            break;
        }
        if (l == 0) {
            dst[(*dlen)++] = '?';
            i++;
        } else if (l == 1 && (s[i] < 0x20 || s[i] == 0x7f)) {
            dst[(*dlen)++] = ctl_repl;
            i++;
        } else {
            memcpy(dst + *dlen, s + i, l);
            *dlen += l;
            i += l;
        }
    }
    dst[*dlen] = '\0';
    return i;
}

static void fmt_duration(char *buf, size_t len, int64_t ms)
{
    if (ms % 1000 == 0) {
        snprintf(buf, len, "%llds", (long long)(ms / 1000));
    } else {
        snprintf(buf, len, "%lldms", (long long)ms);
    }
}

/* ---- perf data ------------------------------------------------------------------------------- */

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/*
 * The length of the longest decimal number at the start of [s, e):
 * [+-]? (d+ (. d*)? | . d+) ([eE] [+-]? d+)?; 0 if there is none.
 */
static size_t scan_number(const char *s, const char *e)
{
    const char *p = s;
    const char *q = NULL;
    size_t digits = 0;

    if (p < e && (*p == '+' || *p == '-')) {
        p++;
    }
    while (p < e && *p >= '0' && *p <= '9') {
        p++;
        digits++;
    }
    if (p < e && *p == '.') {
        p++;
        while (p < e && *p >= '0' && *p <= '9') {
            p++;
            digits++;
        }
    }
    if (digits == 0) {
        return 0;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        q = p + 1;
        if (q < e && (*q == '+' || *q == '-')) {
            q++;
        }
        if (q < e && *q >= '0' && *q <= '9') {
            while (q < e && *q >= '0' && *q <= '9') {
                q++;
            }
            p = q;
        }
    }
    return (size_t)(p - s);
}

/* A decimal number (scan_number's grammar) filling exactly [s, e), finite. 0 or -1. */
static int parse_number(const char *s, const char *e, double *out)
{
    char tmp[EXEC_NUM_MAX + 1];
    char *end = NULL;
    double v = 0;
    size_t n = (size_t)(e - s);

    if (e <= s || n > EXEC_NUM_MAX || scan_number(s, e) != n) {
        return -1;
    }
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    v = strtod(tmp, &end); /* the agent never calls setlocale(): '.' is the decimal point */
    if (end != tmp + n || !isfinite(v)) {
        return -1;
    }
    *out = v;
    return 0;
}

/* The factor of a unit of measurement to base units, or 0 for an unknown one. */
static double uom_factor(const char *s, size_t n)
{
    static const struct {
        const char *uom;
        double f;
    } uoms[] = {
        {"", 1},  {"s", 1},       {"ms", 1e-3},      {"us", 1e-6},         {"%", 1},
        {"B", 1}, {"KB", 1024.0}, {"MB", 1048576.0}, {"GB", 1073741824.0}, {"TB", 1099511627776.0},
        {"c", 1},
    };

    for (size_t i = 0; i < sizeof(uoms) / sizeof(uoms[0]); i++) {
        if (strlen(uoms[i].uom) == n && memcmp(uoms[i].uom, s, n) == 0) {
            return uoms[i].f;
        }
    }
    return 0;
}

/* A threshold: empty (NaN), a number (*out = it * f), a range (NaN). -1 if neither. */
static int parse_threshold(const char *s, const char *e, double f, double *out)
{
    const char *colon = NULL;
    double v = 0;

    *out = NAN;
    if (s == e) {
        return 0;
    }
    if (*s != '@' && parse_number(s, e, &v) == 0) {
        *out = v * f;
        return 0;
    }
    if (*s == '@') {
        s++;
    }
    colon = memchr(s, ':', (size_t)(e - s));
    if (colon == NULL) {
        return parse_number(s, e, &v); /* "@10" */
    }
    if (colon > s && !(colon - s == 1 && *s == '~') && parse_number(s, colon, &v) < 0) {
        return -1;
    }
    if (colon + 1 < e && parse_number(colon + 1, e, &v) < 0) {
        return -1;
    }
    return 0;
}

/* min or max: empty (NaN) or a number. */
static int parse_bound(const char *s, const char *e, double f, double *out)
{
    double v = 0;

    *out = NAN;
    if (s == e) {
        return 0;
    }
    if (parse_number(s, e, &v) < 0) {
        return -1;
    }
    *out = v * f;
    return 0;
}

/* Parse the fields after '=' ([s, e), no blanks) into it->v. 0 or -1 when malformed. */
static int parse_perf_values(const char *s, const char *e, struct exec_perf *it)
{
    const char *f[5][2];
    size_t nf = 0;
    const char *p = s;
    size_t numlen = 0;
    double factor = 1;

    for (;;) {
        const char *semi = memchr(p, ';', (size_t)(e - p));
        const char *fe = semi != NULL ? semi : e;
        if (nf == 5) {
            return -1; /* more than value;warn;crit;min;max */
        }
        f[nf][0] = p;
        f[nf][1] = fe;
        nf++;
        if (semi == NULL) {
            break;
        }
        p = semi + 1;
    }
    for (size_t i = 0; i < 5; i++) {
        it->v[i] = NAN;
    }
    if (f[0][1] - f[0][0] == 1 && f[0][0][0] == 'U') {
        factor = 1; /* unknown value; thresholds are still read */
    } else {
        numlen = scan_number(f[0][0], f[0][1]);
        if (numlen == 0) {
            return -1;
        }
        factor = uom_factor(f[0][0] + numlen, (size_t)(f[0][1] - f[0][0]) - numlen);
        if (factor == 0) {
            return -1;
        }
        if (parse_number(f[0][0], f[0][0] + numlen, &it->v[0]) < 0) {
            return -1;
        }
        it->v[0] *= factor;
    }
    for (size_t i = 1; i < nf; i++) {
        int rc = i <= 2 ? parse_threshold(f[i][0], f[i][1], factor, &it->v[i])
                        : parse_bound(f[i][0], f[i][1], factor, &it->v[i]);
        if (rc < 0) {
            return -1;
        }
    }
    for (size_t i = 0; i < 5; i++) {
        if (!isnan(it->v[i]) && !isfinite(it->v[i])) {
            return -1;
        }
    }
    return 0;
}

/*
 * Parse the perf data in [s, e) (one line, no newline) into items[*n..max). Malformed items
 * are skipped up to the next blank; an unterminated quote ends the line. Returns the number
 * of malformed items.
 */
static unsigned perf_parse(const char *s, const char *e, struct exec_perf *items, size_t *n,
                           size_t max)
{
    const char *p = s;
    unsigned bad = 0;

    while (p < e && *n < max) {
        struct exec_perf *it = &items[*n];
        size_t ll = 0;
        const char *vs = NULL;
        int ok = 1;

        while (p < e && is_blank(*p)) {
            p++;
        }
        if (p == e) {
            break;
        }
        if (*p == '\'') {
            p++;
            for (;;) {
                if (p == e) {
                    return bad + 1; /* unterminated: nothing after it can be trusted */
                }
                if (*p == '\'' && p + 1 < e && p[1] == '\'') {
                    p += 2;
                    if (ll + 1 < sizeof(it->label)) {
                        it->label[ll++] = '\'';
                    }
                    continue;
                }
                if (*p == '\'') {
                    p++;
                    break;
                }
                if (ll + 1 < sizeof(it->label)) {
                    it->label[ll++] = *p;
                }
                p++;
            }
        } else {
            while (p < e && !is_blank(*p) && *p != '=' && *p != '\'') {
                if (ll + 1 < sizeof(it->label)) {
                    it->label[ll++] = *p;
                }
                p++;
            }
        }
        it->label[ll] = '\0';
        if (ll == 0 || p == e || *p != '=') {
            ok = 0;
        } else {
            p++;
        }
        vs = p;
        while (p < e && !is_blank(*p)) {
            p++;
        }
        if (ok && parse_perf_values(vs, p, it) == 0) {
            (*n)++;
        } else {
            bad++;
        }
    }
    return bad;
}

/* ---- running plugins ------------------------------------------------------------------------- */

static int pidfd_for(pid_t pid)
{
#ifdef SYS_pidfd_open
    long fd = syscall(SYS_pidfd_open, pid, 0);
    return fd >= 0 ? (int)fd : -1; /* pidfds are close-on-exec */
#else
    (void)pid;
    return -1;
#endif
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* Start r->chk's plugin. 0, or -errno with nothing left running. */
static int run_start(struct exec_run *r)
{
    pid_t pid = 0;
    int fd = -1;
    int rc = wp_probe_spawn(r->chk->argv, r->chk->envp, &pid, &fd);

    if (rc < 0) {
        return rc;
    }
    r->pid = pid;
    r->out_fd = fd;
    r->pid_fd = pidfd_for(pid);
    return 0;
}

/* Read what the pipe has (up to a budget); close it at EOF or on an error. */
static void run_read(struct exec_run *r)
{
    char sink[4096];
    size_t budget = EXEC_READ_BUDGET;

    while (r->out_fd >= 0 && budget > 0) {
        char *dst = sink;
        size_t room = sizeof(sink);
        ssize_t n = 0;

        if (r->len < EXEC_OUT_MAX) {
            dst = r->buf + r->len;
            room = EXEC_OUT_MAX - r->len;
        }
        n = read(r->out_fd, dst, room);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        if (n <= 0) {
            close_fd(&r->out_fd);
            return;
        }
        if (dst == sink) {
            r->cut = 1;
        } else {
            r->len += (size_t)n;
        }
        r->total += (uint64_t)n;
        budget -= (size_t)n < budget ? (size_t)n : budget;
    }
}

/* Has the leader exited? Leaves it a zombie (WNOWAIT): its pid stays our group's id. */
static int leader_exited(const struct exec_run *r)
{
    siginfo_t si;

    memset(&si, 0, sizeof(si));
    if (waitid(P_PID, (id_t)r->pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
        return errno == ECHILD; /* reaped by someone else: treat as gone */
    }
    return si.si_pid == r->pid;
}

static void reap_orphans(struct exec_ctx *x)
{
    size_t k = 0;

    for (size_t i = 0; i < x->norphans; i++) {
        pid_t w = waitpid(x->orphans[i], NULL, WNOHANG);
        if (w == 0) {
            x->orphans[k++] = x->orphans[i];
        }
    }
    x->norphans = k;
}

/*
 * The check text into text (WP_TEXT_MAX bytes): the first line up to '|', cleaned, cut to
 * leave room for a suffix. Perf data (after '|' there, then in the long output) goes to
 * perf[*nperf..]. Returns the number of malformed perf items.
 */
static unsigned parse_output(const struct exec_run *r, char *text, size_t *tlen, size_t tcap,
                             struct exec_perf *perf, size_t *nperf)
{
    const char *s = r->buf;
    const char *end = r->buf + r->len;
    int in_perf = 0;
    unsigned bad = 0;

    for (size_t line = 0; s < end; line++) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *le = nl != NULL ? nl : end;
        const char *bar = NULL;
        /* a line cut by the output limit is not read for perf data: a number may be cut */
        int whole = nl != NULL || !r->cut;

        if (le > s && le[-1] == '\r') {
            le--;
        }
        if (line == 0) {
            const char *ts = s;
            const char *te = NULL;
            bar = memchr(s, '|', (size_t)(le - s));
            te = bar != NULL ? bar : le;
            while (te > ts && is_blank(te[-1])) {
                te--;
            }
            while (ts < te && is_blank(*ts)) {
                ts++;
            }
            utf8_clean(text, tlen, tcap, ts, (size_t)(te - ts), ' ');
        } else if (in_perf) {
            bar = s - 1; /* the whole line */
        } else {
            bar = memchr(s, '|', (size_t)(le - s));
            in_perf = bar != NULL;
        }
        if (bar != NULL && whole) {
            bad += perf_parse(bar + 1, le, perf, nperf, EXEC_PERF_MAX);
        }
        s = nl != NULL ? nl + 1 : end;
    }
    return bad;
}

/*
 * Report a run and emit its rows. err: 0, or the -errno of a failed spawn (spawned 0) or of
 * a failed waitpid() (spawned 1); wst: the wait status when err is 0.
 */
static void run_report(struct wp_probe *p, struct wp_sink *out, struct exec_run *r, int spawned,
                       int err, int wst, int64_t now)
{
    struct exec_check *c = r->chk;
    unsigned status = WP_CHECK_UNKNOWN;
    enum exec_reason why = EXEC_R_EXIT;
    char suffix[160];
    size_t slen = 0;
    char *text = wp_xmalloc(WP_TEXT_MAX);
    size_t tlen = 0;
    double vals[5];
    struct exec_perf *perf = wp_xcalloc(EXEC_PERF_MAX, sizeof(*perf));
    size_t nperf = 0;
    unsigned bad = 0;
    char tbuf[32];

    suffix[0] = '\0';
    text[0] = '\0';
    fmt_duration(tbuf, sizeof(tbuf), c->timeout_ms);
    if (!spawned) {
        why = EXEC_R_SPAWN;
    } else if (r->timed_out) {
        why = EXEC_R_TIMEOUT;
    } else if (err != 0) {
        why = EXEC_R_SIGNAL;
        slen += (size_t)snprintf(suffix + slen, sizeof(suffix) - slen, " (no exit status: %s)",
                                 strerror(-err));
    } else if (WIFEXITED(wst) && WEXITSTATUS(wst) <= 3) {
        status = (unsigned)WEXITSTATUS(wst); /* a cut output keeps the plugin's verdict */
    } else if (WIFEXITED(wst)) {
        why = EXEC_R_BADEXIT;
        slen += (size_t)snprintf(suffix + slen, sizeof(suffix) - slen, " (exit status %d)",
                                 WEXITSTATUS(wst));
    } else {
        why = EXEC_R_SIGNAL;
        slen += (size_t)snprintf(suffix + slen, sizeof(suffix) - slen, " (killed by signal %d)",
                                 WIFSIGNALED(wst) ? WTERMSIG(wst) : 0);
    }
    if (r->cut) {
        slen += (size_t)snprintf(suffix + slen, sizeof(suffix) - slen, " (output cut at %u KiB)",
                                 EXEC_OUT_MAX >> 10);
    }
    if (why == EXEC_R_TIMEOUT) {
        slen += (size_t)snprintf(suffix + slen, sizeof(suffix) - slen,
                                 " (timed out after %s, killed)", tbuf);
    }

    if (why == EXEC_R_SPAWN) {
        char *m = wp_xasprintf("cannot run %s: %s", c->argv[0], strerror(-err));
        utf8_clean(text, &tlen, WP_TEXT_MAX - sizeof(suffix), m, strlen(m), ' ');
        free(m);
    } else {
        bad = parse_output(r, text, &tlen, WP_TEXT_MAX - sizeof(suffix), perf, &nperf);
    }
    if (tlen == 0 && slen == 0) {
        utf8_clean(text, &tlen, WP_TEXT_MAX, "(no output)", 11, ' ');
    }
    /* the suffix always fits (the text left room); no leading blank after no text */
    memcpy(text + tlen, tlen == 0 && slen > 0 ? suffix + 1 : suffix,
           tlen == 0 && slen > 0 ? slen : slen + 1);
    wp_sink_check(out, c->name, status, text);

    vals[0] = (double)status;
    vals[1] = (double)(now - r->start_ms) / 1000.0;
    vals[2] = (double)r->total;
    vals[3] = why == EXEC_R_TIMEOUT ? 1.0 : 0.0;
    vals[4] = r->cut ? 1.0 : 0.0;
    wp_sink_metric(out, &kind_exec, c->name, vals);

    for (size_t i = 0; i < nperf; i++) {
        size_t il = 0;
        int dup = 0;
        snprintf(perf[i].inst, sizeof(perf[i].inst), "%s/", c->name);
        il = strlen(perf[i].inst);
        utf8_clean(perf[i].inst, &il, sizeof(perf[i].inst), perf[i].label, strlen(perf[i].label),
                   '_');
        /* a label given twice, or cut to the same instance as an earlier one */
        for (size_t k = 0; k < i && !dup; k++) {
            dup = strcmp(perf[k].inst, perf[i].inst) == 0;
        }
        if (!dup) {
            wp_sink_metric(out, &kind_perf, perf[i].inst, perf[i].v);
        }
    }

    WP_PLOG(p, WP_LOG_DEBUG,
            "check %s: status %u in %.3fs, %llu output bytes, %zu perf items, %u malformed",
            c->name, status, vals[1], (unsigned long long)r->total, nperf, bad);
    if (status != c->last_status || (int)why != c->last_reason) {
        enum wp_log_level lvl = why >= EXEC_R_TIMEOUT ? WP_LOG_WARN : WP_LOG_INFO;
        if (why == EXEC_R_SPAWN) {
            WP_PLOG(p, lvl, "check %s: %s, cannot run its command: %s", c->name,
                    status_names[status], strerror(-err));
        } else if (why == EXEC_R_TIMEOUT) {
            WP_PLOG(p, lvl, "check %s: %s, timed out after %s, killed", c->name,
                    status_names[status], tbuf);
        } else if (why == EXEC_R_EXIT) {
            WP_PLOG(p, lvl, "check %s: %s (exit status %d)", c->name, status_names[status],
                    WEXITSTATUS(wst));
        } else {
            WP_PLOG(p, lvl, "check %s: %s%s", c->name, status_names[status], suffix);
        }
        c->last_status = status;
        c->last_reason = (int)why;
    }
    free(perf);
    free(text);
}

/* Advance one run after a poll() round; 1 when it is finished (reported, slot free). */
static int run_step(struct wp_probe *p, struct wp_sink *out, struct exec_run *r, int64_t now)
{
    struct exec_ctx *x = p->ctx;
    int st = 0;
    int rc = 0;

    if (r->out_fd >= 0 && r->out_pollix >= 0 &&
        (x->pfds[r->out_pollix].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        run_read(r);
    }
    if (!r->exited &&
        (r->pid_fd < 0 || (r->pid_pollix >= 0 && x->pfds[r->pid_pollix].revents != 0))) {
        if (leader_exited(r)) {
            r->exited = 1;
            run_read(r); /* what it wrote last */
            r->linger_ms = now + EXEC_LINGER_MS;
        }
    }
    if (!r->exited) {
        if (r->phase == EXEC_RUNNING && now >= r->deadline_ms) {
            kill(-r->pid, SIGTERM);
            r->timed_out = 1;
            r->phase = EXEC_TERM_SENT;
            r->kill_ms = now + EXEC_GRACE_MS;
        } else if (r->phase == EXEC_TERM_SENT && now >= r->kill_ms) {
            kill(-r->pid, SIGKILL);
            r->phase = EXEC_KILL_SENT;
            r->kill_ms = now + EXEC_ABANDON_MS;
        } else if (r->phase == EXEC_KILL_SENT && now >= r->kill_ms) {
            /* stuck in the kernel: report now, reap it in a later sample */
            WP_PLOG(p, WP_LOG_WARN, "check %s: pid %ld survives SIGKILL, reaping it later",
                    r->chk->name, (long)r->pid);
            x->orphans = wp_xrealloc(x->orphans, (x->norphans + 1) * sizeof(*x->orphans));
            x->orphans[x->norphans++] = r->pid;
            close_fd(&r->out_fd);
            close_fd(&r->pid_fd);
            run_report(p, out, r, 1, 0, 0, now);
            r->pid = 0;
            return 1;
        }
        return 0;
    }
    if (r->out_fd >= 0 && now < r->linger_ms) {
        return 0;
    }
    /* done: whatever it left in its group goes, then the leader is reaped */
    close_fd(&r->out_fd);
    close_fd(&r->pid_fd);
    kill(-r->pid, SIGKILL);
    do {
        rc = waitpid(r->pid, &st, 0) < 0 ? -errno : 0;
    } while (rc == -EINTR);
    run_report(p, out, r, 1, rc, st, wp_clock_mono_ms());
    r->pid = 0;
    return 1;
}

/* The poll() timeout for the active runs: the next deadline from now, in ms. */
static int next_wait(const struct exec_ctx *x, int64_t now)
{
    int64_t next = INT64_MAX;

    for (size_t i = 0; i < x->nruns; i++) {
        const struct exec_run *r = &x->runs[i];
        int64_t t = INT64_MAX;
        if (r->pid == 0) {
            continue;
        }
        if (r->exited) {
            t = r->linger_ms;
        } else {
            t = r->phase == EXEC_RUNNING ? r->deadline_ms : r->kill_ms;
            if (r->pid_fd < 0 && now + EXEC_TICK_MS < t) {
                t = now + EXEC_TICK_MS;
            }
        }
        if (t < next) {
            next = t;
        }
    }
    if (next == INT64_MAX) {
        return -1;
    }
    return next <= now ? 0 : (int)(next - now);
}

static int exec_sample(struct wp_probe *p, struct wp_sink *out)
{
    struct exec_ctx *x = p->ctx;
    const struct exec_checks *cs = x->checks;
    size_t next = 0;
    size_t active = 0;

    reap_orphans(x);
    while (next < cs->n || active > 0) {
        size_t nfd = 0;
        int64_t now = 0;
        int rc = 0;

        /* fill free slots */
        for (size_t i = 0; i < x->nruns && next < cs->n; i++) {
            struct exec_run *r = &x->runs[i];
            if (r->pid != 0) {
                continue;
            }
            r->chk = &cs->v[next++];
            r->len = 0;
            r->total = 0;
            r->cut = 0;
            r->timed_out = 0;
            r->exited = 0;
            r->phase = EXEC_RUNNING;
            r->out_fd = -1;
            r->pid_fd = -1;
            r->start_ms = wp_clock_mono_ms();
            r->deadline_ms = r->start_ms + r->chk->timeout_ms;
            rc = run_start(r);
            if (rc < 0) {
                r->pid = 0;
                run_report(p, out, r, 0, rc, 0, wp_clock_mono_ms());
                continue;
            }
            active++;
        }
        if (active == 0) {
            continue;
        }
        for (size_t i = 0; i < x->nruns; i++) {
            struct exec_run *r = &x->runs[i];
            r->out_pollix = -1;
            r->pid_pollix = -1;
            if (r->pid == 0) {
                continue;
            }
            if (r->out_fd >= 0) {
                x->pfds[nfd].fd = r->out_fd;
                x->pfds[nfd].events = POLLIN;
                x->pfds[nfd].revents = 0;
                r->out_pollix = (int)nfd++;
            }
            if (r->pid_fd >= 0 && !r->exited) {
                x->pfds[nfd].fd = r->pid_fd;
                x->pfds[nfd].events = POLLIN;
                x->pfds[nfd].revents = 0;
                r->pid_pollix = (int)nfd++;
            }
        }
        /* on a failure the revents stay 0: the deadlines still advance below */
        if (poll(x->pfds, (nfds_t)nfd, next_wait(x, wp_clock_mono_ms())) < 0 && errno != EINTR) {
            WP_PLOG(p, WP_LOG_ERROR, "poll: %s", strerror(errno));
            usleep(EXEC_TICK_MS * 1000); /* no busy loop while it lasts */
        }
        now = wp_clock_mono_ms();
        for (size_t i = 0; i < x->nruns; i++) {
            struct exec_run *r = &x->runs[i];
            if (r->pid != 0 && run_step(p, out, r, now)) {
                active--;
            }
        }
    }
    return 0;
}

static int exec_init(struct wp_probe *p)
{
    struct exec_ctx *x = p->ctx;
    struct exec_checks *cs = x->checks;
    int64_t worst = 0;

    if (cs == NULL || cs->n == 0) {
        WP_PLOG(p, WP_LOG_ERROR, "no checks configured");
        return WP_ECONFIG;
    }
    for (size_t i = 0; i < cs->n; i++) {
        if (cs->v[i].timeout_ms == 0) {
            cs->v[i].timeout_ms = x->timeout_ms;
        }
        if (cs->v[i].timeout_ms > worst) {
            worst = cs->v[i].timeout_ms;
        }
    }
    x->nruns = (size_t)x->concurrency < cs->n ? (size_t)x->concurrency : cs->n;
    x->runs = wp_xcalloc(x->nruns, sizeof(*x->runs));
    x->pfds = wp_xcalloc(2 * x->nruns, sizeof(*x->pfds));
    for (size_t i = 0; i < x->nruns; i++) {
        x->runs[i].buf = wp_xmalloc(EXEC_OUT_MAX + 1);
        x->runs[i].out_fd = -1;
        x->runs[i].pid_fd = -1;
    }
    /* rounds of plugins, each at worst its timeout: longer than the interval skips rounds */
    worst = (int64_t)((cs->n + x->nruns - 1) / x->nruns) * worst;
    if (worst > p->interval_ms) {
        WP_PLOG(p, WP_LOG_WARN,
                "%zu checks at concurrency %zu may take up to %lld ms, longer than the interval "
                "(%lld ms): rounds would be skipped",
                cs->n, x->nruns, (long long)worst, (long long)p->interval_ms);
    }
    return 0;
}

static void exec_destroy(struct wp_probe *p)
{
    struct exec_ctx *x = p->ctx;

    if (x == NULL) {
        return;
    }
    for (size_t i = 0; x->runs != NULL && i < x->nruns; i++) {
        free(x->runs[i].buf);
    }
    free(x->runs);
    x->runs = NULL;
    free(x->pfds);
    x->pfds = NULL;
    reap_orphans(x);
    free(x->orphans);
    x->orphans = NULL;
    x->norphans = 0;
}

const struct wp_probe_ops wp_probe_exec = {
    .name = "exec",
    .summary = "Nagios / monitoring-plugins compatible checks: status, output and perf data",
    .opts = exec_opts,
    .ctx_size = sizeof(struct exec_ctx),
    .flags = WP_PROBE_BLOCKING,
    .init = exec_init,
    .sample = exec_sample,
    .start = NULL,
    .stop = NULL,
    .destroy = exec_destroy,
    .committed = NULL,
};
