/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Benchmark driver for the logtail probe (built by tests/bench/logtail.sh, not by CMake):
 * runs the real probe (read, split, decode, multi-line off, rules) over FILE from the start
 * with a sink that only counts, until every byte is read, and prints lines/s.
 *
 *   logtail_bench FILE RULES_YAML_FILE|none
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "probe.h"
#include "wp/conf.h"
#include "wp/mem.h"

extern const struct wp_probe_ops wp_probe_logtail;

struct counts {
    double bytes, lines;
    double matches;
    uint64_t events;
};

static void bench_metric(struct wp_sink *s, const struct wp_series_kind *kind, const char *inst,
                         const double *vals)
{
    struct counts *c = s->ctx;

    (void)inst;
    if (strcmp(kind->group, "logfile") == 0) {
        c->bytes = vals[0];
        c->lines = vals[1];
    } else {
        c->matches += vals[0];
    }
}

static void bench_event(struct wp_sink *s, const char *src, const char *rule, unsigned sev,
                        const char *text, const char *const *fields)
{
    struct counts *c = s->ctx;

    (void)src;
    (void)rule;
    (void)sev;
    (void)text;
    (void)fields;
    c->events++;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    struct stat st;
    struct wp_conf_doc *doc = NULL;
    struct wp_conf_err err;
    struct wp_probe *p = NULL;
    struct counts c;
    struct wp_sink sink;
    char rules[1 << 16] = "";
    char cursor[] = "/tmp/wp-logtail-bench-XXXXXX";

    if (argc != 3 || stat(argv[1], &st) < 0) {
        fprintf(stderr, "usage: logtail_bench FILE RULES_YAML|none\n");
        return 2;
    }
    if (strcmp(argv[2], "none") != 0) {
        FILE *fp = fopen(argv[2], "r");
        if (fp == NULL) {
            perror(argv[2]);
            return 2;
        }
        size_t n = fread(rules, 1, sizeof(rules) - 1, fp);
        rules[n] = '\0';
        fclose(fp);
    }
    int fd = mkstemp(cursor);
    close(fd);
    char *yaml = wp_xasprintf("kind: logtail\nname: bench\npaths: [%s]\ncursor_file: %s\n"
                              "start_at: beginning\nmax_read: 1GiB\nmax_lines: 1000000000\n"
                              "max_events_per_min: 0\n%s",
                              argv[1], cursor, rules);
    if (wp_conf_parse("bench.yaml", yaml, strlen(yaml), &err, &doc) < 0 ||
        wp_probe_new(&wp_probe_logtail, doc, wp_conf_root(doc), &err, &p) < 0) {
        fprintf(stderr, "config: %s\n", err.msg);
        return 1;
    }
    wp_conf_free(doc);
    free(yaml);
    memset(&c, 0, sizeof(c));
    memset(&sink, 0, sizeof(sink));
    sink.metric = bench_metric;
    sink.event = bench_event;
    sink.ctx = &c;
    sink.step_s = 1;
    sink.ts_ms = 1700000000000;
    double t0 = now_s();
    double prev = -1;
    /* until every byte is read, or a sample makes no progress (a last line without '\n') */
    while (c.bytes < (double)st.st_size && c.bytes > prev) {
        prev = c.bytes;
        c.matches = 0;
        sink.ts_ms += 1000;
        if (p->ops->sample(p, &sink) < 0) {
            fprintf(stderr, "sample failed\n");
            return 1;
        }
    }
    double dt = now_s() - t0;
    printf("lines=%.0f bytes=%.0f seconds=%.3f lines_per_s=%.0f MiB_per_s=%.1f matches=%.0f "
           "events=%" PRIu64 "\n",
           c.lines, c.bytes, dt, c.lines / dt, c.bytes / dt / 1048576.0, c.matches, c.events);
    wp_probe_free(p);
    unlink(cursor);
    return 0;
}
