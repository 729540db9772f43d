/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The selftest probe: deterministic test series for integration tests.
 *
 * Each sample emits, for every series i in 0..series-1, one row of group "selftest",
 * instance "s<i>", fields "v0".."v<fields-1>", where field k has the value
 *
 *     v_k = floor(ts_ms / 1000) * 1000 + i * 32 + k        (ts_ms >= 0, the sink's time)
 *
 * so a test can compute every value the collector must have stored from the time alone.
 *
 * With `record: <path>`, the probe also appends one line per row to that file,
 *
 *     "<ts_ms> s<i> <v0> <v1> ...\n"   (decimal integers, one blank between)
 *
 * but only in committed(), i.e. once the agent says the rows sampled at ts_ms are durable in
 * its spool. sample() keeps the lines in memory until then. The record file therefore lists
 * rows the agent can no longer lose: an integration test that kills and restarts daemons
 * checks that every recorded row reaches the RRD files (rows sampled but not yet committed
 * when the agent died may be in the RRD too, or not). Lines are written with write(), not
 * fsynced: tests kill processes, not the machine. Lines never committed (the probe is
 * destroyed first) are dropped; at most 64 MiB wait, beyond that new lines are dropped and
 * that is logged.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "probe.h"
#include "wp/buf.h"
#include "wp/err.h"

#define SELFTEST_PENDING_MAX (64u << 20)

struct selftest_ctx {
    /* options */
    int64_t series;
    int64_t fields;
    char *record;
    /* state */
    struct wp_series_kind kind;
    int fd;                /* record file, -1 when not recording */
    struct wp_buf pending; /* lines sampled but not yet committed */
    int ready;             /* init ran far enough for destroy to clean up */
    int overflowed;        /* lines were dropped (logged once) */
    int write_failing;     /* a write to the record file failed (logged once) */
};

static const struct wp_opt selftest_opts[] = {
    {.name = "series",
     .type = WP_OPT_INT,
     .def = "1",
     .help = "number of series (instances s0, s1, ...)",
     .offset = offsetof(struct selftest_ctx, series),
     .min = 1,
     .max = 1000},
    {.name = "fields",
     .type = WP_OPT_INT,
     .def = "1",
     .help = "fields per series (v0, v1, ...)",
     .offset = offsetof(struct selftest_ctx, fields),
     .min = 1,
     .max = WP_SERIES_MAX_FIELDS},
    {.name = "record",
     .type = WP_OPT_STR,
     .help = "file to append \"ts_ms inst v0 v1 ...\" lines to once rows are in the spool",
     .offset = offsetof(struct selftest_ctx, record)},
    WP_OPT_TABLE_END,
};

static const char *const field_names[WP_SERIES_MAX_FIELDS] = {
    "v0",  "v1",  "v2",  "v3",  "v4",  "v5",  "v6",  "v7",  "v8",  "v9",  "v10",
    "v11", "v12", "v13", "v14", "v15", "v16", "v17", "v18", "v19", "v20", "v21",
    "v22", "v23", "v24", "v25", "v26", "v27", "v28", "v29", "v30", "v31"};

static int selftest_init(struct wp_probe *p)
{
    struct selftest_ctx *c = p->ctx;

    c->fd = -1;
    wp_buf_init(&c->pending);
    c->ready = 1;
    if (c->series < 1 || c->series > 1000 || c->fields < 1 || c->fields > WP_SERIES_MAX_FIELDS) {
        WP_PLOG(p, WP_LOG_ERROR, "series must be 1..1000 and fields 1..%d", WP_SERIES_MAX_FIELDS);
        return WP_ECONFIG;
    }
    c->kind.group = "selftest";
    c->kind.fields = field_names;
    c->kind.nfields = (uint32_t)c->fields;
    c->kind.type = WP_DS_GAUGE;
    if (c->record != NULL) {
        c->fd = open(c->record, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (c->fd < 0) {
            int rc = -errno;
            WP_PLOG(p, WP_LOG_ERROR, "cannot open record file %s: %s", c->record, wp_strerror(rc));
            return rc;
        }
    }
    return 0;
}

static int selftest_sample(struct wp_probe *p, struct wp_sink *out)
{
    struct selftest_ctx *c = p->ctx;
    int64_t base = out->ts_ms / 1000 * 1000;
    double v[WP_SERIES_MAX_FIELDS];
    char inst[24];
    char line[64 + WP_SERIES_MAX_FIELDS * 24];

    for (int64_t i = 0; i < c->series; i++) {
        snprintf(inst, sizeof(inst), "s%" PRId64, i);
        for (int64_t k = 0; k < c->fields; k++) {
            v[k] = (double)(base + i * 32 + k);
        }
        wp_sink_metric(out, &c->kind, inst, v);
        if (c->fd < 0) {
            continue;
        }
        int n = snprintf(line, sizeof(line), "%" PRId64 " %s", out->ts_ms, inst);
        for (int64_t k = 0; k < c->fields; k++) {
            n += snprintf(line + n, sizeof(line) - (size_t)n, " %" PRId64, base + i * 32 + k);
        }
        line[n++] = '\n';
        if (wp_buf_unread(&c->pending) + (size_t)n > SELFTEST_PENDING_MAX) {
            if (!c->overflowed) {
                WP_PLOG(p, WP_LOG_WARN, "record: over %u bytes wait for committed(), dropping",
                        SELFTEST_PENDING_MAX);
                c->overflowed = 1;
            }
            continue;
        }
        wp_buf_append(&c->pending, line, (size_t)n);
    }
    return 0;
}

/* The ts of the pending line starting at s (s..end); -1 if it has none. */
static int64_t line_ts(const uint8_t *s, const uint8_t *end)
{
    int64_t ts = 0;
    const uint8_t *q = s;

    while (q < end && *q >= '0' && *q <= '9' && q - s < 19) {
        ts = ts * 10 + (*q - '0');
        q++;
    }
    return q == s ? -1 : ts;
}

static void selftest_committed(struct wp_probe *p, int64_t ts_ms)
{
    struct selftest_ctx *c = p->ctx;
    const uint8_t *head = wp_buf_head(&c->pending);
    const uint8_t *end = head + wp_buf_unread(&c->pending);
    const uint8_t *s = head;

    if (c->fd < 0) {
        return;
    }
    /* lines are in sample order: write the prefix sampled at or before ts_ms */
    while (s < end) {
        const uint8_t *nl = memchr(s, '\n', (size_t)(end - s));
        if (nl == NULL || line_ts(s, nl) > ts_ms) {
            break;
        }
        s = nl + 1;
    }
    size_t len = (size_t)(s - head);
    size_t done = 0;
    for (int tries = 0; done < len && tries < 100; tries++) {
        ssize_t w = write(c->fd, head + done, len - done);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (!c->write_failing) {
                WP_PLOG(p, WP_LOG_WARN, "cannot write record file %s: %s", c->record,
                        wp_strerror(-errno));
                c->write_failing = 1;
            }
            break;
        }
        done += (size_t)w;
    }
    if (done == len) {
        c->write_failing = 0;
    }
    /* what was not written stays pending and goes out first at the next commit, so the
     * file still ends up with whole lines in sample order */
    wp_buf_consume(&c->pending, done);
}

static void selftest_destroy(struct wp_probe *p)
{
    struct selftest_ctx *c = p->ctx;

    if (c == NULL || !c->ready) {
        return;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    wp_buf_cleanup(&c->pending);
    c->ready = 0;
}

const struct wp_probe_ops wp_probe_selftest = {
    .name = "selftest",
    .summary = "deterministic test series for integration tests",
    .opts = selftest_opts,
    .ctx_size = sizeof(struct selftest_ctx),
    .flags = 0,
    .init = selftest_init,
    .sample = selftest_sample,
    .start = NULL,
    .stop = NULL,
    .destroy = selftest_destroy,
    .committed = selftest_committed,
};
