/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The logtail probe: follows log files (paths or globs), joins multi-line records, matches
 * them against PCRE2 rules and sends each match as an event, with exact per-rule counters.
 *
 * Config (one probe instance = one set of files sharing encoding, multi-line and rules):
 *
 *   - kind: logtail
 *     name: oracle
 *     interval: 1s
 *     paths: ["/u01/app/oracle/diag/rdbms/ * / * /trace/alert_*.log"]   (glob(3), no blanks)
 *     cursor_file: /var/lib/watchpost/logtail-oracle.cursor            (required)
 *     preset: oracle_alert          # none | oracle_alert | tomcat | syslog
 *     start_at: end                 # end | beginning: files never seen before
 *     encoding: utf-8               # utf-8 | gb18030 (converted to UTF-8)
 *     start: "^\\d{4}-\\d{2}-\\d{2}T"   # multi-line: a line matching it starts a record
 *     multiline_timeout: 2s
 *     max_line: 8KiB                # longer lines / records are cut, field truncated=1
 *     max_events_per_min: 60        # per rule; 0 = no limit; counters stay exact
 *     optional: false               # true: no file yet is normal (shipped defaults): no
 *                                   # series, no cursor until one appears, read from 0
 *     rules:
 *       - {name: ora_600, pattern: "(?<code>ORA-00(600|7445))", severity: critical}
 *
 * Reading: every sample stats each path (globs re-expanded) and reads what was appended
 * since the last sample, at most max_read bytes and max_lines lines per file (the rest
 * next time). A changed (dev, inode) at the path (logrotate create, delete and re-create)
 * moves the open file to a draining list, read to EOF through its still-open fd (kept a
 * few seconds for late writers), and the new file is read from offset 0. A file smaller
 * than the offset, or whose first block (1 KiB, FNV-1a) changed, was truncated
 * (copytruncate): its unread tail is read from the rotated copy when one is found next
 * to it (same first block), then the file is read from 0.
 *
 * Cursor: after each sample the position of the first byte not yet sent (start of the
 * pending multi-line record or partial line) of every open file, with (dev, inode, first
 * block hash) and the counters, is serialised; committed(ts) writes the newest snapshot
 * sampled at or before ts to cursor_file (temp file, fsync, rename). A restart resumes a
 * file whose (dev, inode, hash) still match; a file rotated away while the agent was down
 * is found next to the path by (dev, inode) and drained first. Files at the first glob
 * expansion that the cursor does not know start at start_at; files seen later start at 0.
 *
 * Series (gauges, totals since the cursor file was created):
 *   logtail/<probe>/<rule>  matches events_sent events_held
 *   logfile/<path>          bytes_read lines cut_lines rotations  (of records sent)
 *
 * Events: src = the file, rule = the rule name, text = the record (valid UTF-8), fields =
 * the rule's named groups plus truncated=1 for a cut record. Held-back events are
 * announced once a minute per rule ("N more ... held back"). A file that cannot be opened
 * or looks binary gives one WARNING event (rule "logtail") until its state changes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <iconv.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "probe.h"
#include "wp/err.h"
#include "wp/mem.h"

#define LT_HASH_BLOCK    1024u
#define LT_CHUNK         (64u << 10)
#define LT_OLD_GRACE_MS  5000
#define LT_MAX_RULES     256
#define LT_MAX_SNAPS     4096
#define LT_RULE_NAME_MAX 64

enum { LT_START_END = 0, LT_START_BEGINNING = 1 };
enum { LT_ENC_UTF8 = 0, LT_ENC_GB18030 = 1 };
enum { LT_PRESET_NONE = 0, LT_PRESET_ORACLE, LT_PRESET_TOMCAT, LT_PRESET_SYSLOG };

/* One rule as written in the config. */
struct lt_rule_in {
    char *name;
    char *pattern;
    int severity;
    char *literal;
    int ignore_case;
};

struct lt_rules_in {
    struct lt_rule_in *v;
    size_t n;
};

/* A compiled rule and its counters. */
struct lt_rule {
    char *name;
    char *inst; /* "<probe>/<rule>" */
    unsigned sev;
    pcre2_code *re;
    pcre2_match_data *md;
    int jit;
    char *lit; /* required literal (prefilter), NULL when none */
    size_t litlen;
    int next_pair; /* next rule whose literal starts with the same two bytes, -1 at end */
    uint32_t nnames;
    char **names; /* named groups: names[i] is group nums[i] */
    uint32_t *nums;
    uint64_t matches, sent, held;
    int64_t win; /* rate-limit minute (ts_ms / 60000) */
    uint64_t win_sent;
    uint64_t win_held;
};

/* One open file (inode) being read. */
struct lt_stream {
    int fd; /* -1 when none */
    dev_t dev;
    ino_t ino;
    uint64_t off;      /* next byte to read */
    uint64_t line_off; /* start of the partial line in line (== off when none) */
    uint64_t hash;     /* FNV-1a of the first hash_len bytes */
    uint32_t hash_len;
    char *line; /* partial raw line (at most max_line bytes kept) */
    size_t line_len, line_cap;
    int line_cut; /* the partial line is longer than max_line */
    char *rec;    /* pending multi-line record (UTF-8, NUL-terminated) */
    size_t rec_len, rec_cap;
    int has_rec;
    int rec_cut;
    uint64_t rec_off;     /* file offset of the record's first line */
    uint64_t rec_end;     /* file offset after its last line */
    uint64_t rec_lines;   /* raw lines in it */
    uint64_t rec_cutn;    /* lines in it that were cut */
    int64_t last_data_ts; /* sink time of the last complete line */
    int64_t rot_ts;       /* draining: when it was rotated away */
    int binary;           /* looked binary: not read (reported) */
};

/* A path (literal or from a glob) and its streams. */
struct lt_file {
    char *path;
    char *inst;  /* path, cut to fit an instance name */
    int literal; /* from a path without glob characters: kept while absent */
    struct lt_stream cur;
    struct lt_stream *olds; /* rotated away, draining, oldest first */
    size_t nolds;
    int seen;     /* in this sample's expansion */
    int reported; /* an unreadable/binary event was sent for the current state */
    int missing;  /* the path did not exist at the last stat */
    uint64_t bytes_read, lines, cut_lines, rotations;
};

/* A cursor entry loaded from the cursor file. */
struct lt_centry {
    char kind; /* 'F' current, 'O' draining */
    uint64_t dev, ino, hash, off;
    uint32_t hash_len;
    uint64_t bytes_read, lines, cut_lines, rotations;
    char *path;
    int used;
};

struct lt_snap {
    int64_t ts;
    char *text;
};

struct logtail_ctx {
    /* options */
    struct wp_strlist paths;
    char *cursor_file;
    int start_at;
    int encoding;
    char *start;
    int64_t ml_timeout_ms;
    uint64_t max_line;
    uint64_t max_read;
    int64_t max_lines;
    int preset;
    struct lt_rules_in rules_in;
    int64_t max_events_per_min;
    int optional;

    /* state */
    struct wp_probe *p;
    int ready;
    struct lt_rule *rules;
    size_t nrules;
    uint8_t pairbits[8192]; /* bit (b0 << 8 | b1): some literal starts with b0 b1 */
    int16_t *pairhead;      /* 65536 entries: first rule index for a pair, -1 */
    uint8_t *cand;          /* per rule: the literal was found in this record */
    pcre2_code *start_re;
    pcre2_match_data *start_md;
    int start_jit;
    iconv_t cd;
    struct lt_file **files;
    size_t nfiles;
    struct lt_centry *cents;
    size_t ncents;
    int have_cursor; /* a cursor file was loaded */
    int sampled;     /* sample() ran at least once */
    int active;      /* optional: a file to follow has existed (series and cursor from then) */
    int idle_logged; /* optional: "idle until one appears" was logged */
    char *chunk;     /* read buffer, LT_CHUNK */
    char *conv;      /* decoded line, 4 * max_line + 8 */
    size_t conv_cap;
    char *val; /* field values scratch */
    size_t val_cap;
    struct lt_snap *snaps;
    size_t nsnaps;
    char *written; /* text last written to cursor_file */
    int write_failing;
    struct wp_sink *out; /* during sample() */
};

/* ---- options -------------------------------------------------------------------------------- */

static const char *const start_names[] = {"end", "beginning", NULL};
static const char *const enc_names[] = {"utf-8", "gb18030", "gbk", NULL};
static const char *const preset_names[] = {"none", "oracle_alert", "tomcat", "syslog", NULL};
static const char *const sev_names[] = {"info", "warning", "error", "critical", NULL};

static const struct wp_opt rule_opts[] = {
    {.name = "name",
     .type = WP_OPT_STR,
     .help = "rule name: letters, digits, '_', '-', '.'",
     .offset = offsetof(struct lt_rule_in, name),
     .required = 1},
    {.name = "pattern",
     .type = WP_OPT_STR,
     .help = "PCRE2 pattern searched in each record; named groups become event fields",
     .offset = offsetof(struct lt_rule_in, pattern),
     .required = 1},
    {.name = "severity",
     .type = WP_OPT_ENUM,
     .def = "warning",
     .help = "event severity",
     .offset = offsetof(struct lt_rule_in, severity),
     .enum_names = sev_names},
    {.name = "literal",
     .type = WP_OPT_STR,
     .help = "a string every match contains (prefilter); default: taken from the pattern",
     .offset = offsetof(struct lt_rule_in, literal)},
    {.name = "ignore_case",
     .type = WP_OPT_BOOL,
     .def = "false",
     .help = "match case-insensitively",
     .offset = offsetof(struct lt_rule_in, ignore_case)},
    WP_OPT_TABLE_END,
};

static void rules_in_free(void *field, const void *arg)
{
    struct lt_rules_in *ri = field;

    (void)arg;
    for (size_t i = 0; i < ri->n; i++) {
        wp_opts_free(rule_opts, &ri->v[i]);
    }
    free(ri->v);
    ri->v = NULL;
    ri->n = 0;
}

static int decode_rules(struct wp_conf_doc *doc, struct wp_conf_node *node, void *field,
                        const void *arg, struct wp_conf_err *err)
{
    struct lt_rules_in *ri = field;
    size_t n = 0;
    char label[32];

    (void)arg;
    rules_in_free(ri, NULL);
    if (!wp_conf_is_seq(node)) {
        return wp_conf_errorf(doc, node, err,
                              "rules: expected a list like [{name: x, pattern: \"ORA-\\d+\"}]");
    }
    n = wp_conf_seq_len(doc, node);
    if (n > LT_MAX_RULES) {
        return wp_conf_errorf(doc, node, err, "rules: at most %d rules", LT_MAX_RULES);
    }
    ri->v = wp_xcalloc(n + 1, sizeof(*ri->v));
    for (size_t i = 0; i < n; i++) {
        struct wp_conf_node *it = wp_conf_seq_at(doc, node, i);
        snprintf(label, sizeof(label), "rules[%zu]", i);
        if (!wp_conf_is_map(it)) {
            return wp_conf_errorf(doc, it, err, "%s: expected a mapping {name, pattern}", label);
        }
        ri->n = i + 1;
        int rc = wp_opts_apply(doc, it, rule_opts, &ri->v[i], label, err);
        if (rc < 0) {
            return rc;
        }
        if (!wp_probe_name_ok(ri->v[i].name, LT_RULE_NAME_MAX)) {
            return wp_conf_errorf(doc, wp_conf_map_get(doc, it, "name"), err,
                                  "%s.name: expected 1 to %d letters, digits, '_', '-' or '.'",
                                  label, LT_RULE_NAME_MAX);
        }
    }
    return 0;
}

static const struct wp_opt logtail_opts[] = {
    {.name = "paths",
     .type = WP_OPT_STRLIST,
     .help = "files to follow: paths or glob(3) patterns, re-expanded every sample",
     .offset = offsetof(struct logtail_ctx, paths),
     .required = 1},
    {.name = "cursor_file",
     .type = WP_OPT_STR,
     .help = "where read positions and counters persist (e.g. <state_dir>/logtail-NAME.cursor)",
     .offset = offsetof(struct logtail_ctx, cursor_file),
     .required = 1},
    {.name = "start_at",
     .type = WP_OPT_ENUM,
     .def = "end",
     .help = "where to start files the cursor does not know at the first sample",
     .offset = offsetof(struct logtail_ctx, start_at),
     .enum_names = start_names},
    {.name = "encoding",
     .type = WP_OPT_ENUM,
     .def = "utf-8",
     .help = "file encoding; gb18030 (and GBK) is converted to UTF-8",
     .offset = offsetof(struct logtail_ctx, encoding),
     .enum_names = enc_names},
    {.name = "start",
     .type = WP_OPT_STR,
     .help = "multi-line: a line matching this PCRE2 pattern starts a record",
     .offset = offsetof(struct logtail_ctx, start)},
    {.name = "multiline_timeout",
     .type = WP_OPT_DURATION,
     .def = "2s",
     .help = "send a pending multi-line record after this long without new lines",
     .offset = offsetof(struct logtail_ctx, ml_timeout_ms),
     .min = 0,
     .max = 3600000},
    {.name = "max_line",
     .type = WP_OPT_SIZE,
     .def = "8KiB",
     .help = "longest line or record; longer ones are cut and flagged truncated=1",
     .offset = offsetof(struct logtail_ctx, max_line),
     .min = 256,
     .max = 65535},
    {.name = "max_read",
     .type = WP_OPT_SIZE,
     .def = "8MiB",
     .help = "bytes read per file per sample (the rest next time)",
     .offset = offsetof(struct logtail_ctx, max_read),
     .min = 4096,
     .max = (int64_t)1 << 40},
    {.name = "max_lines",
     .type = WP_OPT_INT,
     .def = "100000",
     .help = "lines read per file per sample (the rest next time)",
     .offset = offsetof(struct logtail_ctx, max_lines),
     .min = 1,
     .max = (int64_t)1 << 40},
    {.name = "preset",
     .type = WP_OPT_ENUM,
     .def = "none",
     .help = "built-in rules (and start pattern): oracle_alert, tomcat, syslog",
     .offset = offsetof(struct logtail_ctx, preset),
     .enum_names = preset_names},
    {.name = "rules",
     .type = WP_OPT_CUSTOM,
     .help = "[{name, pattern, severity, literal, ignore_case}]",
     .offset = offsetof(struct logtail_ctx, rules_in),
     .custom = decode_rules,
     .custom_free = rules_in_free},
    {.name = "max_events_per_min",
     .type = WP_OPT_INT,
     .def = "60",
     .help = "events per rule per minute (0 = no limit); matches are counted regardless",
     .offset = offsetof(struct logtail_ctx, max_events_per_min),
     .min = 0,
     .max = 1000000},
    {.name = "optional",
     .type = WP_OPT_BOOL,
     .def = "false",
     .help = "the files may not exist: no series and no cursor until one appears",
     .offset = offsetof(struct logtail_ctx, optional)},
    WP_OPT_TABLE_END,
};

/* ---- presets -------------------------------------------------------------------------------- */

struct lt_preset_rule {
    const char *name, *pattern, *literal;
    unsigned sev;
};

static const char ORACLE_START[] =
    "^(?:\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}|(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) "
    "(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \\d]\\d \\d{2}:\\d{2}:\\d{2} \\d{4})";
static const struct lt_preset_rule oracle_rules[] = {
    {"ora_internal", "(?<code>ORA-(?:00600|07445))[^\\n\\[]*(?:\\[(?<arg>[^\\]\\n]*)\\])?", "ORA-0",
     WP_SEV_CRITICAL},
    {"ora_tablespace",
     "(?<code>ORA-016(?:53|54|88))(?:[^\\n]*? in tablespace (?<tablespace>[A-Za-z0-9_$#]+))?",
     "ORA-016", WP_SEV_ERROR},
    {"ora_eof", "(?<code>ORA-03113)", "ORA-03113", WP_SEV_ERROR},
    {"ora_checkpoint", "Checkpoint not complete", "Checkpoint not complete", WP_SEV_WARNING},
    {NULL, NULL, NULL, 0},
};

static const char TOMCAT_START[] =
    "^(?:\\d{2}-[A-Z][a-z]{2}-\\d{4} \\d{2}:\\d{2}:\\d{2}|\\d{4}-\\d{2}-\\d{2}[ T]\\d{2}:\\d{2}:"
    "\\d{2}|[A-Z][a-z]{2} \\d{1,2}, \\d{4} \\d{1,2}:\\d{2}:\\d{2} [AP]M)";
static const struct lt_preset_rule tomcat_rules[] = {
    {"tomcat_severe", "\\bSEVERE\\b(?::| \\[(?<thread>[^\\]\\n]+)\\] (?<logger>\\S+))?", "SEVERE",
     WP_SEV_ERROR},
    {"tomcat_oom", "java\\.lang\\.OutOfMemoryError(?:: (?<what>[^\\n]+))?", "OutOfMemoryError",
     WP_SEV_CRITICAL},
    {NULL, NULL, NULL, 0},
};

static const struct lt_preset_rule syslog_rules[] = {
    {"syslog_oom", "Out of memory: Killed process (?<pid>\\d+) \\((?<comm>[^)\\n]+)\\)",
     "Out of memory", WP_SEV_CRITICAL},
    {"syslog_segfault", "(?<comm>[^\\s\\[]+)\\[(?<pid>\\d+)\\]: segfault at", "segfault at",
     WP_SEV_ERROR},
    {"syslog_io_error", "I/O error(?:[^\\n]{0,40}?dev (?<dev>[a-z0-9]+))?", "I/O error",
     WP_SEV_ERROR},
    {"syslog_fs_readonly", "Remounting filesystem read-only", "Remounting filesystem",
     WP_SEV_CRITICAL},
    {"syslog_auth_fail", "Failed password for (?:invalid user )?(?<user>\\S+) from (?<ip>\\S+)",
     "Failed password for ", WP_SEV_WARNING},
    {NULL, NULL, NULL, 0},
};

/* ---- small helpers -------------------------------------------------------------------------- */

static uint64_t fnv1a(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = 1469598103934665603ull;

    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void stream_reset(struct lt_stream *s)
{
    free(s->line);
    free(s->rec);
    memset(s, 0, sizeof(*s));
    s->fd = -1;
}

static void stream_close(struct lt_stream *s)
{
    if (s->fd >= 0) {
        close(s->fd);
    }
    stream_reset(s);
}

/* Read up to LT_HASH_BLOCK bytes at offset 0 of fd into buf; bytes read or -errno. */
static ssize_t read_head(int fd, char *buf)
{
    ssize_t n = 0;

    for (;;) {
        n = pread(fd, buf, LT_HASH_BLOCK, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        break;
    }
    return n < 0 ? -errno : n;
}

/* Does the head look binary: over 10 % control bytes after any leading NULs (a hole left
 * by a copytruncate race is not binary)? */
static int looks_binary(const char *b, size_t n)
{
    size_t i = 0, ctl = 0;

    while (i < n && b[i] == '\0') {
        i++;
    }
    if (i == n) {
        return 0;
    }
    size_t total = n - i;
    for (; i < n; i++) {
        unsigned char c = (unsigned char)b[i];
        if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v' &&
             c != 0x1b) ||
            c == 0x7f) {
            ctl++;
        }
    }
    return ctl * 10 > total;
}

/* Is the stream's first block unchanged? Extends the hash while the file is shorter than a
 * block. Returns 1 same, 0 changed, <0 -errno. */
static int head_check(struct lt_stream *s, char *buf)
{
    ssize_t n = read_head(s->fd, buf);

    if (n < 0) {
        return (int)n;
    }
    if ((size_t)n < s->hash_len || fnv1a(buf, s->hash_len) != s->hash) {
        return 0;
    }
    if ((size_t)n > s->hash_len) {
        s->hash_len = (uint32_t)n;
        s->hash = fnv1a(buf, (size_t)n);
    }
    return 1;
}

/* ---- rules ---------------------------------------------------------------------------------- */

/*
 * A literal every match of pattern must contain, or NULL: the longest run of plain
 * characters outside optional or alternated parts. Conservative: anything unusual (inline
 * flags, \Q, a top-level '|') gives none. Free the result.
 */
static char *extract_literal(const char *pat)
{
    size_t n = strlen(pat);
    size_t best_s = 0, best_n = 0;
    size_t run_s = 0, run_n = 0;
    size_t gstack[64];
    int depth = 0;
    /* candidate runs: (start, len, position in pattern) */
    struct {
        size_t s, n, pos;
    } cands[128];
    size_t ncand = 0;
    char *lit = NULL;

#define LT_END_RUN()                     \
    do {                                 \
        if (run_n >= 2 && ncand < 128) { \
            cands[ncand].s = run_s;      \
            cands[ncand].n = run_n;      \
            cands[ncand].pos = run_s;    \
            ncand++;                     \
        }                                \
        run_n = 0;                       \
    } while (0)

    for (size_t i = 0; i < n; i++) {
        char c = pat[i];
        if (c == '\\') {
            LT_END_RUN();
            i++;
            if (i >= n) {
                return NULL;
            }
            char e = pat[i];
            if (e == 'Q' || e == 'E') {
                return NULL;
            }
            if (e == 'x' || e == 'o' || e == 'p' || e == 'P' || e == 'N' || e == 'g' || e == 'k') {
                if (i + 1 < n && (pat[i + 1] == '{' || pat[i + 1] == '<')) {
                    char close = pat[i + 1] == '{' ? '}' : '>';
                    while (i < n && pat[i] != close) {
                        i++;
                    }
                } else if (e == 'x') {
                    for (int k = 0;
                         k < 2 && i + 1 < n && strchr("0123456789abcdefABCDEF", pat[i + 1]) != NULL;
                         k++) {
                        i++;
                    }
                } else {
                    i++;
                }
            } else if (e == 'c') {
                i++;
            } else if (e >= '0' && e <= '9') {
                while (i + 1 < n && pat[i + 1] >= '0' && pat[i + 1] <= '9') {
                    i++;
                }
            }
            continue;
        }
        if (c == '[') {
            LT_END_RUN();
            i++;
            if (i < n && pat[i] == '^') {
                i++;
            }
            if (i < n && pat[i] == ']') {
                i++;
            }
            while (i < n && pat[i] != ']') {
                if (pat[i] == '\\') {
                    i++;
                }
                i++;
            }
            continue;
        }
        if (c == '(') {
            LT_END_RUN();
            if (i + 1 < n && pat[i + 1] == '?') {
                char k = i + 2 < n ? pat[i + 2] : '\0';
                if (k != ':' && k != '<' && k != 'P' && k != '=') {
                    return NULL; /* inline flags, lookbehind, negative lookahead, ... */
                }
                if (k == '<' && i + 3 < n && (pat[i + 3] == '=' || pat[i + 3] == '!')) {
                    return NULL;
                }
                /* skip the group's header up to the name's end */
                if (k == '<' || k == 'P') {
                    while (i < n && pat[i] != '>') {
                        i++;
                    }
                } else {
                    i += 2;
                }
            }
            if (depth >= 64) {
                return NULL;
            }
            gstack[depth++] = i;
            continue;
        }
        if (c == ')') {
            LT_END_RUN();
            if (depth == 0) {
                return NULL;
            }
            size_t open = gstack[--depth];
            char q = i + 1 < n ? pat[i + 1] : '\0';
            if (q == '?' || q == '*' || q == '{') {
                while (ncand > 0 && cands[ncand - 1].pos > open) {
                    ncand--; /* the group is optional */
                }
            }
            continue;
        }
        if (c == '|') {
            LT_END_RUN();
            if (depth == 0) {
                return NULL;
            }
            size_t open = gstack[depth - 1];
            while (ncand > 0 && cands[ncand - 1].pos > open) {
                ncand--;
            }
            /* runs in later alternatives are not required either: mark the group dead */
            gstack[depth - 1] = open;
            /* simplest: skip to this group's close while tracking nesting */
            int d = 0;
            i++;
            while (i < n) {
                if (pat[i] == '\\') {
                    i += 2;
                    continue;
                }
                if (pat[i] == '[') {
                    i++;
                    while (i < n && pat[i] != ']') {
                        i += pat[i] == '\\' ? 2 : 1;
                    }
                } else if (pat[i] == '(') {
                    d++;
                } else if (pat[i] == ')') {
                    if (d == 0) {
                        break;
                    }
                    d--;
                }
                i++;
            }
            i--; /* the loop's ')' handling pops the group */
            continue;
        }
        if (c == '?' || c == '*' || c == '{') {
            if (run_n > 0) {
                run_n--; /* the previous character is optional */
            }
            LT_END_RUN();
            if (c == '{') {
                while (i < n && pat[i] != '}') {
                    i++;
                }
            }
            continue;
        }
        if (c == '+') {
            LT_END_RUN();
            continue;
        }
        if (c == '.' || c == '^' || c == '$') {
            LT_END_RUN();
            continue;
        }
        if (run_n == 0) {
            run_s = i;
        }
        run_n++;
    }
    LT_END_RUN();
#undef LT_END_RUN
    for (size_t k = 0; k < ncand; k++) {
        if (cands[k].n > best_n) {
            best_n = cands[k].n;
            best_s = cands[k].s;
        }
    }
    if (best_n >= 2) {
        lit = wp_xstrndup(pat + best_s, best_n);
    }
    return lit;
}

static int compile_re(struct wp_probe *p, const char *what, const char *pat, uint32_t flags,
                      pcre2_code **re, int *jit)
{
    int ec = 0;
    PCRE2_SIZE eo = 0;
    PCRE2_UCHAR msg[256];

    *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | flags, &ec, &eo, NULL);
    if (*re == NULL) {
        pcre2_get_error_message(ec, msg, sizeof(msg));
        WP_PLOG(p, WP_LOG_ERROR, "%s: bad pattern \"%s\" at offset %zu: %s", what, pat, (size_t)eo,
                (const char *)msg);
        return WP_ECONFIG;
    }
    *jit = pcre2_jit_compile(*re, PCRE2_JIT_COMPLETE) == 0;
    return 0;
}

static int add_rule(struct logtail_ctx *c, const char *name, const char *pattern,
                    const char *literal, unsigned sev, int ignore_case)
{
    struct lt_rule *r = NULL;
    uint32_t count = 0, esize = 0;
    PCRE2_SPTR table = NULL;
    char what[96];

    for (size_t i = 0; i < c->nrules; i++) {
        if (strcmp(c->rules[i].name, name) == 0) {
            WP_PLOG(c->p, WP_LOG_ERROR, "rule %s: defined twice", name);
            return WP_ECONFIG;
        }
    }
    if (c->nrules >= LT_MAX_RULES) {
        WP_PLOG(c->p, WP_LOG_ERROR, "at most %d rules", LT_MAX_RULES);
        return WP_ECONFIG;
    }
    r = &c->rules[c->nrules];
    memset(r, 0, sizeof(*r));
    snprintf(what, sizeof(what), "rule %s", name);
    if (compile_re(c->p, what, pattern, ignore_case ? PCRE2_CASELESS : 0, &r->re, &r->jit) < 0) {
        return WP_ECONFIG;
    }
    c->nrules++;
    r->name = wp_xstrdup(name);
    r->inst = wp_xasprintf("%s/%s", c->p->instance, name);
    r->sev = sev;
    r->md = pcre2_match_data_create_from_pattern(r->re, NULL);
    r->next_pair = -1;
    r->win = -1;
    if (!ignore_case) {
        r->lit = literal != NULL ? wp_xstrdup(literal) : extract_literal(pattern);
        if (r->lit != NULL) {
            r->litlen = strlen(r->lit);
            if (r->litlen < 2) {
                free(r->lit);
                r->lit = NULL;
                r->litlen = 0;
            }
        }
    }
    pcre2_pattern_info(r->re, PCRE2_INFO_NAMECOUNT, &count);
    pcre2_pattern_info(r->re, PCRE2_INFO_NAMEENTRYSIZE, &esize);
    pcre2_pattern_info(r->re, PCRE2_INFO_NAMETABLE, &table);
    if (count > WP_EVENT_MAX_FIELDS - 1) {
        count = WP_EVENT_MAX_FIELDS - 1; /* room for truncated */
    }
    r->nnames = count;
    r->names = wp_xcalloc(count + 1, sizeof(*r->names));
    r->nums = wp_xcalloc(count + 1, sizeof(*r->nums));
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *e = table + (size_t)i * esize;
        r->nums[i] = (uint32_t)(e[0] << 8 | e[1]);
        r->names[i] = wp_xstrdup((const char *)e + 2);
    }
    return 0;
}

static int add_preset(struct logtail_ctx *c, const struct lt_preset_rule *pr)
{
    for (; pr->name != NULL; pr++) {
        int rc = add_rule(c, pr->name, pr->pattern, pr->literal, pr->sev, 0);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

static void build_prefilter(struct logtail_ctx *c)
{
    memset(c->pairbits, 0, sizeof(c->pairbits));
    c->pairhead = wp_xmalloc(65536 * sizeof(*c->pairhead));
    for (size_t i = 0; i < 65536; i++) {
        c->pairhead[i] = -1;
    }
    for (size_t i = c->nrules; i > 0; i--) {
        struct lt_rule *r = &c->rules[i - 1];
        if (r->lit == NULL) {
            continue;
        }
        unsigned k = (unsigned)(uint8_t)r->lit[0] << 8 | (uint8_t)r->lit[1];
        c->pairbits[k >> 3] |= (uint8_t)(1u << (k & 7));
        r->next_pair = c->pairhead[k];
        c->pairhead[k] = (int16_t)(i - 1);
    }
    c->cand = wp_xcalloc(c->nrules + 1, 1);
}

/* ---- events and matching -------------------------------------------------------------------- */

static void file_event(struct logtail_ctx *c, struct lt_file *f, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void file_event(struct logtail_ctx *c, struct lt_file *f, const char *fmt, ...)
{
    char text[1024];
    va_list ap;

    if (f->reported) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    WP_PLOG(c->p, WP_LOG_WARN, "%s", text);
    wp_sink_event(c->out, f->path, "logtail", WP_SEV_WARNING, text, NULL);
    f->reported = 1;
}

/* Rate limit: may rule r send one more event at ts? Rolls the minute window over. */
static int rate_ok(struct logtail_ctx *c, struct lt_rule *r, int64_t ts)
{
    int64_t w = ts / 60000;

    if (w != r->win) {
        r->win = w;
        r->win_sent = 0;
    }
    if (c->max_events_per_min > 0 && r->win_sent >= (uint64_t)c->max_events_per_min) {
        return 0;
    }
    r->win_sent++;
    return 1;
}

/* Announce held-back events of rules whose minute has passed. */
static void held_notes(struct logtail_ctx *c, int64_t ts)
{
    char text[256];
    char num[24];
    const char *fields[3];

    for (size_t i = 0; i < c->nrules; i++) {
        struct lt_rule *r = &c->rules[i];
        if (r->win_held == 0 || r->win == ts / 60000) {
            continue;
        }
        snprintf(text, sizeof(text),
                 "logtail: %" PRIu64 " more matches of rule %s held back (max %" PRId64
                 " events per minute)",
                 r->win_held, r->name, c->max_events_per_min);
        snprintf(num, sizeof(num), "%" PRIu64, r->win_held);
        fields[0] = "held";
        fields[1] = num;
        fields[2] = NULL;
        wp_sink_event(c->out, c->p->instance, r->name, r->sev, text, fields);
        r->win_held = 0;
    }
}

static void emit_match(struct logtail_ctx *c, struct lt_file *f, struct lt_rule *r,
                       const char *text, int cut)
{
    const char *fields[2 * WP_EVENT_MAX_FIELDS + 1];
    size_t nf = 0, need = 0;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
    uint32_t npairs = pcre2_get_ovector_count(r->md);

    if (!rate_ok(c, r, c->out->ts_ms)) {
        r->held++;
        r->win_held++;
        return;
    }
    for (uint32_t i = 0; i < r->nnames; i++) {
        uint32_t g = r->nums[i];
        if (g < npairs && ov[2 * g] != PCRE2_UNSET) {
            need += ov[2 * g + 1] - ov[2 * g] + 1;
        }
    }
    if (need > c->val_cap) {
        c->val_cap = need + 256;
        c->val = wp_xrealloc(c->val, c->val_cap);
    }
    size_t at = 0;
    for (uint32_t i = 0; i < r->nnames; i++) {
        uint32_t g = r->nums[i];
        if (g >= npairs || ov[2 * g] == PCRE2_UNSET) {
            continue;
        }
        size_t len = ov[2 * g + 1] - ov[2 * g];
        memcpy(c->val + at, text + ov[2 * g], len);
        c->val[at + len] = '\0';
        fields[nf++] = r->names[i];
        fields[nf++] = c->val + at;
        at += len + 1;
    }
    if (cut) {
        fields[nf++] = "truncated";
        fields[nf++] = "1";
    }
    fields[nf] = NULL;
    wp_sink_event(c->out, f->path, r->name, r->sev, text, nf > 0 ? fields : NULL);
    r->sent++;
}

/* Run every rule over one record (valid UTF-8, NUL-terminated). */
static void match_record(struct logtail_ctx *c, struct lt_file *f, const char *text, size_t len,
                         int cut)
{
    const uint8_t *t = (const uint8_t *)text;

    if (c->nrules == 0) {
        return;
    }
    memset(c->cand, 0, c->nrules);
    /* one pass over the record finds every rule whose literal occurs */
    for (size_t i = 0; i + 1 < len; i++) {
        unsigned k = (unsigned)t[i] << 8 | t[i + 1];
        if ((c->pairbits[k >> 3] & (1u << (k & 7))) == 0) {
            continue;
        }
        for (int ri = c->pairhead[k]; ri >= 0; ri = c->rules[ri].next_pair) {
            struct lt_rule *r = &c->rules[ri];
            if (!c->cand[ri] && r->litlen <= len - i && memcmp(t + i, r->lit, r->litlen) == 0) {
                c->cand[ri] = 1;
            }
        }
    }
    for (size_t i = 0; i < c->nrules; i++) {
        struct lt_rule *r = &c->rules[i];
        int rc = 0;
        if (r->lit != NULL && !c->cand[i]) {
            continue;
        }
        if (r->jit) {
            rc = pcre2_jit_match(r->re, t, len, 0, 0, r->md, NULL);
        } else {
            rc = pcre2_match(r->re, t, len, 0, PCRE2_NO_UTF_CHECK, r->md, NULL);
        }
        if (rc < 0) {
            continue;
        }
        r->matches++;
        emit_match(c, f, r, text, cut);
    }
}

/* ---- decoding ------------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t utf8_seq(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];

    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
    }
    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80) {
            return 0;
        }
        if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f)) {
            return 0; /* overlong, surrogate */
        }
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80) {
            return 0;
        }
        if ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f)) {
            return 0;
        }
        return 4;
    }
    return 0;
}

/* Plain ASCII without NUL: no copy needed. */
static int plain_ascii(const char *s, size_t n)
{
    size_t i = 0;
    const uint64_t hi = 0x8080808080808080ull, lo = 0x0101010101010101ull;

    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, s + i, 8);
        if (((v & hi) | ((v - lo) & ~v & hi)) != 0) {
            return 0;
        }
    }
    for (; i < n; i++) {
        if ((unsigned char)s[i] - 1u >= 0x7fu) {
            return 0;
        }
    }
    return 1;
}

static void conv_reserve(struct logtail_ctx *c, size_t n)
{
    if (n > c->conv_cap) {
        c->conv_cap = n + 64;
        c->conv = wp_xrealloc(c->conv, c->conv_cap);
    }
}

/* Copy s into c->conv as valid UTF-8: invalid bytes become U+FFFD, NULs are dropped. */
static size_t sanitize_utf8(struct logtail_ctx *c, const char *s, size_t n)
{
    const uint8_t *u = (const uint8_t *)s;
    size_t o = 0;

    conv_reserve(c, 3 * n + 1);
    for (size_t i = 0; i < n;) {
        if (u[i] == 0) {
            i++;
            continue;
        }
        size_t k = utf8_seq(u + i, n - i);
        if (k == 0) {
            memcpy(c->conv + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
            continue;
        }
        memcpy(c->conv + o, u + i, k);
        o += k;
        i += k;
    }
    c->conv[o] = '\0';
    return o;
}

/* GB18030 (a superset of GBK and GB2312) to UTF-8 in c->conv. */
static size_t gb18030_to_utf8(struct logtail_ctx *c, const char *s, size_t n)
{
    char *in = (char *)(uintptr_t)s; /* iconv's prototype is not const-correct */
    size_t inleft = n;
    size_t o = 0;

    conv_reserve(c, 4 * n + 4);
    iconv(c->cd, NULL, NULL, NULL, NULL);
    while (inleft > 0) {
        char *outp = c->conv + o;
        size_t outleft = c->conv_cap - 1 - o;
        size_t r = iconv(c->cd, &in, &inleft, &outp, &outleft);
        o = (size_t)(outp - c->conv);
        if (r != (size_t)-1) {
            break;
        }
        if (errno == E2BIG) {
            break; /* cannot happen: 4 bytes out per byte in is enough */
        }
        /* EILSEQ or EINVAL (cut sequence): one replacement character, skip one byte */
        memcpy(c->conv + o, "\xef\xbf\xbd", 3);
        o += 3;
        in++;
        inleft--;
        iconv(c->cd, NULL, NULL, NULL, NULL);
    }
    /* drop NULs */
    size_t w = 0;
    for (size_t i = 0; i < o; i++) {
        if (c->conv[i] != '\0') {
            c->conv[w++] = c->conv[i];
        }
    }
    c->conv[w] = '\0';
    return w;
}

/* The length of s cut to at most max bytes on a UTF-8 character boundary. */
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max) {
        return len;
    }
    while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80) {
        max--;
    }
    return max;
}

/* ---- records -------------------------------------------------------------------------------- */

static void rec_flush(struct logtail_ctx *c, struct lt_file *f, struct lt_stream *s)
{
    if (!s->has_rec) {
        return;
    }
    match_record(c, f, s->rec, s->rec_len, s->rec_cut);
    f->lines += s->rec_lines;
    f->cut_lines += s->rec_cutn;
    f->bytes_read += s->rec_end - s->rec_off;
    s->has_rec = 0;
    s->rec_len = 0;
    s->rec_cut = 0;
    s->rec_lines = 0;
    s->rec_cutn = 0;
}

static void rec_append(struct logtail_ctx *c, struct lt_stream *s, const char *t, size_t n, int sep)
{
    size_t max = (size_t)c->max_line;
    size_t room = max > s->rec_len ? max - s->rec_len : 0;

    if (s->rec_cap < max + 1) {
        s->rec_cap = max + 1;
        s->rec = wp_xrealloc(s->rec, s->rec_cap);
    }
    if (sep) {
        if (room == 0) {
            s->rec_cut = 1;
            return;
        }
        s->rec[s->rec_len++] = '\n';
        room--;
    }
    if (n > room) {
        n = utf8_cut(t, n, room);
        s->rec_cut = 1;
    }
    memcpy(s->rec + s->rec_len, t, n);
    s->rec_len += n;
    s->rec[s->rec_len] = '\0';
}

/* One complete raw line [start, end) of stream s (end: the offset after its newline). */
static void handle_line(struct logtail_ctx *c, struct lt_file *f, struct lt_stream *s,
                        const char *raw, size_t n, int cut, uint64_t start, uint64_t end)
{
    const char *t = raw;
    size_t len = n;

    if (len > 0 && raw[len - 1] == '\r') {
        len--;
    }
    if (c->encoding != LT_ENC_UTF8) {
        len = gb18030_to_utf8(c, raw, len);
        t = c->conv;
    } else if (!plain_ascii(raw, len)) {
        len = sanitize_utf8(c, raw, len);
        t = c->conv;
    }
    if (len > c->max_line) {
        len = utf8_cut(t, len, (size_t)c->max_line);
        cut = 1;
    }
    if (c->start_re == NULL) {
        /* one line, one record: match in place when it needs no copy */
        char *tmp = NULL;
        if (t == raw) {
            conv_reserve(c, len + 1);
            memcpy(c->conv, raw, len);
            t = c->conv;
        }
        tmp = (char *)(uintptr_t)t;
        tmp[len] = '\0';
        match_record(c, f, t, len, cut);
        f->lines++;
        f->cut_lines += cut != 0;
        f->bytes_read += end - start;
        return;
    }
    int is_start = 0;
    if (c->start_jit) {
        is_start = pcre2_jit_match(c->start_re, (PCRE2_SPTR)t, len, 0, 0, c->start_md, NULL) >= 0;
    } else {
        is_start = pcre2_match(c->start_re, (PCRE2_SPTR)t, len, 0, PCRE2_NO_UTF_CHECK, c->start_md,
                               NULL) >= 0;
    }
    if (is_start || !s->has_rec) {
        rec_flush(c, f, s);
        s->has_rec = 1;
        s->rec_off = start;
        s->rec_len = 0;
        rec_append(c, s, t, len, 0);
    } else {
        rec_append(c, s, t, len, 1);
    }
    s->rec_cut |= cut;
    s->rec_end = end;
    s->rec_lines++;
    s->rec_cutn += cut != 0;
}

/* Split buf (n bytes read at s->off) into lines; stops after *lines_left lines. Returns the
 * bytes consumed. */
static size_t feed(struct logtail_ctx *c, struct lt_file *f, struct lt_stream *s, const char *buf,
                   size_t n, int64_t *lines_left)
{
    size_t i = 0;
    size_t max = (size_t)c->max_line;

    while (i<n && * lines_left> 0) {
        const char *nl = memchr(buf + i, '\n', n - i);
        size_t seg = nl != NULL ? (size_t)(nl - (buf + i)) : n - i;
        if (nl == NULL || s->line_len > 0 || s->line_cut) {
            /* keep at most max bytes (+1 for a '\r') of a line */
            size_t room = max + 1 > s->line_len ? max + 1 - s->line_len : 0;
            size_t take = seg < room ? seg : room;
            if (s->line_cap < max + 2) {
                s->line_cap = max + 2;
                s->line = wp_xrealloc(s->line, s->line_cap);
            }
            memcpy(s->line + s->line_len, buf + i, take);
            s->line_len += take;
            if (take < seg) {
                s->line_cut = 1;
            }
        }
        if (nl == NULL) {
            i = n;
            break;
        }
        uint64_t end = s->off + i + seg + 1;
        if (s->line_len > 0 || s->line_cut) {
            int cut = s->line_cut;
            size_t len = s->line_len;
            if (len > max && !(len == max + 1 && s->line[max] == '\r')) {
                len = max;
                cut = 1;
            }
            handle_line(c, f, s, s->line, len, cut, s->line_off, end);
            s->line_len = 0;
            s->line_cut = 0;
        } else if (seg > max + 1) {
            handle_line(c, f, s, buf + i, max, 1, s->line_off, end);
        } else {
            handle_line(c, f, s, buf + i, seg, 0, s->line_off, end);
        }
        s->line_off = end;
        i += seg + 1;
        (*lines_left)--;
    }
    return i;
}

/* Read what stream s has after s->off, within the budgets. Returns 1 at EOF, 0 when a budget
 * ran out, <0 -errno. */
static int stream_read(struct logtail_ctx *c, struct lt_file *f, struct lt_stream *s,
                       uint64_t *bytes_left, int64_t *lines_left, int64_t ts)
{
    while (*bytes_left > 0 && *lines_left > 0) {
        size_t want = *bytes_left < LT_CHUNK ? (size_t)*bytes_left : LT_CHUNK;
        ssize_t n = pread(s->fd, c->chunk, want, (off_t)s->off);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (n == 0) {
            return 1;
        }
        size_t used = feed(c, f, s, c->chunk, (size_t)n, lines_left);
        s->off += used;
        *bytes_left -= used < *bytes_left ? used : *bytes_left;
        s->last_data_ts = ts;
        if (used < (size_t)n) {
            return 0;
        }
    }
    return 0;
}

/* Flush a pending multi-line record that has waited long enough. */
static void maybe_timeout(struct logtail_ctx *c, struct lt_file *f, struct lt_stream *s, int64_t ts)
{
    if (s->has_rec && ts - s->last_data_ts >= c->ml_timeout_ms) {
        rec_flush(c, f, s);
    }
}

/* ---- files ---------------------------------------------------------------------------------- */

static void file_free(struct lt_file *f)
{
    if (f == NULL) {
        return;
    }
    stream_close(&f->cur);
    for (size_t i = 0; i < f->nolds; i++) {
        stream_close(&f->olds[i]);
    }
    free(f->olds);
    free(f->path);
    free(f->inst);
    free(f);
}

static struct lt_file *file_find(struct logtail_ctx *c, const char *path)
{
    for (size_t i = 0; i < c->nfiles; i++) {
        if (strcmp(c->files[i]->path, path) == 0) {
            return c->files[i];
        }
    }
    return NULL;
}

/* Move f's current stream to the draining list. */
static void retire_cur(struct lt_file *f, int64_t ts)
{
    if (f->cur.fd < 0) {
        return;
    }
    f->olds = wp_xrealloc(f->olds, (f->nolds + 1) * sizeof(*f->olds));
    f->olds[f->nolds] = f->cur;
    f->olds[f->nolds].rot_ts = ts;
    f->nolds++;
    memset(&f->cur, 0, sizeof(f->cur));
    f->cur.fd = -1;
}

/* Open path as f's current stream at offset off (or at its end when off is UINT64_MAX).
 * Returns 0, or -errno (reported once). */
static int open_cur(struct logtail_ctx *c, struct lt_file *f, uint64_t off)
{
    char head[LT_HASH_BLOCK];
    struct stat st;
    int fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

    if (fd < 0) {
        int rc = -errno;
        if (rc != -ENOENT) {
            file_event(c, f, "logtail: %s is unreadable: %s", f->path, strerror(-rc));
        }
        return rc;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        int rc = -EINVAL;
        file_event(c, f, "logtail: %s is unreadable: not a regular file", f->path);
        close(fd);
        return rc;
    }
    ssize_t n = read_head(fd, head);
    if (n < 0) {
        file_event(c, f, "logtail: %s is unreadable: %s", f->path, strerror((int)-n));
        close(fd);
        return (int)n;
    }
    stream_reset(&f->cur);
    f->cur.fd = fd;
    f->cur.dev = st.st_dev;
    f->cur.ino = st.st_ino;
    f->cur.hash_len = (uint32_t)n;
    f->cur.hash = fnv1a(head, (size_t)n);
    if (off == UINT64_MAX) {
        off = (uint64_t)st.st_size;
    }
    if (off > (uint64_t)st.st_size) {
        off = 0;
    }
    f->cur.off = off;
    f->cur.line_off = off;
    f->cur.last_data_ts = c->out != NULL ? c->out->ts_ms : 0;
    f->cur.binary = looks_binary(head, (size_t)n);
    if (f->cur.binary) {
        file_event(c, f, "logtail: %s looks binary, not read", f->path);
    } else {
        f->reported = 0;
    }
    return 0;
}

/*
 * A rotated copy of path next to it: a file in the same directory whose name starts with
 * path's base name, that is (dev, ino) when ino != 0, or else has the first-block hash
 * (hash, hash_len) and at least min_size bytes while not being (xdev, xino). Returns an open
 * fd (its stat in *st) or -1.
 */
static int find_rotated(const char *path, uint64_t dev, uint64_t ino, uint64_t hash,
                        uint32_t hash_len, uint64_t min_size, uint64_t xdev, uint64_t xino,
                        struct stat *st)
{
    char *dir = wp_xstrdup(path);
    char *slash = strrchr(dir, '/');
    const char *base = NULL;
    DIR *d = NULL;
    struct dirent *de = NULL;
    int found = -1;
    char head[LT_HASH_BLOCK];

    if (slash == NULL) {
        free(dir);
        return -1;
    }
    *slash = '\0';
    base = slash + 1;
    d = opendir(slash == dir ? "/" : dir);
    if (d == NULL) {
        free(dir);
        return -1;
    }
    size_t blen = strlen(base);
    while (found < 0) {
        de = readdir(d);
        if (de == NULL) {
            break;
        }
        if (strncmp(de->d_name, base, blen) != 0 || de->d_name[blen] == '\0') {
            continue;
        }
        char *cand = wp_xasprintf("%s/%s", slash == dir ? "" : dir, de->d_name);
        int fd = open(cand, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        free(cand);
        if (fd < 0) {
            continue;
        }
        if (fstat(fd, st) == 0 && S_ISREG(st->st_mode)) {
            int ok = 0;
            if (ino != 0) {
                ok = (uint64_t)st->st_dev == dev && (uint64_t)st->st_ino == ino;
            } else if (!((uint64_t)st->st_dev == xdev && (uint64_t)st->st_ino == xino) &&
                       (uint64_t)st->st_size >= min_size) {
                ok = 1;
            }
            if (ok) {
                ssize_t n = read_head(fd, head);
                ok = n >= 0 && (size_t)n >= hash_len && fnv1a(head, hash_len) == hash;
            }
            if (ok) {
                found = fd;
                continue;
            }
        }
        close(fd);
    }
    closedir(d);
    free(dir);
    return found;
}

/* Add a draining stream on fd (already stat'ed) from offset off. */
static void add_old(struct lt_file *f, int fd, const struct stat *st, uint64_t off, uint64_t hash,
                    uint32_t hash_len, int64_t ts)
{
    struct lt_stream *s = NULL;

    f->olds = wp_xrealloc(f->olds, (f->nolds + 1) * sizeof(*f->olds));
    s = &f->olds[f->nolds++];
    memset(s, 0, sizeof(*s));
    s->fd = fd;
    s->dev = st->st_dev;
    s->ino = st->st_ino;
    s->off = off <= (uint64_t)st->st_size ? off : (uint64_t)st->st_size;
    s->line_off = s->off;
    s->hash = hash;
    s->hash_len = hash_len;
    s->rot_ts = ts;
    s->last_data_ts = ts;
}

/* The first sample that sees f: resume from the cursor, or start per start_at / at 0. */
static void file_start(struct logtail_ctx *c, struct lt_file *f, int first_expansion, int64_t ts)
{
    struct lt_centry *cur = NULL;
    struct stat st;
    int known = 0;

    for (size_t i = 0; i < c->ncents; i++) {
        struct lt_centry *e = &c->cents[i];
        if (e->used || strcmp(e->path, f->path) != 0) {
            continue;
        }
        known = 1;
        e->used = 1;
        if (e->kind == 'F') {
            f->bytes_read = e->bytes_read;
            f->lines = e->lines;
            f->cut_lines = e->cut_lines;
            f->rotations = e->rotations;
            if (e->ino != 0) {
                cur = e;
            }
            continue;
        }
        /* a file that was draining when the agent stopped */
        int fd = find_rotated(f->path, e->dev, e->ino, e->hash, e->hash_len, 0, 0, 0, &st);
        if (fd >= 0) {
            add_old(f, fd, &st, e->off, e->hash, e->hash_len, ts);
        }
    }
    if (open_cur(c, f, 0) < 0) {
        if (cur != NULL) {
            /* the path is gone: drain its last file if it was rotated away */
            int fd =
                find_rotated(f->path, cur->dev, cur->ino, cur->hash, cur->hash_len, 0, 0, 0, &st);
            if (fd >= 0) {
                add_old(f, fd, &st, cur->off, cur->hash, cur->hash_len, ts);
            }
        }
        f->missing = 1; /* when it appears it is new: read from 0 */
        return;
    }
    if (cur != NULL) {
        if ((uint64_t)f->cur.dev == cur->dev && (uint64_t)f->cur.ino == cur->ino) {
            char head[LT_HASH_BLOCK];
            ssize_t n = read_head(f->cur.fd, head);
            struct stat cs;
            if (n >= (ssize_t)cur->hash_len && fnv1a(head, cur->hash_len) == cur->hash &&
                fstat(f->cur.fd, &cs) == 0 && (uint64_t)cs.st_size >= cur->off) {
                f->cur.off = cur->off;
                f->cur.line_off = cur->off;
                return;
            }
            /* truncated while we were away: the rest may be in the rotated copy */
            int fd = find_rotated(f->path, 0, 0, cur->hash, cur->hash_len, cur->off, cur->dev,
                                  cur->ino, &st);
            if (fd >= 0) {
                add_old(f, fd, &st, cur->off, cur->hash, cur->hash_len, ts);
            }
            f->rotations++;
            return;
        }
        /* rotated while we were away: drain the old file first, then this one from 0 */
        int fd = find_rotated(f->path, cur->dev, cur->ino, cur->hash, cur->hash_len, 0, 0, 0, &st);
        if (fd >= 0) {
            add_old(f, fd, &st, cur->off, cur->hash, cur->hash_len, ts);
        }
        f->rotations++;
        return;
    }
    if (!known && first_expansion && c->start_at == LT_START_END) {
        struct stat cs;
        if (fstat(f->cur.fd, &cs) == 0) {
            f->cur.off = (uint64_t)cs.st_size;
            f->cur.line_off = f->cur.off;
        }
    }
}

/* Stat f's path and follow rotation, truncation, deletion and re-creation. */
static void file_check(struct logtail_ctx *c, struct lt_file *f, int64_t ts)
{
    struct stat st;
    char head[LT_HASH_BLOCK];

    if (!f->seen || stat(f->path, &st) < 0) {
        /* gone (deleted or renamed away): drain what is open */
        retire_cur(f, ts);
        f->missing = 1;
        return;
    }
    if (f->cur.fd < 0) {
        if (open_cur(c, f, 0) == 0) {
            if (f->missing && f->rotations + f->lines + f->bytes_read > 0) {
                f->rotations++; /* re-created */
            }
            f->missing = 0;
        }
        return;
    }
    f->missing = 0;
    if (st.st_dev != f->cur.dev || st.st_ino != f->cur.ino) {
        retire_cur(f, ts);
        f->rotations++;
        open_cur(c, f, 0);
        return;
    }
    int same = head_check(&f->cur, head);
    if (same < 0) {
        return;
    }
    if ((uint64_t)st.st_size < f->cur.off || !same) {
        /* copytruncate (or truncated and rewritten): take the unread tail from the copy */
        uint64_t from = f->cur.has_rec ? f->cur.rec_off : f->cur.line_off;
        struct stat rs;
        int fd = find_rotated(f->path, 0, 0, f->cur.hash, f->cur.hash_len, from,
                              (uint64_t)f->cur.dev, (uint64_t)f->cur.ino, &rs);
        if (fd >= 0) {
            add_old(f, fd, &rs, from, f->cur.hash, f->cur.hash_len, ts);
            f->olds[f->nolds - 1].rot_ts = ts - LT_OLD_GRACE_MS; /* a copy: nobody writes */
        } else {
            rec_flush(c, f, &f->cur);
        }
        f->rotations++;
        stream_close(&f->cur);
        open_cur(c, f, 0);
    }
}

/* Read f: draining streams first (oldest first), then the current file. */
static void file_read(struct logtail_ctx *c, struct lt_file *f, int64_t ts)
{
    uint64_t bytes_left = c->max_read;
    int64_t lines_left = c->max_lines;
    size_t k = 0;

    for (size_t i = 0; i < f->nolds; i++) {
        struct lt_stream *s = &f->olds[i];
        int rc = s->binary ? 1 : stream_read(c, f, s, &bytes_left, &lines_left, ts);
        if (rc != 0 && ts - s->rot_ts >= LT_OLD_GRACE_MS) {
            rec_flush(c, f, s);
            stream_close(s);
            continue;
        }
        maybe_timeout(c, f, s, ts);
        f->olds[k++] = *s;
    }
    f->nolds = k;
    /* a budget that ran out on a draining file leaves the current one for the next sample */
    if (f->cur.fd >= 0 && !f->cur.binary && bytes_left > 0 && lines_left > 0) {
        int rc = stream_read(c, f, &f->cur, &bytes_left, &lines_left, ts);
        if (rc < 0) {
            file_event(c, f, "logtail: %s is unreadable: %s", f->path, strerror(-rc));
        }
    }
    if (f->cur.fd >= 0) {
        maybe_timeout(c, f, &f->cur, ts);
    }
}

/* ---- glob ----------------------------------------------------------------------------------- */

static struct lt_file *file_add(struct logtail_ctx *c, const char *path, int literal)
{
    struct lt_file *f = wp_xcalloc(1, sizeof(*f));
    size_t n = strlen(path);

    f->path = wp_xstrdup(path);
    f->inst = wp_xstrdup(n < WP_INST_MAX ? path : path + n - (WP_INST_MAX - 1));
    f->literal = literal;
    f->cur.fd = -1;
    c->files = wp_xrealloc(c->files, (c->nfiles + 1) * sizeof(*c->files));
    c->files[c->nfiles++] = f;
    return f;
}

static void expand(struct logtail_ctx *c, int64_t ts)
{
    int first = !c->sampled;

    for (size_t i = 0; i < c->nfiles; i++) {
        c->files[i]->seen = c->files[i]->literal;
    }
    for (size_t i = 0; i < c->paths.n; i++) {
        const char *pat = c->paths.v[i];
        glob_t g;
        if (strpbrk(pat, "*?[{") == NULL) {
            struct lt_file *f = file_find(c, pat);
            if (f == NULL) {
                f = file_add(c, pat, 1);
                f->seen = 1;
                file_start(c, f, first, ts);
            }
            continue;
        }
        memset(&g, 0, sizeof(g));
        if (glob(pat, GLOB_BRACE | GLOB_NOSORT, NULL, &g) == 0) {
            for (size_t k = 0; k < g.gl_pathc; k++) {
                struct lt_file *f = file_find(c, g.gl_pathv[k]);
                if (f == NULL) {
                    f = file_add(c, g.gl_pathv[k], 0);
                    f->seen = 1;
                    file_start(c, f, first, ts);
                } else {
                    f->seen = 1;
                }
            }
        }
        globfree(&g);
    }
}

/* ---- cursor file ---------------------------------------------------------------------------- */

static void cents_free(struct logtail_ctx *c)
{
    for (size_t i = 0; i < c->ncents; i++) {
        free(c->cents[i].path);
    }
    free(c->cents);
    c->cents = NULL;
    c->ncents = 0;
}

/* Load cursor_file (absent: nothing to resume). A damaged file is logged and ignored. */
static void cursor_load(struct logtail_ctx *c)
{
    FILE *fp = fopen(c->cursor_file, "re");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = 0;
    int bad = 0;

    if (fp == NULL) {
        if (errno != ENOENT) {
            WP_PLOG(c->p, WP_LOG_WARN, "cannot read cursor file %s: %s", c->cursor_file,
                    strerror(errno));
        }
        return;
    }
    c->have_cursor = 1;
    for (;;) {
        n = getline(&line, &cap, fp);
        if (n <= 0) {
            break;
        }
        if (line[n - 1] == '\n') {
            line[--n] = '\0';
        }
        if (line[0] == '#' || n == 0) {
            continue;
        }
        if (line[0] == 'F' || line[0] == 'O') {
            struct lt_centry e;
            int pos = 0;
            memset(&e, 0, sizeof(e));
            e.kind = line[0];
            if (sscanf(line + 1,
                       " %" SCNu64 " %" SCNu64 " %" SCNx64 " %" SCNu32 " %" SCNu64 " %" SCNu64
                       " %" SCNu64 " %" SCNu64 " %" SCNu64 " %n",
                       &e.dev, &e.ino, &e.hash, &e.hash_len, &e.off, &e.bytes_read, &e.lines,
                       &e.cut_lines, &e.rotations, &pos) < 9 ||
                pos == 0 || e.hash_len > LT_HASH_BLOCK) {
                bad = 1;
                continue;
            }
            e.path = wp_xstrdup(line + 1 + pos);
            c->cents = wp_xrealloc(c->cents, (c->ncents + 1) * sizeof(*c->cents));
            c->cents[c->ncents++] = e;
        } else if (line[0] == 'R') {
            uint64_t m = 0, s = 0, h = 0;
            int pos = 0;
            if (sscanf(line + 1, " %" SCNu64 " %" SCNu64 " %" SCNu64 " %n", &m, &s, &h, &pos) < 3 ||
                pos == 0) {
                bad = 1;
                continue;
            }
            for (size_t i = 0; i < c->nrules; i++) {
                if (strcmp(c->rules[i].name, line + 1 + pos) == 0) {
                    c->rules[i].matches = m;
                    c->rules[i].sent = s;
                    c->rules[i].held = h;
                }
            }
        } else {
            bad = 1;
        }
    }
    if (bad) {
        WP_PLOG(c->p, WP_LOG_WARN, "cursor file %s has damaged lines, they were ignored",
                c->cursor_file);
    }
    free(line);
    fclose(fp);
}

static void cur_line(char **buf, size_t *len, size_t *cap, char kind, const struct lt_stream *s,
                     const struct lt_file *f)
{
    uint64_t off = s->has_rec ? s->rec_off : s->line_off;
    int n = 0;

    for (;;) {
        n = snprintf(*buf + *len, *cap - *len,
                     "%c %" PRIu64 " %" PRIu64 " %" PRIx64 " %" PRIu32 " %" PRIu64 " %" PRIu64
                     " %" PRIu64 " %" PRIu64 " %" PRIu64 " %s\n",
                     kind, s->fd >= 0 ? (uint64_t)s->dev : 0, s->fd >= 0 ? (uint64_t)s->ino : 0,
                     s->hash, s->hash_len, s->fd >= 0 ? off : 0, f->bytes_read, f->lines,
                     f->cut_lines, f->rotations, f->path);
        if ((size_t)n < *cap - *len) {
            break;
        }
        *cap = *cap * 2 + (size_t)n;
        *buf = wp_xrealloc(*buf, *cap);
    }
    *len += (size_t)n;
}

/* The cursor file's text for the state after this sample. */
static char *cursor_text(struct logtail_ctx *c)
{
    size_t cap = 4096, len = 0;
    char *buf = wp_xmalloc(cap);
    int n = 0;

    n = snprintf(buf, cap, "# watchpost logtail cursor v1\n");
    len = (size_t)n;
    for (size_t i = 0; i < c->nfiles; i++) {
        struct lt_file *f = c->files[i];
        if (strchr(f->path, '\n') != NULL) {
            continue;
        }
        cur_line(&buf, &len, &cap, 'F', &f->cur, f);
        for (size_t k = 0; k < f->nolds; k++) {
            cur_line(&buf, &len, &cap, 'O', &f->olds[k], f);
        }
    }
    for (size_t i = 0; i < c->nrules; i++) {
        struct lt_rule *r = &c->rules[i];
        for (;;) {
            n = snprintf(buf + len, cap - len, "R %" PRIu64 " %" PRIu64 " %" PRIu64 " %s\n",
                         r->matches, r->sent, r->held, r->name);
            if ((size_t)n < cap - len) {
                break;
            }
            cap = cap * 2 + (size_t)n;
            buf = wp_xrealloc(buf, cap);
        }
        len += (size_t)n;
    }
    return buf;
}

/* Write text to cursor_file durably: temp file, fsync, rename, fsync of the directory. */
static int cursor_write(struct logtail_ctx *c, const char *text)
{
    char *tmp = wp_xasprintf("%s.tmp", c->cursor_file);
    size_t len = strlen(text), done = 0;
    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    while (done < len) {
        ssize_t w = write(fd, text + done, len - done);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            rc = -errno;
            goto out;
        }
        done += (size_t)w;
    }
    if (fsync(fd) < 0) {
        rc = -errno;
        goto out;
    }
    close(fd);
    fd = -1;
    if (rename(tmp, c->cursor_file) < 0) {
        rc = -errno;
        goto out;
    }
    char *dir = wp_xstrdup(c->cursor_file);
    char *slash = strrchr(dir, '/');
    if (slash != NULL) {
        *slash = '\0';
        int dfd = open(slash == dir ? "/" : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    free(dir);
out:
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    free(tmp);
    return rc;
}

/* ---- probe ops ------------------------------------------------------------------------------ */

static const char *const rule_fields[] = {"matches", "events_sent", "events_held"};
static const struct wp_series_kind rule_kind = {"logtail", rule_fields, 3, WP_DS_GAUGE};
static const char *const file_fields[] = {"bytes_read", "lines", "cut_lines", "rotations"};
static const struct wp_series_kind file_kind = {"logfile", file_fields, 4, WP_DS_GAUGE};

static int logtail_init(struct wp_probe *p)
{
    struct logtail_ctx *c = p->ctx;
    int rc = 0;
    const char *start = c->start;

    c->p = p;
    c->cd = (iconv_t)-1;
    c->ready = 1;
    c->rules = wp_xcalloc(LT_MAX_RULES, sizeof(*c->rules));
    c->chunk = wp_xmalloc(LT_CHUNK);
    if (c->paths.n == 0) {
        WP_PLOG(p, WP_LOG_ERROR, "paths: at least one path or glob is needed");
        return WP_ECONFIG;
    }
    if (c->encoding != LT_ENC_UTF8) {
        c->cd = iconv_open("UTF-8", "GB18030");
        if (c->cd == (iconv_t)-1) {
            rc = -errno;
            WP_PLOG(p, WP_LOG_ERROR, "iconv GB18030 to UTF-8: %s", wp_strerror(rc));
            return rc;
        }
    }
    switch (c->preset) {
    case LT_PRESET_ORACLE:
        rc = add_preset(c, oracle_rules);
        start = start != NULL ? start : ORACLE_START;
        break;
    case LT_PRESET_TOMCAT:
        rc = add_preset(c, tomcat_rules);
        start = start != NULL ? start : TOMCAT_START;
        break;
    case LT_PRESET_SYSLOG:
        rc = add_preset(c, syslog_rules);
        break;
    default:
        break;
    }
    if (rc < 0) {
        return rc;
    }
    for (size_t i = 0; i < c->rules_in.n; i++) {
        const struct lt_rule_in *ri = &c->rules_in.v[i];
        rc = add_rule(c, ri->name, ri->pattern, ri->literal, (unsigned)ri->severity,
                      ri->ignore_case);
        if (rc < 0) {
            return rc;
        }
    }
    if (start != NULL && start[0] != '\0') {
        rc = compile_re(p, "start", start, 0, &c->start_re, &c->start_jit);
        if (rc < 0) {
            return rc;
        }
        c->start_md = pcre2_match_data_create_from_pattern(c->start_re, NULL);
    }
    build_prefilter(c);
    cursor_load(c);
    return 0;
}

static int logtail_sample(struct wp_probe *p, struct wp_sink *out)
{
    struct logtail_ctx *c = p->ctx;
    int64_t ts = out->ts_ms;
    double v[4];

    c->out = out;
    held_notes(c, ts);
    expand(c, ts);
    c->sampled = 1;
    for (size_t i = 0; i < c->nfiles; i++) {
        file_check(c, c->files[i], ts);
        file_read(c, c->files[i], ts);
    }
    /* forget glob matches that are gone and fully drained */
    size_t k = 0;
    for (size_t i = 0; i < c->nfiles; i++) {
        struct lt_file *f = c->files[i];
        if (!f->literal && !f->seen && f->cur.fd < 0 && f->nolds == 0) {
            file_free(f);
            continue;
        }
        c->files[k++] = f;
    }
    c->nfiles = k;
    if (c->optional && !c->active) {
        const char *open_path = NULL;
        for (size_t i = 0; i < c->nfiles && open_path == NULL; i++) {
            if (c->files[i]->cur.fd >= 0 || c->files[i]->nolds > 0) {
                open_path = c->files[i]->path;
            }
        }
        if (open_path == NULL) {
            if (!c->idle_logged) {
                WP_PLOG(p, WP_LOG_INFO,
                        "none of its paths exists (optional): idle until one appears");
                c->idle_logged = 1;
            }
            c->out = NULL;
            return 0; /* a host without these logs gets no series for them */
        }
        WP_PLOG(p, WP_LOG_INFO, "following %s", open_path);
        c->active = 1;
    }
    for (size_t i = 0; i < c->nrules; i++) {
        struct lt_rule *r = &c->rules[i];
        v[0] = (double)r->matches;
        v[1] = (double)r->sent;
        v[2] = (double)r->held;
        wp_sink_metric(out, &rule_kind, r->inst, v);
    }
    for (size_t i = 0; i < c->nfiles; i++) {
        struct lt_file *f = c->files[i];
        v[0] = (double)f->bytes_read;
        v[1] = (double)f->lines;
        v[2] = (double)f->cut_lines;
        v[3] = (double)f->rotations;
        wp_sink_metric(out, &file_kind, f->inst, v);
    }
    /* the state to persist once this round is durable */
    char *text = cursor_text(c);
    if (c->nsnaps > 0 && strcmp(c->snaps[c->nsnaps - 1].text, text) == 0) {
        c->snaps[c->nsnaps - 1].ts = ts; /* unchanged: the newer round covers it */
        free(text);
    } else {
        if (c->nsnaps == LT_MAX_SNAPS) {
            /* committed() is not coming (spool failing): drop the oldest */
            free(c->snaps[0].text);
            memmove(c->snaps, c->snaps + 1, (c->nsnaps - 1) * sizeof(*c->snaps));
            c->nsnaps--;
        }
        c->snaps = wp_xrealloc(c->snaps, (c->nsnaps + 1) * sizeof(*c->snaps));
        c->snaps[c->nsnaps].ts = ts;
        c->snaps[c->nsnaps].text = text;
        c->nsnaps++;
    }
    c->out = NULL;
    return 0;
}

static void logtail_committed(struct wp_probe *p, int64_t ts_ms)
{
    struct logtail_ctx *c = p->ctx;
    size_t k = 0;

    while (k < c->nsnaps && c->snaps[k].ts <= ts_ms) {
        k++;
    }
    if (k == 0) {
        return;
    }
    char *text = c->snaps[k - 1].text;
    if (c->written == NULL || strcmp(c->written, text) != 0) {
        int rc = cursor_write(c, text);
        if (rc < 0) {
            if (!c->write_failing) {
                WP_PLOG(p, WP_LOG_WARN, "cannot write cursor file %s: %s", c->cursor_file,
                        wp_strerror(rc));
                c->write_failing = 1;
            }
            return; /* keep the snapshots: the next commit tries again */
        }
        c->write_failing = 0;
        free(c->written);
        c->written = wp_xstrdup(text);
    }
    for (size_t i = 0; i < k; i++) {
        free(c->snaps[i].text);
    }
    memmove(c->snaps, c->snaps + k, (c->nsnaps - k) * sizeof(*c->snaps));
    c->nsnaps -= k;
}

static void logtail_destroy(struct wp_probe *p)
{
    struct logtail_ctx *c = p->ctx;

    if (c == NULL || !c->ready) {
        return;
    }
    for (size_t i = 0; i < c->nrules; i++) {
        struct lt_rule *r = &c->rules[i];
        pcre2_match_data_free(r->md);
        pcre2_code_free(r->re);
        free(r->name);
        free(r->inst);
        free(r->lit);
        for (uint32_t k = 0; k < r->nnames; k++) {
            free(r->names[k]);
        }
        free(r->names);
        free(r->nums);
    }
    free(c->rules);
    free(c->pairhead);
    free(c->cand);
    pcre2_match_data_free(c->start_md);
    pcre2_code_free(c->start_re);
    if (c->cd != (iconv_t)-1) {
        iconv_close(c->cd);
    }
    for (size_t i = 0; i < c->nfiles; i++) {
        file_free(c->files[i]);
    }
    free(c->files);
    cents_free(c);
    free(c->chunk);
    free(c->conv);
    free(c->val);
    for (size_t i = 0; i < c->nsnaps; i++) {
        free(c->snaps[i].text);
    }
    free(c->snaps);
    free(c->written);
    c->ready = 0;
}

const struct wp_probe_ops wp_probe_logtail = {
    .name = "logtail",
    .summary = "follow log files across rotation, match PCRE2 rules, send events and counters",
    .opts = logtail_opts,
    .ctx_size = sizeof(struct logtail_ctx),
    .flags = 0,
    .init = logtail_init,
    .sample = logtail_sample,
    .start = NULL,
    .stop = NULL,
    .destroy = logtail_destroy,
    .committed = logtail_committed,
};
