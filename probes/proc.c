/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The proc probe: processes matched by name, command line, user or pid file, with one row
 * and one check result per match, read from procfs through a configurable root.
 *
 * Config (each match entry is an instance; all of its selectors must hold):
 *
 *   - kind: proc
 *     root: /proc
 *     match:
 *       - {name: tomcat, comm: java, cmdline: "org\\.apache\\.catalina\\.startup\\.Bootstrap",
 *          user: tomcat, pidfile: /run/tomcat.pid, min: 1, max: 1}
 *
 *   comm     the process name (the comm field of <root>/PID/stat, at most 15 characters as
 *            the kernel keeps it), compared exactly.
 *   cmdline  a PCRE2 regex searched (unanchored, bytes, not UTF) in the command line, its
 *            arguments joined with single spaces, the first 64 KiB of it; compiled once, with
 *            JIT when the library has it.
 *   user     a user name (resolved with getpwnam_r() when the config is read) or a uid,
 *            compared with the effective uid (pgrep -u).
 *   pidfile  the process whose pid that file (an absolute path) holds, re-read every sample.
 *   min/max  the expected count (default 1..unlimited): OK within, CRITICAL outside.
 *
 * Series group "proc", instance = the match name, every field a gauge:
 *   count           matched processes (zombies are not counted: they are dead)
 *   cpu_pct         utime+stime of the matched processes since the previous sample, in % of
 *                   one core; NaN on the first sample
 *   rss_bytes       resident set (stat rss pages * page size), summed
 *   threads         threads (stat num_threads), summed
 *   fds             entries of <root>/PID/fd, summed; NaN when one could not be listed
 *                   (another user's process, the agent not root)
 *   oldest_start_s  seconds since the oldest matched process started (NaN without one)
 * and check "proc_<name>": "PROCS OK: 1 process matching tomcat (expected 1..1)".
 *
 * Time: ages and the cpu_pct interval come from <root>/uptime, read each sample, and
 * starttime in clock ticks since boot. That is the same quantity as now - btime - starttime
 * but on one clock (the boot clock, which starttime uses too), so an NTP step or btime's
 * whole-second rounding cannot skew it, and a fixture tree is self-consistent.
 *
 * CPU: a hash of the matched pids keeps (pid, starttime, utime+stime) of the previous
 * sample; a pid whose starttime differs was reused and is a new process. A process that
 * started since the previous sample adds all of its ticks, one that ran before but did not
 * match then (a pid file now pointing at it) adds none this round. The ticks of processes
 * that exited between samples are lost, as with any sampling tool. At most max_pids
 * processes are tracked; beyond that the affected rows get NaN cpu_pct (logged once).
 *
 * Cost, O(processes): one readdir() of the root; per process only what a selector needs,
 * each file read at most once (pidfile: nothing; comm: stat; user: an fstatat() of
 * <root>/PID, whose owner is the effective uid, and status only when that owner is root,
 * which it also is for non-dumpable processes; cmdline: the cmdline file); for matched
 * processes stat and the fd count (the size of the fd directory on procfs since Linux 6.2,
 * else a listing). Measured on a 2-core VM (-O2, ~100 processes, ~6 us per procfs read):
 * 60 us per sample for a pidfile match, 1 ms for a comm match, 0.6 ms for a cmdline match.
 * A process that vanishes mid-read (ENOENT, ESRCH) is simply not counted.
 *
 * WP_PROBE_BLOCKING: reading <root>/PID/cmdline can block on the target's memory map
 * lock (a process stuck in a page fault), so sample() runs off the agent's loop.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/vfs.h>
#include <unistd.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "probe.h"
#include "wp/err.h"
#include "wp/mem.h"

#define PROC_NAME_MAX    64 /* a match name, like probe instance names */
#define PROC_COMM_MAX    15 /* TASK_COMM_LEN - 1 */
#define PROC_CMDLINE_MAX (64u << 10)
#define PROC_COUNT_MAX   1000000 /* min/max bounds */
#define PROC_MATCH_LIMIT 100000  /* pcre2 match limit: a bad regex cannot eat the agent */
#define PROC_TAB_MIN     64
#define PROC_SUPER_MAGIC 0x9fa0 /* linux/magic.h */

/* One configured match (an instance). Strings are owned. */
struct proc_match {
    char *name;
    char *check; /* "proc_<name>" */
    char *comm;
    char *cmdline;
    pcre2_code *re;
    int has_user;
    uid_t uid;
    char *pidfile;
    int64_t min, max; /* max < 0: no upper bound */

    /* per sample */
    int pf_pid;       /* the pid file's pid, 0 when none */
    int pf_seen;      /* that pid is in the root */
    char pf_why[160]; /* why there is none, for the check output */
    int hit;          /* the current process matches */
    int re_failing;   /* a match error was logged */
    uint64_t count;
    double cpu_ticks; /* NaN when unknown */
    double rss, threads, fds;
    uint64_t oldest; /* smallest starttime (ticks), UINT64_MAX without one */
};

/* The "match" option: a sequence of maps. */
struct proc_matches {
    struct proc_match *v;
    size_t n;
};

/* A tracked process: its start time identifies it across pid reuse. pid 0 = empty slot. */
struct proc_slot {
    int pid;
    uint64_t start;
    uint64_t ticks;
};

/* Open-addressing hash of pids (linear probing, capacity a power of two, at most half full). */
struct proc_tab {
    struct proc_slot *v;
    size_t cap, n;
};

/* What was read of one process during a scan; loaded lazily. */
struct proc_pid {
    int pid;
    char name[16]; /* "1234" for openat() paths */
    int stat_rc;   /* 1 not read yet, 0 read, <0 error */
    char comm[PROC_COMM_MAX + 1];
    char state;
    uint64_t ticks, start;
    double threads, rss;
    int uid_rc; /* 1 not read yet */
    uid_t euid;
    int cmd_rc; /* 1 not read yet */
    size_t cmdlen;
};

struct proc_ctx {
    /* options, decoded by the registry with proc_opts (it owns and frees them) */
    char *root;
    struct proc_matches match;
    int64_t max_pids;

    /* state, owned by the probe (init allocates, destroy frees) */
    DIR *dir;   /* root, rewound for each scan */
    int procfs; /* root is a procfs (not a fixture tree): fd directories have a size */
    double hz, page;
    struct proc_tab tab[2]; /* [cur] is filled by this sample, the other holds the previous */
    int cur;
    int have_prev;
    double prev_uptime; /* seconds */
    int overflow, prev_overflow;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    char *cmd; /* command line buffer, PROC_CMDLINE_MAX + 1 bytes */
    int list_failing, uptime_failing, overflow_logged;
};

static int decode_matches(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                          const void *arg, struct wp_conf_err *err);
static void free_matches(void *field, const void *arg);

static const struct wp_opt proc_opts[] = {
    {.name = "root",
     .type = WP_OPT_STR,
     .def = "/proc",
     .help = "procfs root (a fixture tree in tests, the host's /proc seen from a container)",
     .offset = offsetof(struct proc_ctx, root)},
    {.name = "match",
     .type = WP_OPT_CUSTOM,
     .help = "processes to watch: [{name, comm, cmdline, user, pidfile, min, max}]; every "
             "selector given must hold",
     .offset = offsetof(struct proc_ctx, match),
     .required = 1,
     .custom = decode_matches,
     .custom_free = free_matches},
    {.name = "max_pids",
     .type = WP_OPT_INT,
     .def = "65536",
     .help = "matched processes tracked for cpu_pct (bounds the memory)",
     .offset = offsetof(struct proc_ctx, max_pids),
     .min = 1,
     .max = 4194304},
    WP_OPT_TABLE_END,
};

static const char *const proc_fields[] = {"count",   "cpu_pct", "rss_bytes",
                                          "threads", "fds",     "oldest_start_s"};
static const struct wp_series_kind kind_proc = {"proc", proc_fields, 6, WP_DS_GAUGE};

/* ---- config ---- */

/* One match entry as decoded by match_opts. */
struct match_item {
    char *name;
    char *comm;
    char *cmdline;
    char *user;
    char *pidfile;
    int64_t min;
    int64_t max;
};

static const struct wp_opt match_opts[] = {
    {.name = "name",
     .type = WP_OPT_STR,
     .help = "instance name: the series instance, and the check is proc_<name>",
     .offset = offsetof(struct match_item, name),
     .required = 1},
    {.name = "comm",
     .type = WP_OPT_STR,
     .help = "process name (stat comm, at most 15 characters), exact",
     .offset = offsetof(struct match_item, comm)},
    {.name = "cmdline",
     .type = WP_OPT_STR,
     .help = "PCRE2 regex searched in the command line (arguments joined with spaces)",
     .offset = offsetof(struct match_item, cmdline)},
    {.name = "user",
     .type = WP_OPT_STR,
     .help = "user name or uid (the effective uid)",
     .offset = offsetof(struct match_item, user)},
    {.name = "pidfile",
     .type = WP_OPT_STR,
     .help = "file holding the pid (re-read every sample)",
     .offset = offsetof(struct match_item, pidfile)},
    {.name = "min",
     .type = WP_OPT_INT,
     .def = "1",
     .help = "fewest processes expected (fewer is CRITICAL)",
     .offset = offsetof(struct match_item, min),
     .min = 0,
     .max = PROC_COUNT_MAX},
    {.name = "max",
     .type = WP_OPT_INT,
     .help = "most processes expected (more is CRITICAL); default: no limit",
     .offset = offsetof(struct match_item, max),
     .min = 0,
     .max = PROC_COUNT_MAX},
    WP_OPT_TABLE_END,
};

/* A uid from "1000", or the user's uid from the password database. 0 or WP_ECONFIG. */
static int resolve_user(struct wp_conf_doc *doc, struct wp_conf_node *at, const char *path,
                        const char *user, struct wp_conf_err *err, uid_t *uid)
{
    int rc = 0;
    char *buf = NULL;
    size_t cap = 1024;
    struct passwd pw;
    struct passwd *res = NULL;
    const char *q = user;

    while (*q >= '0' && *q <= '9') {
        q++;
    }
    if (q != user && *q == '\0') {
        unsigned long long v = strtoull(user, NULL, 10);
        if (q - user > 10 || v >= (unsigned long long)(uid_t)-1) {
            return wp_conf_errorf(doc, at, err, "%s: uid %s is out of range", path, user);
        }
        *uid = (uid_t)v;
        return 0;
    }
    for (;;) {
        buf = wp_xrealloc(buf, cap);
        rc = getpwnam_r(user, &pw, buf, cap, &res);
        if (rc != ERANGE || cap >= (1u << 20)) {
            break;
        }
        cap *= 2;
    }
    if (rc != 0) {
        rc = wp_conf_errorf(doc, at, err, "%s: cannot look up user \"%s\": %s", path, user,
                            wp_strerror(-rc));
        goto out;
    }
    if (res == NULL) {
        rc = wp_conf_errorf(doc, at, err, "%s: unknown user \"%s\" (expected a user name or uid)",
                            path, user);
        goto out;
    }
    *uid = res->pw_uid;
out:
    free(buf);
    return rc;
}

static int compile_re(struct wp_conf_doc *doc, struct wp_conf_node *at, const char *path,
                      const char *pattern, struct wp_conf_err *err, pcre2_code **out)
{
    int code = 0;
    PCRE2_SIZE off = 0;
    PCRE2_UCHAR msg[256];

    *out = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, 0, &code, &off, NULL);
    if (*out == NULL) {
        if (pcre2_get_error_message(code, msg, sizeof(msg)) < 0) {
            snprintf((char *)msg, sizeof(msg), "error %d", code);
        }
        return wp_conf_errorf(doc, at, err, "%s: regex \"%s\" does not compile: %s at offset %zu",
                              path, pattern, (const char *)msg, (size_t)off);
    }
    /* without JIT support (or memory for it) pcre2_match() interprets: slower, still right */
    (void)pcre2_jit_compile(*out, PCRE2_JIT_COMPLETE);
    return 0;
}

static void match_clear(struct proc_match *m)
{
    free(m->name);
    free(m->check);
    free(m->comm);
    free(m->cmdline);
    free(m->pidfile);
    pcre2_code_free(m->re);
    memset(m, 0, sizeof(*m));
}

/* Check one decoded entry and move it into m (which owns its strings afterwards). */
static int match_build(struct wp_conf_doc *doc, struct wp_conf_node *it, const char *path,
                       struct match_item *a, const struct proc_matches *prev,
                       struct wp_conf_err *err, struct proc_match *m)
{
    int rc = 0;
    struct wp_conf_node *at = NULL;
    char sub[64];

    if (!wp_probe_name_ok(a->name, PROC_NAME_MAX)) {
        return wp_conf_errorf(doc, wp_conf_map_get(doc, it, "name"), err,
                              "%s.name: expected 1 to %d letters, digits, '_', '-' or '.', got "
                              "\"%s\"",
                              path, PROC_NAME_MAX, a->name);
    }
    for (size_t j = 0; j < prev->n; j++) {
        if (strcmp(prev->v[j].name, a->name) == 0) {
            return wp_conf_errorf(doc, wp_conf_map_get(doc, it, "name"), err,
                                  "%s.name: \"%s\" is used by match[%zu] already", path, a->name,
                                  j);
        }
    }
    if (a->comm == NULL && a->cmdline == NULL && a->user == NULL && a->pidfile == NULL) {
        return wp_conf_errorf(doc, it, err,
                              "%s: no selector (expected at least one of comm, cmdline, user, "
                              "pidfile)",
                              path);
    }
    if (a->comm != NULL && (a->comm[0] == '\0' || strlen(a->comm) > PROC_COMM_MAX)) {
        return wp_conf_errorf(doc, wp_conf_map_get(doc, it, "comm"), err,
                              "%s.comm: expected 1 to %d characters (the kernel keeps no more of "
                              "a process name; use cmdline), got \"%s\"",
                              path, PROC_COMM_MAX, a->comm);
    }
    if (a->pidfile != NULL && a->pidfile[0] != '/') {
        /* the agent's working directory is no place to look for it */
        return wp_conf_errorf(doc, wp_conf_map_get(doc, it, "pidfile"), err,
                              "%s.pidfile: expected an absolute path, got \"%s\"", path,
                              a->pidfile);
    }
    at = wp_conf_map_get(doc, it, "max");
    if (at != NULL && a->max < a->min) {
        return wp_conf_errorf(doc, at, err, "%s.max: %lld is less than min (%lld)", path,
                              (long long)a->max, (long long)a->min);
    }
    m->max = at != NULL ? a->max : -1;
    m->min = a->min;
    if (a->user != NULL) {
        snprintf(sub, sizeof(sub), "%s.user", path);
        rc = resolve_user(doc, wp_conf_map_get(doc, it, "user"), sub, a->user, err, &m->uid);
        if (rc < 0) {
            return rc;
        }
        m->has_user = 1;
    }
    if (a->cmdline != NULL) {
        snprintf(sub, sizeof(sub), "%s.cmdline", path);
        rc = compile_re(doc, wp_conf_map_get(doc, it, "cmdline"), sub, a->cmdline, err, &m->re);
        if (rc < 0) {
            return rc;
        }
    }
    m->check = wp_xasprintf("proc_%s", a->name);
    m->name = a->name;
    a->name = NULL;
    m->comm = a->comm;
    a->comm = NULL;
    m->cmdline = a->cmdline;
    a->cmdline = NULL;
    m->pidfile = a->pidfile;
    a->pidfile = NULL;
    return 0;
}

static int decode_matches(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                          const void *arg, struct wp_conf_err *err)
{
    struct proc_matches *ms = field;
    size_t n = wp_conf_seq_len(doc, node);
    char path[32];

    (void)arg;
    free_matches(field, NULL); /* a key given twice */
    if (!wp_conf_is_seq(node) || n == 0) {
        return wp_conf_errorf(doc, node, err,
                              "match: expected a list like [{name: tomcat, comm: java}]");
    }
    ms->v = wp_xcalloc(n, sizeof(*ms->v));
    for (size_t i = 0; i < n; i++) {
        struct wp_conf_node *it = wp_conf_seq_at(doc, node, i);
        struct match_item a;
        int rc = 0;

        memset(&a, 0, sizeof(a));
        snprintf(path, sizeof(path), "match[%zu]", i);
        rc = wp_opts_apply(doc, it, match_opts, &a, path, err);
        if (rc == 0) {
            rc = match_build(doc, it, path, &a, ms, err, &ms->v[i]);
        }
        wp_opts_free(match_opts, &a);
        if (rc < 0) {
            match_clear(&ms->v[i]); /* a half-built entry */
            return rc;
        }
        ms->n = i + 1;
    }
    return 0;
}

static void free_matches(void *field, const void *arg)
{
    struct proc_matches *ms = field;

    (void)arg;
    for (size_t i = 0; i < ms->n; i++) {
        match_clear(&ms->v[i]);
    }
    free(ms->v);
    ms->v = NULL;
    ms->n = 0;
}

/* ---- the pid table ---- */

static size_t tab_hash(int pid, size_t cap)
{
    return (size_t)(((uint32_t)pid * 2654435761u) & (uint32_t)(cap - 1));
}

static const struct proc_slot *tab_find(const struct proc_tab *t, int pid)
{
    if (t->cap == 0) {
        return NULL;
    }
    for (size_t i = tab_hash(pid, t->cap);; i = (i + 1) & (t->cap - 1)) {
        if (t->v[i].pid == pid) {
            return &t->v[i];
        }
        if (t->v[i].pid == 0) {
            return NULL;
        }
    }
}

static void tab_put_raw(struct proc_tab *t, const struct proc_slot *s)
{
    size_t i = tab_hash(s->pid, t->cap);

    while (t->v[i].pid != 0 && t->v[i].pid != s->pid) {
        i = (i + 1) & (t->cap - 1);
    }
    if (t->v[i].pid == 0) {
        t->n++;
    }
    t->v[i] = *s;
}

/* Insert or update; the table doubles when it would be more than half full. */
static void tab_put(struct proc_tab *t, const struct proc_slot *s)
{
    if ((t->n + 1) * 2 > t->cap) {
        struct proc_tab bigger = {NULL, t->cap != 0 ? t->cap * 2 : PROC_TAB_MIN, 0};
        bigger.v = wp_xcalloc(bigger.cap, sizeof(*bigger.v));
        for (size_t i = 0; i < t->cap; i++) {
            if (t->v[i].pid != 0) {
                tab_put_raw(&bigger, &t->v[i]);
            }
        }
        free(t->v);
        *t = bigger;
    }
    tab_put_raw(t, s);
}

/* Empty t for a new sample; a table much larger than its last use shrinks. */
static void tab_reset(struct proc_tab *t)
{
    size_t want = PROC_TAB_MIN;

    while (want < t->n * 4) {
        want *= 2;
    }
    if (t->cap > want * 4) {
        free(t->v);
        t->v = wp_xcalloc(want, sizeof(*t->v));
        t->cap = want;
    } else if (t->cap != 0) {
        memset(t->v, 0, t->cap * sizeof(*t->v));
    }
    t->n = 0;
}

/* ---- reading procfs ---- */

/* Read up to cap - 1 bytes of root-relative rel into buf, NUL-terminated. Length or -errno. */
static ssize_t read_rel(const struct proc_ctx *c, const char *rel, char *buf, size_t cap)
{
    size_t len = 0;
    int fd = openat(dirfd(c->dir), rel, O_RDONLY | O_CLOEXEC | O_NOCTTY);

    if (fd < 0) {
        return -errno;
    }
    while (len < cap - 1) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            n = -errno;
            close(fd);
            return n;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return (ssize_t)len;
}

/* Parse a signed decimal at *pp (after blanks); moves *pp past it. */
static int64_t scan_i64(const char **pp)
{
    const char *s = *pp;
    int neg = 0;
    uint64_t v = 0;

    while (*s == ' ') {
        s++;
    }
    if (*s == '-') {
        neg = 1;
        s++;
    }
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (uint64_t)(*s - '0');
        s++;
    }
    *pp = s;
    return neg ? -(int64_t)v : (int64_t)v;
}

/* <root>/PID/stat: comm, state, utime + stime, num_threads, starttime, rss. */
static int load_stat(struct proc_ctx *c, struct proc_pid *pp)
{
    char path[32];
    char buf[1024];
    int64_t f[25];
    ssize_t n = 0;

    if (pp->stat_rc != 1) {
        return pp->stat_rc;
    }
    snprintf(path, sizeof(path), "%s/stat", pp->name);
    n = read_rel(c, path, buf, sizeof(buf));
    if (n < 0) {
        pp->stat_rc = (int)n;
        return pp->stat_rc;
    }
    /* "pid (comm) S ppid ...": comm may hold blanks and ')', so it ends at the last ')' */
    const char *lp = strchr(buf, '(');
    const char *rp = strrchr(buf, ')');
    if (lp == NULL || rp == NULL || rp < lp || rp[1] != ' ' || rp[2] == '\0') {
        pp->stat_rc = WP_EPROTO;
        return pp->stat_rc;
    }
    size_t cl = (size_t)(rp - lp - 1);
    if (cl > PROC_COMM_MAX) {
        cl = PROC_COMM_MAX;
    }
    memcpy(pp->comm, lp + 1, cl);
    pp->comm[cl] = '\0';
    pp->state = rp[2];
    /* fields counted as in proc(5): 3 is the state, 4 onwards are numbers */
    const char *q = rp + 3;
    for (int i = 4; i <= 24; i++) {
        f[i] = scan_i64(&q);
        if (*q != ' ' && (i < 24 || (*q != '\n' && *q != '\0'))) {
            pp->stat_rc = WP_EPROTO;
            return pp->stat_rc;
        }
    }
    pp->ticks = (uint64_t)(f[14] > 0 ? f[14] : 0) + (uint64_t)(f[15] > 0 ? f[15] : 0);
    pp->threads = (double)f[20];
    pp->start = (uint64_t)(f[22] > 0 ? f[22] : 0);
    pp->rss = f[24] > 0 ? (double)f[24] * c->page : 0.0;
    pp->stat_rc = 0;
    return 0;
}

/*
 * The effective uid. /proc/PID belongs to it unless the process is not dumpable, when it
 * belongs to root: so only a root-owned entry costs a read of status.
 */
static int load_uid(struct proc_ctx *c, struct proc_pid *pp)
{
    struct stat st;
    char path[32];
    char buf[4096];
    ssize_t n = 0;

    if (pp->uid_rc != 1) {
        return pp->uid_rc;
    }
    if (fstatat(dirfd(c->dir), pp->name, &st, 0) != 0) {
        pp->uid_rc = -errno;
        return pp->uid_rc;
    }
    if (st.st_uid != 0) {
        pp->euid = st.st_uid;
        pp->uid_rc = 0;
        return 0;
    }
    snprintf(path, sizeof(path), "%s/status", pp->name);
    n = read_rel(c, path, buf, sizeof(buf));
    if (n < 0) {
        pp->uid_rc = (int)n;
        return pp->uid_rc;
    }
    const char *u = strstr(buf, "\nUid:");
    if (u == NULL) {
        pp->uid_rc = WP_EPROTO;
        return pp->uid_rc;
    }
    char *end = NULL;
    (void)strtoul(u + 5, &end, 10); /* the real uid comes first */
    pp->euid = (uid_t)strtoul(end, NULL, 10);
    pp->uid_rc = 0;
    return 0;
}

/* The command line into c->cmd, arguments joined with spaces. */
static int load_cmdline(struct proc_ctx *c, struct proc_pid *pp)
{
    char path[32];
    ssize_t n = 0;

    if (pp->cmd_rc != 1) {
        return pp->cmd_rc;
    }
    snprintf(path, sizeof(path), "%s/cmdline", pp->name);
    n = read_rel(c, path, c->cmd, PROC_CMDLINE_MAX + 1);
    if (n < 0) {
        pp->cmd_rc = (int)n;
        return pp->cmd_rc;
    }
    while (n > 0 && c->cmd[n - 1] == '\0') {
        n--;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (c->cmd[i] == '\0') {
            c->cmd[i] = ' ';
        }
    }
    c->cmd[n] = '\0';
    pp->cmdlen = (size_t)n;
    pp->cmd_rc = 0;
    return 0;
}

/* Entries of <root>/PID/fd: the count, NaN when it cannot be listed, or -1 when gone. */
static double count_fds(const struct proc_ctx *c, const struct proc_pid *pp)
{
    char path[32];
    DIR *d = NULL;
    const struct dirent *e = NULL;
    struct stat st;
    double n = 0.0;
    int fd = -1;

    snprintf(path, sizeof(path), "%s/fd", pp->name);
    fd = openat(dirfd(c->dir), path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT || errno == ESRCH ? -1.0 : NAN;
    }
    /* since Linux 6.2 the size of a procfs fd directory is the count: no listing needed
     * (0 on older kernels, and for a process without files, when listing is cheap) */
    if (c->procfs && fstat(fd, &st) == 0 && st.st_size > 0) {
        close(fd);
        return (double)st.st_size;
    }
    d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return NAN;
    }
    errno = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            n += 1.0;
        }
    }
    if (errno != 0) {
        n = errno == ENOENT || errno == ESRCH ? -1.0 : NAN;
    }
    closedir(d);
    return n;
}

/* The pid in a pid file (first line, decimal), or 0 with m->pf_why set. */
static void read_pidfile(struct proc_match *m)
{
    char buf[64];
    ssize_t n = 0;
    int fd = open(m->pidfile, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    long long v = 0;
    const char *q = buf;

    m->pf_pid = 0;
    m->pf_seen = 0;
    m->pf_why[0] = '\0';
    if (fd < 0) {
        snprintf(m->pf_why, sizeof(m->pf_why), "; pidfile %.100s: %s", m->pidfile,
                 wp_strerror(-errno));
        return;
    }
    do {
        n = read(fd, buf, sizeof(buf) - 1);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        snprintf(m->pf_why, sizeof(m->pf_why), "; pidfile %.100s: %s", m->pidfile,
                 wp_strerror(-errno));
        close(fd);
        return;
    }
    close(fd);
    buf[n] = '\0';
    q += strspn(q, " \t");
    while (*q >= '0' && *q <= '9' && v <= INT_MAX) {
        v = v * 10 + (*q - '0');
        q++;
    }
    q += strspn(q, " \t\r");
    if (v <= 0 || v > INT_MAX || (*q != '\n' && *q != '\0')) {
        snprintf(m->pf_why, sizeof(m->pf_why), "; pidfile %.100s: no pid in it", m->pidfile);
        return;
    }
    m->pf_pid = (int)v;
}

/* Seconds since boot from <root>/uptime, or NaN (logged once). */
static double read_uptime(struct wp_probe *p, struct proc_ctx *c)
{
    char buf[128];
    char *end = NULL;
    ssize_t n = read_rel(c, "uptime", buf, sizeof(buf));
    double up = NAN;

    if (n > 0) {
        up = strtod(buf, &end);
        if (end == buf || !(up >= 0.0)) {
            up = NAN;
        }
    }
    if (isnan(up) && !c->uptime_failing) {
        WP_PLOG(p, WP_LOG_WARN, "cannot read %s/uptime: %s", c->root,
                wp_strerror(n < 0 ? (int)n : WP_EPROTO));
        c->uptime_failing = 1;
    } else if (!isnan(up) && c->uptime_failing) {
        WP_PLOG(p, WP_LOG_INFO, "reading %s/uptime again", c->root);
        c->uptime_failing = 0;
    }
    return up;
}

/* ---- matching ---- */

/* 1 when pp satisfies every selector of m, 0 when not (or it could not be read). */
static int match_one(struct wp_probe *p, struct proc_ctx *c, struct proc_match *m,
                     struct proc_pid *pp)
{
    if (m->pidfile != NULL) {
        if (m->pf_pid != pp->pid) {
            return 0;
        }
        m->pf_seen = 1;
    }
    if (m->comm != NULL && (load_stat(c, pp) < 0 || strcmp(pp->comm, m->comm) != 0)) {
        return 0;
    }
    if (m->has_user && (load_uid(c, pp) < 0 || pp->euid != m->uid)) {
        return 0;
    }
    if (m->re != NULL) {
        if (load_cmdline(c, pp) < 0) {
            return 0;
        }
        int rc = pcre2_match(m->re, (PCRE2_SPTR)c->cmd, pp->cmdlen, 0, 0, c->md, c->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) {
            return 0;
        }
        if (rc < 0) {
            if (!m->re_failing) {
                PCRE2_UCHAR msg[128];
                if (pcre2_get_error_message(rc, msg, sizeof(msg)) < 0) {
                    snprintf((char *)msg, sizeof(msg), "error %d", rc);
                }
                WP_PLOG(p, WP_LOG_WARN,
                        "match %s: cmdline regex failed on pid %d: %s (counted "
                        "as no match)",
                        m->name, pp->pid, (const char *)msg);
                m->re_failing = 1;
            }
            return 0;
        }
    }
    return 1;
}

/* CPU ticks of pp since the previous sample (see the file comment), NaN when unknown. */
static double cpu_delta(struct wp_probe *p, struct proc_ctx *c, const struct proc_pid *pp)
{
    struct proc_tab *cur = &c->tab[c->cur];
    const struct proc_slot *old = tab_find(&c->tab[!c->cur], pp->pid);
    struct proc_slot s = {pp->pid, pp->start, pp->ticks};
    double d = NAN;

    if (tab_find(cur, pp->pid) == NULL) {
        if (cur->n < (size_t)c->max_pids) {
            tab_put(cur, &s);
        } else {
            c->overflow = 1;
            if (!c->overflow_logged) {
                WP_PLOG(p, WP_LOG_WARN,
                        "more than max_pids (%lld) matched processes: cpu_pct "
                        "is unknown for some matches",
                        (long long)c->max_pids);
                c->overflow_logged = 1;
            }
        }
    }
    if (!c->have_prev) {
        return NAN;
    }
    if (old != NULL && old->start == pp->start) {
        d = pp->ticks >= old->ticks ? (double)(pp->ticks - old->ticks) : 0.0;
    } else if ((double)pp->start >= c->prev_uptime * c->hz) {
        d = (double)pp->ticks; /* started since the previous sample */
    } else if (c->prev_overflow) {
        d = NAN; /* it may have been one we could not track */
    } else {
        d = 0.0; /* it ran before, but did not match then */
    }
    return d;
}

static void match_reset(struct proc_match *m)
{
    m->count = 0;
    m->cpu_ticks = 0.0;
    m->rss = 0.0;
    m->threads = 0.0;
    m->fds = 0.0;
    m->oldest = UINT64_MAX;
}

/* Look at one process: match it, and add it to every match it belongs to. */
static void scan_pid(struct wp_probe *p, struct proc_ctx *c, int pid)
{
    struct proc_pid pp;
    int any = 0;

    memset(&pp, 0, sizeof(pp));
    pp.pid = pid;
    snprintf(pp.name, sizeof(pp.name), "%d", pid);
    pp.stat_rc = 1;
    pp.uid_rc = 1;
    pp.cmd_rc = 1;
    for (size_t i = 0; i < c->match.n; i++) {
        struct proc_match *m = &c->match.v[i];
        m->hit = match_one(p, c, m, &pp);
        any |= m->hit;
    }
    if (!any || load_stat(c, &pp) < 0 || pp.state == 'Z' || pp.state == 'X') {
        return;
    }
    double fds = count_fds(c, &pp);
    if (fds < 0.0) {
        return; /* it exited while we looked */
    }
    double cpu = cpu_delta(p, c, &pp);
    for (size_t i = 0; i < c->match.n; i++) {
        struct proc_match *m = &c->match.v[i];
        if (!m->hit) {
            continue;
        }
        m->count++;
        m->cpu_ticks += cpu;
        m->rss += pp.rss;
        m->threads += pp.threads;
        m->fds += fds;
        if (pp.start < m->oldest) {
            m->oldest = pp.start;
        }
    }
}

/* Parse a readdir name as a pid; 0 when it is not one. */
static int pid_of(const char *s)
{
    long v = 0;
    const char *q = s;

    while (*q >= '0' && *q <= '9' && v <= INT_MAX) {
        v = v * 10 + (*q - '0');
        q++;
    }
    return (*q == '\0' && q != s && v > 0 && v <= INT_MAX) ? (int)v : 0;
}

static void emit(struct proc_ctx *c, struct proc_match *m, double uptime, double elapsed,
                 struct wp_sink *out)
{
    double v[6];
    char range[48];
    char text[512];
    int ok = (int64_t)m->count >= m->min && (m->max < 0 || (int64_t)m->count <= m->max);

    if (m->pf_pid != 0 && !m->pf_seen) {
        snprintf(m->pf_why, sizeof(m->pf_why), "; pidfile %.100s: pid %d is not running",
                 m->pidfile, m->pf_pid);
    }
    v[0] = (double)m->count;
    v[1] = elapsed > 0.0 ? m->cpu_ticks / c->hz / elapsed * 100.0 : NAN;
    v[2] = m->rss;
    v[3] = m->threads;
    v[4] = m->fds;
    v[5] = NAN;
    if (m->count > 0 && !isnan(uptime)) {
        double age = uptime - (double)m->oldest / c->hz;
        v[5] = age > 0.0 ? age : 0.0;
    }
    wp_sink_metric(out, &kind_proc, m->name, v);

    if (m->max < 0) {
        snprintf(range, sizeof(range), "at least %lld", (long long)m->min);
    } else {
        snprintf(range, sizeof(range), "%lld..%lld", (long long)m->min, (long long)m->max);
    }
    snprintf(text, sizeof(text), "PROCS %s: %llu process%s matching %s (expected %s%s)",
             ok ? "OK" : "CRITICAL", (unsigned long long)m->count, m->count == 1 ? "" : "es",
             m->name, range, m->pidfile != NULL ? m->pf_why : "");
    wp_sink_check(out, m->check, ok ? WP_CHECK_OK : WP_CHECK_CRITICAL, text);
}

/* ---- probe callbacks ---- */

static int proc_sample(struct wp_probe *p, struct wp_sink *out)
{
    struct proc_ctx *c = p->ctx;
    const struct dirent *d = NULL;
    double uptime = read_uptime(p, c);
    double elapsed = NAN;

    for (size_t i = 0; i < c->match.n; i++) {
        match_reset(&c->match.v[i]);
        if (c->match.v[i].pidfile != NULL) {
            read_pidfile(&c->match.v[i]);
        }
    }
    tab_reset(&c->tab[c->cur]);
    c->overflow = 0;

    rewinddir(c->dir);
    errno = 0;
    while ((d = readdir(c->dir)) != NULL) {
        int pid = pid_of(d->d_name);
        if (pid != 0) {
            scan_pid(p, c, pid);
        }
        errno = 0;
    }
    if (errno != 0) {
        int rc = -errno;
        char text[256];
        if (!c->list_failing) {
            WP_PLOG(p, WP_LOG_WARN, "cannot list %s: %s", c->root, wp_strerror(rc));
            c->list_failing = 1;
        }
        snprintf(text, sizeof(text), "PROCS UNKNOWN: cannot list %.100s: %s", c->root,
                 wp_strerror(rc));
        for (size_t i = 0; i < c->match.n; i++) {
            wp_sink_check(out, c->match.v[i].check, WP_CHECK_UNKNOWN, text);
        }
        c->have_prev = 0;
        return rc;
    }
    if (c->list_failing) {
        WP_PLOG(p, WP_LOG_INFO, "listing %s again", c->root);
        c->list_failing = 0;
    }

    if (c->have_prev && !isnan(uptime)) {
        elapsed = uptime - c->prev_uptime;
    }
    for (size_t i = 0; i < c->match.n; i++) {
        emit(c, &c->match.v[i], uptime, elapsed, out);
    }
    /* this sample's table becomes the previous one */
    c->have_prev = !isnan(uptime);
    c->prev_uptime = uptime;
    c->prev_overflow = c->overflow;
    c->cur = !c->cur;
    return 0;
}

static void proc_destroy(struct wp_probe *p)
{
    struct proc_ctx *c = p->ctx;

    if (c == NULL) {
        return;
    }
    if (c->dir != NULL) {
        closedir(c->dir);
        c->dir = NULL;
    }
    for (int i = 0; i < 2; i++) {
        free(c->tab[i].v);
        memset(&c->tab[i], 0, sizeof(c->tab[i]));
    }
    pcre2_match_data_free(c->md);
    c->md = NULL;
    pcre2_match_context_free(c->mctx);
    c->mctx = NULL;
    free(c->cmd);
    c->cmd = NULL;
}

static int proc_init(struct wp_probe *p)
{
    struct proc_ctx *c = p->ctx;
    char buf[128];
    ssize_t n = 0;
    long hz = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);

    if (c->root == NULL || c->root[0] == '\0') {
        WP_PLOG(p, WP_LOG_ERROR, "root must be set");
        return WP_ECONFIG;
    }
    c->hz = hz > 0 ? (double)hz : 100.0;
    c->page = page > 0 ? (double)page : 4096.0;
    c->dir = opendir(c->root);
    if (c->dir == NULL) {
        int rc = -errno;
        WP_PLOG(p, WP_LOG_ERROR, "cannot open %s: %s (check root)", c->root, wp_strerror(rc));
        return rc;
    }
    struct statfs sf;
    c->procfs = fstatfs(dirfd(c->dir), &sf) == 0 && sf.f_type == PROC_SUPER_MAGIC;
    n = read_rel(c, "uptime", buf, sizeof(buf));
    if (n <= 0) {
        WP_PLOG(p, WP_LOG_ERROR, "cannot read %s/uptime: %s (check root)", c->root,
                wp_strerror(n < 0 ? (int)n : WP_EPROTO));
        return n < 0 ? (int)n : WP_EPROTO;
    }
    c->md = pcre2_match_data_create(1, NULL);
    c->mctx = pcre2_match_context_create(NULL);
    if (c->md == NULL || c->mctx == NULL) {
        return -ENOMEM;
    }
    pcre2_set_match_limit(c->mctx, PROC_MATCH_LIMIT);
    c->cmd = wp_xmalloc(PROC_CMDLINE_MAX + 1);
    return 0;
}

const struct wp_probe_ops wp_probe_proc = {
    .name = "proc",
    .summary = "processes matched by name, command line, user or pid file: count, CPU, "
               "memory, threads, files, age, and an expected-count check",
    .opts = proc_opts,
    .ctx_size = sizeof(struct proc_ctx),
    .flags = WP_PROBE_BLOCKING,
    .init = proc_init,
    .sample = proc_sample,
    .start = NULL,
    .stop = NULL,
    .destroy = proc_destroy,
    .committed = NULL,
};
