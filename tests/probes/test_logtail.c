/* SPDX-License-Identifier: Apache-2.0 */
/* The logtail probe: appends, logrotate (create, copytruncate), truncation, re-creation,
 * multi-line Oracle records, GB18030, cut lines, rate limits and cursor restarts. */
#include <fcntl.h>
#include <ftw.h>
#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "capture.h"
#include "peers.h"
#include "probe.h"
#include "probe_fixture.h"
#include "wp/conf.h"
#include "wp/mem.h"

extern const struct wp_probe_ops wp_probe_logtail;

#define NLINES_MAX 4096

struct env {
    char dir[64];
    char log[128];
    char cursor[128];
    struct capture cap;
    struct wp_probe *p;
    int64_t ts;
    int seen[NLINES_MAX]; /* how often line number i arrived as an event */
    int next;             /* next line number to write */
};

static int setup(void **state)
{
    struct env *e = wp_xcalloc(1, sizeof(*e));

    snprintf(e->dir, sizeof(e->dir), "/tmp/wp-logtail-XXXXXX");
    if (mkdtemp(e->dir) == NULL) {
        free(e);
        return -1;
    }
    snprintf(e->log, sizeof(e->log), "%s/app.log", e->dir);
    snprintf(e->cursor, sizeof(e->cursor), "%s/logtail.cursor", e->dir);
    capture_init(&e->cap, 0, 1);
    e->ts = 1700000000000;
    e->next = 1;
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;

    wp_probe_free(e->p);
    capture_cleanup(&e->cap);
    peers_rmtree(e->dir);
    free(e);
    return 0;
}

static int new_probe(const char *yaml, struct wp_probe **out)
{
    return fixture_probe_new(&wp_probe_logtail, "logtail.yaml", yaml, out);
}

/* A probe on e->log with a rule "line" for "L<n>" lines plus the extra YAML. */
static void lines_probe(struct env *e, const char *extra)
{
    char *yaml = wp_xasprintf("kind: logtail\nname: t\npaths: [%s]\ncursor_file: %s\n"
                              "max_events_per_min: 0\n"
                              "rules:\n  - {name: line, pattern: '^L(?<n>\\d+)( |$)', "
                              "severity: error}\n%s",
                              e->log, e->cursor, extra != NULL ? extra : "");
    assert_int_equal(new_probe(yaml, &e->p), 0);
    free(yaml);
}

/* Sample one round (1 s later than the last), counting "line" events into seen[]. */
static void sample(struct env *e)
{
    capture_clear(&e->cap);
    e->ts += 1000;
    e->cap.sink.ts_ms = e->ts;
    assert_int_equal(e->p->ops->sample(e->p, &e->cap.sink), 0);
    assert_int_equal(e->cap.bad, 0);
    for (size_t i = 0; i < e->cap.nrecs; i++) {
        const struct cap_rec *r = &e->cap.recs[i];
        if (r->kind != WP_REC_EVENT || strcmp(r->group, "line") != 0) {
            continue;
        }
        const char *n = capture_field(r, "n");
        assert_non_null(n);
        int k = atoi(n);
        assert_true(k > 0 && k < NLINES_MAX);
        e->seen[k]++;
    }
}

static void append(const char *path, const char *text, size_t len)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
}

static void append_s(const char *path, const char *text)
{
    append(path, text, strlen(text));
}

/* Append n numbered lines "L<k> some text" to e->log. */
static void write_lines(struct env *e, int n)
{
    char buf[64];

    for (int i = 0; i < n; i++) {
        int len = snprintf(buf, sizeof(buf), "L%d payload text\n", e->next++);
        append(e->log, buf, (size_t)len);
    }
}

/* Every line written so far arrived exactly once. */
static void all_once(const struct env *e)
{
    for (int k = 1; k < e->next; k++) {
        if (e->seen[k] != 1) {
            fail_msg("line L%d arrived %d times", k, e->seen[k]);
        }
    }
}

static int events(const struct env *e, const char *rule)
{
    int n = 0;

    for (size_t i = 0; i < e->cap.nrecs; i++) {
        if (e->cap.recs[i].kind == WP_REC_EVENT && strcmp(e->cap.recs[i].group, rule) == 0) {
            n++;
        }
    }
    return n;
}

static const struct cap_rec *event_of(const struct env *e, const char *rule)
{
    for (size_t i = 0; i < e->cap.nrecs; i++) {
        if (e->cap.recs[i].kind == WP_REC_EVENT && strcmp(e->cap.recs[i].group, rule) == 0) {
            return &e->cap.recs[i];
        }
    }
    return NULL;
}

static void run_logrotate(struct env *e, const char *mode)
{
    char conf[160], st[160];
    char *text = wp_xasprintf("%s {\n    %s\n    rotate 5\n    missingok\n}\n", e->log, mode);
    char *cmd = NULL;

    snprintf(conf, sizeof(conf), "%s/logrotate.conf", e->dir);
    snprintf(st, sizeof(st), "%s/logrotate.state", e->dir);
    unlink(conf);
    append(conf, text, strlen(text));
    chmod(conf, 0644);
    cmd = wp_xasprintf("logrotate -f -s %s %s", st, conf);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(text);
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void logtail_appends(void **state)
{
    struct env *e = *state;
    char path[200];

    append_s(e->log, "L900 before the probe started\n");
    lines_probe(e, NULL);
    sample(e); /* start_at: end */
    assert_int_equal(e->seen[900], 0);
    write_lines(e, 3);
    append_s(e->log, "L50"); /* a partial line waits for its newline */
    sample(e);
    all_once(e);
    assert_int_equal(e->seen[50], 0);
    const struct cap_rec *r = event_of(e, "line");
    assert_non_null(r);
    assert_string_equal(r->name, e->log);
    assert_int_equal(r->level, 2);
    append_s(e->log, "0 done\n");
    sample(e);
    assert_int_equal(e->seen[500], 1);
    snprintf(path, sizeof(path), "logtail/t/line/matches");
    assert_true(capture_get(&e->cap, path) == 4.0);
    assert_true(capture_get(&e->cap, "logtail/t/line/events_sent") == 4.0);
    snprintf(path, sizeof(path), "logfile/%s/lines", e->log);
    assert_true(capture_get(&e->cap, path) == 4.0);
    sample(e);
    assert_int_equal(events(e, "line"), 0);
}

static void logtail_logrotate_create(void **state)
{
    struct env *e = *state;
    char path[200];

    lines_probe(e, "start_at: beginning\n");
    write_lines(e, 10);
    sample(e);
    for (int round = 0; round < 3; round++) {
        write_lines(e, 7); /* still in the old file when it is renamed */
        run_logrotate(e, "create 0644");
        write_lines(e, 5); /* the new file */
        sample(e);
        write_lines(e, 2);
        sample(e);
    }
    for (int i = 0; i < 8; i++) {
        sample(e);
    }
    all_once(e);
    snprintf(path, sizeof(path), "logfile/%s/rotations", e->log);
    assert_true(capture_get(&e->cap, path) == 3.0);
}

static void logtail_copytruncate(void **state)
{
    struct env *e = *state;

    lines_probe(e, "start_at: beginning\n");
    write_lines(e, 10);
    sample(e);
    for (int round = 0; round < 3; round++) {
        write_lines(e, 6); /* read from the copy */
        run_logrotate(e, "copytruncate");
        write_lines(e, 4);
        sample(e);
        sample(e);
    }
    for (int i = 0; i < 8; i++) {
        sample(e);
    }
    all_once(e);
}

static void logtail_truncate_and_recreate(void **state)
{
    struct env *e = *state;
    char path[200];

    lines_probe(e, "start_at: beginning\n");
    write_lines(e, 5);
    sample(e);
    assert_int_equal(truncate(e->log, 0), 0);
    sample(e);
    write_lines(e, 3);
    sample(e);
    /* truncated and rewritten past the old offset between two samples */
    assert_int_equal(truncate(e->log, 0), 0);
    write_lines(e, 9);
    sample(e);
    /* deleted and re-created: the rest of the deleted file still arrives */
    write_lines(e, 4);
    assert_int_equal(unlink(e->log), 0);
    write_lines(e, 4);
    sample(e);
    /* deleted, one sample with no file, then re-created */
    write_lines(e, 2);
    assert_int_equal(unlink(e->log), 0);
    sample(e);
    write_lines(e, 3);
    for (int i = 0; i < 8; i++) {
        sample(e);
    }
    all_once(e);
    snprintf(path, sizeof(path), "logfile/%s/rotations", e->log);
    assert_true(capture_get(&e->cap, path) == 4.0);
}

static void logtail_oracle_multiline(void **state)
{
    struct env *e = *state;
    const char *fx = getenv("WP_FIXTURES");
    char src[512];
    char buf[4096];
    char *yaml = NULL;

    /* a copy of the sample alert log from a real site (shared/fixtures/oracle-alert.log) */
    snprintf(src, sizeof(src), "%s/logs/oracle-alert.log", fx != NULL ? fx : "tests/fixtures");
    FILE *fp = fopen(src, "rb");
    assert_non_null(fp);
    size_t n = fread(buf, 1, sizeof(buf), fp);
    fclose(fp);
    append(e->log, buf, n);

    yaml = wp_xasprintf("kind: logtail\nname: ora\npaths: [%s/*.log]\ncursor_file: %s\n"
                        "start_at: beginning\npreset: oracle_alert\n",
                        e->dir, e->cursor);
    assert_int_equal(new_probe(yaml, &e->p), 0);
    free(yaml);
    sample(e);
    /* the last record waits for the next start line or the timeout */
    assert_int_equal(events(e, "ora_eof"), 1);
    assert_int_equal(events(e, "ora_internal"), 1);
    assert_int_equal(events(e, "ora_tablespace"), 1);
    assert_int_equal(events(e, "ora_checkpoint"), 1);

    const struct cap_rec *r = event_of(e, "ora_internal");
    assert_string_equal(capture_field(r, "code"), "ORA-00600");
    assert_string_equal(capture_field(r, "arg"), "kdsgrp1");
    assert_int_equal(r->level, 3);
    assert_non_null(strstr(r->text, "2023-01-11T11:02:35.000001+08:00\nErrors in file "));
    assert_non_null(strstr(r->text, "orcl_ora_5948.trc:\nORA-00600: internal error"));
    r = event_of(e, "ora_tablespace");
    assert_string_equal(capture_field(r, "code"), "ORA-01653");
    assert_string_equal(capture_field(r, "tablespace"), "USERS");
    assert_int_equal(r->level, 2);
    r = event_of(e, "ora_checkpoint");
    assert_string_equal(r->text, "2023-01-11T10:59:44.000127+08:00\n"
                                 "Thread 1 cannot allocate new log, sequence 18232\n"
                                 "Checkpoint not complete\n"
                                 "  Current log# 2 seq# 18231 mem# 0: "
                                 "/u01/oradata/ORCL/redo02.log");
    r = event_of(e, "ora_eof");
    assert_string_equal(capture_field(r, "code"), "ORA-03113");

    /* a new entry that starts with the line after the timeout is one record */
    append_s(e->log, "2023-01-11T11:09:00.000000+08:00\nORA-07445: exception encountered: "
                     "core dump [kghfrf()+60] [SIGSEGV]\n");
    sample(e);
    assert_int_equal(events(e, "ora_internal"), 0);
    e->ts += 2000;
    sample(e);
    assert_int_equal(events(e, "ora_internal"), 1);
    r = event_of(e, "ora_internal");
    assert_string_equal(capture_field(r, "code"), "ORA-07445");
    assert_string_equal(capture_field(r, "arg"), "kghfrf()+60");
    char path[300];
    snprintf(path, sizeof(path), "logfile/%s/lines", e->log);
    assert_true(capture_get(&e->cap, path) == 18.0);
    assert_true(capture_get(&e->cap, "logtail/ora/ora_internal/matches") == 2.0);
}

static void logtail_gb18030(void **state)
{
    struct env *e = *state;
    const char *utf8 = "2024-05-01 数据库错误 ORA-01017 用户名/口令无效\n";
    char gb[256];
    char *in = (char *)(uintptr_t)utf8;
    char *outp = gb;
    size_t inleft = strlen(utf8), outleft = sizeof(gb);
    iconv_t cd = iconv_open("GB18030", "UTF-8");
    char *yaml = NULL;

    assert_true(cd != (iconv_t)-1);
    assert_true(iconv(cd, &in, &inleft, &outp, &outleft) != (size_t)-1);
    iconv_close(cd);
    size_t gblen = (size_t)(outp - gb);
    /* 数 is 0xca 0xfd in GB2312/GBK/GB18030 */
    assert_memory_equal(gb + 11, "\xca\xfd", 2);

    yaml = wp_xasprintf("kind: logtail\nname: gb\npaths: [%s]\ncursor_file: %s\n"
                        "encoding: gb18030\nstart_at: beginning\n"
                        "rules: [{name: dberr, pattern: '数据库错误 (?<code>ORA-\\d+)'}]\n",
                        e->log, e->cursor);
    assert_int_equal(new_probe(yaml, &e->p), 0);
    free(yaml);
    append(e->log, gb, gblen);
    append_s(e->log, "\x81\x30\x81\x30 ok \xff\xfe 数据库错误 X\n"); /* 4-byte and invalid */
    sample(e);
    assert_int_equal(events(e, "dberr"), 1);
    const struct cap_rec *r = event_of(e, "dberr");
    assert_string_equal(r->text, "2024-05-01 数据库错误 ORA-01017 用户名/口令无效");
    assert_string_equal(capture_field(r, "code"), "ORA-01017");
}

static void logtail_invalid_utf8_and_long_lines(void **state)
{
    struct env *e = *state;
    char *yaml = wp_xasprintf("kind: logtail\nname: u\npaths: [%s]\ncursor_file: %s\n"
                              "start_at: beginning\n"
                              "rules: [{name: err, pattern: 'ERROR'}]\n",
                              e->log, e->cursor);
    size_t big = 100 << 10;
    char *line = wp_xmalloc(big + 1);
    char path[300];

    assert_int_equal(new_probe(yaml, &e->p), 0);
    free(yaml);
    append_s(e->log, "ERROR bad \xc3\x28 and \xe9\xa1 and \xed\xa0\x80 end\n");
    memset(line, 'x', big);
    memcpy(line, "ERROR long", 10);
    line[big] = '\n';
    /* written in pieces over two samples: the cut must survive a partial line */
    append(e->log, line, big / 2);
    sample(e);
    assert_int_equal(events(e, "err"), 1);
    assert_string_equal(event_of(e, "err")->text,
                        "ERROR bad \xef\xbf\xbd( and \xef\xbf\xbd\xef\xbf\xbd and "
                        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd end");
    append(e->log, line + big / 2, big / 2 + 1);
    append_s(e->log, "ERROR after\n");
    sample(e);
    assert_int_equal(events(e, "err"), 2);
    const struct cap_rec *r = event_of(e, "err");
    assert_int_equal(strlen(r->text), 8192);
    assert_memory_equal(r->text, "ERROR longxxx", 13);
    assert_string_equal(capture_field(r, "truncated"), "1");
    assert_string_equal(e->cap.recs[e->cap.nrecs - 1].text, "ERROR after");
    assert_null(capture_field(&e->cap.recs[e->cap.nrecs - 1], "truncated"));
    snprintf(path, sizeof(path), "logfile/%s/cut_lines", e->log);
    assert_true(capture_get(&e->cap, path) == 1.0);
    snprintf(path, sizeof(path), "logfile/%s/lines", e->log);
    assert_true(capture_get(&e->cap, path) == 3.0);
    free(line);
}

static void logtail_rate_limit(void **state)
{
    struct env *e = *state;
    char *yaml = wp_xasprintf("kind: logtail\nname: r\npaths: [%s]\ncursor_file: %s\n"
                              "max_events_per_min: 5\n"
                              "rules: [{name: ora, pattern: 'ORA-(?<code>\\d+)', "
                              "severity: critical}]\n",
                              e->log, e->cursor);

    assert_int_equal(new_probe(yaml, &e->p), 0);
    free(yaml);
    e->ts = 1700000080000; /* 20 s before a minute starts */
    sample(e);
    for (int i = 0; i < 100; i++) {
        append_s(e->log, "ORA-00600 boom\n");
    }
    sample(e);
    assert_int_equal(events(e, "ora"), 5);
    assert_true(capture_get(&e->cap, "logtail/r/ora/matches") == 100.0);
    assert_true(capture_get(&e->cap, "logtail/r/ora/events_sent") == 5.0);
    assert_true(capture_get(&e->cap, "logtail/r/ora/events_held") == 95.0);
    append_s(e->log, "ORA-00600 boom\n");
    sample(e);
    assert_int_equal(events(e, "ora"), 0);
    e->ts += 20000; /* the next minute */
    append_s(e->log, "ORA-00600 boom\n");
    sample(e);
    /* the note on what was held back, then the new match */
    assert_int_equal(events(e, "ora"), 2);
    assert_string_equal(capture_field(&e->cap.recs[0], "held"), "96");
    assert_non_null(strstr(e->cap.recs[0].text, "96 more matches of rule ora held back"));
    assert_true(capture_get(&e->cap, "logtail/r/ora/matches") == 102.0);
    assert_true(capture_get(&e->cap, "logtail/r/ora/events_sent") == 6.0);
    assert_true(capture_get(&e->cap, "logtail/r/ora/events_held") == 96.0);
}

/* The probe goes away after committed(), unspooled rounds included, and a new one resumes. */
static void restart(struct env *e, const char *extra)
{
    wp_probe_free(e->p);
    e->p = NULL;
    lines_probe(e, extra);
}

static void logtail_cursor_restart(void **state)
{
    struct env *e = *state;
    int committed[NLINES_MAX];

    lines_probe(e, NULL);
    write_lines(e, 5); /* before the first sample: start_at end skips them */
    for (int k = 1; k < e->next; k++) {
        e->seen[k] = 1;
    }
    sample(e);
    write_lines(e, 5);
    sample(e);
    e->p->ops->committed(e->p, e->ts);
    memcpy(committed, e->seen, sizeof(committed));
    write_lines(e, 5);
    sample(e); /* not committed: the agent dies before the spool has it */
    write_lines(e, 2);
    memcpy(e->seen, committed, sizeof(committed));

    restart(e, NULL);
    write_lines(e, 3);
    sample(e);
    all_once(e);
    assert_true(capture_get(&e->cap, "logtail/t/line/matches") == 15.0);

    /* commit, append, rotate while the agent is down: the renamed file is found and drained */
    e->p->ops->committed(e->p, e->ts);
    memcpy(committed, e->seen, sizeof(committed));
    write_lines(e, 4);
    sample(e);
    memcpy(e->seen, committed, sizeof(committed));
    wp_probe_free(e->p);
    e->p = NULL;
    write_lines(e, 3);
    run_logrotate(e, "create 0644");
    write_lines(e, 3);
    lines_probe(e, NULL);
    sample(e);
    e->p->ops->committed(e->p, e->ts);
    all_once(e);
    assert_true(capture_get(&e->cap, "logtail/t/line/matches") == 25.0);

    /* copytruncate while the agent is down */
    write_lines(e, 2);
    wp_probe_free(e->p);
    e->p = NULL;
    run_logrotate(e, "copytruncate");
    write_lines(e, 2);
    lines_probe(e, NULL);
    for (int i = 0; i < 7; i++) {
        sample(e);
    }
    all_once(e);
    assert_true(capture_get(&e->cap, "logtail/t/line/matches") == 29.0);
}

static void logtail_unreadable_and_binary(void **state)
{
    struct env *e = *state;
    char dirpath[160], bin[160];
    char blob[512];
    char *yaml = NULL;

    snprintf(dirpath, sizeof(dirpath), "%s/adir.log", e->dir);
    snprintf(bin, sizeof(bin), "%s/blob.log", e->dir);
    assert_int_equal(mkdir(dirpath, 0755), 0);
    for (size_t i = 0; i < sizeof(blob); i++) {
        blob[i] = (char)(i % 32);
    }
    append(bin, blob, sizeof(blob));
    yaml = wp_xasprintf("kind: logtail\nname: b\npaths: ['%s/*.log']\ncursor_file: %s\n"
                        "start_at: beginning\nrules: [{name: any, pattern: 'x'}]\n",
                        e->dir, e->cursor);
    assert_int_equal(new_probe(yaml, &e->p), 0);
    free(yaml);
    sample(e);
    assert_int_equal(events(e, "logtail"), 2);
    const struct cap_rec *r = capture_rec(&e->cap, WP_REC_EVENT, dirpath);
    assert_non_null(r);
    assert_int_equal(r->level, 1);
    assert_non_null(strstr(r->text, "is unreadable"));
    r = capture_rec(&e->cap, WP_REC_EVENT, bin);
    assert_non_null(strstr(r->text, "looks binary"));
    for (int i = 0; i < 3; i++) {
        append(bin, blob, sizeof(blob));
        sample(e);
        assert_int_equal(e->cap.nrecs, 0);
    }
}

static void logtail_bad_config(void **state)
{
    struct env *e = *state;
    struct wp_probe *q = NULL;
    char *yaml = NULL;

    assert_true(new_probe("kind: logtail\npaths: [/tmp/x.log]\n", &q) < 0); /* no cursor_file */
    yaml = wp_xasprintf("kind: logtail\npaths: [/tmp/x.log]\ncursor_file: %s\n"
                        "rules: [{name: bad, pattern: 'ORA-(('}]\n",
                        e->cursor);
    assert_true(new_probe(yaml, &q) < 0);
    assert_null(q);
    free(yaml);
    yaml = wp_xasprintf("kind: logtail\npaths: [/tmp/x.log]\ncursor_file: %s\n"
                        "rules: [{name: 'a b', pattern: 'x'}]\n",
                        e->cursor);
    assert_true(new_probe(yaml, &q) < 0);
    free(yaml);
    yaml = wp_xasprintf("kind: logtail\npaths: [/tmp/x.log]\ncursor_file: %s\npreset: tomcat\n"
                        "start: '^\\d+'\nrules: [{name: a, pattern: 'x', literal: xy}]\n",
                        e->cursor);
    assert_int_equal(new_probe(yaml, &q), 0);
    free(yaml);
    wp_probe_free(q);
}

static void logtail_tomcat_stack_trace(void **state)
{
    struct env *e = *state;
    const char *text =
        "11-Jan-2023 10:58:01.123 INFO [main] org.apache.catalina.startup.Catalina.start ok\n"
        "11-Jan-2023 10:58:02.456 SEVERE [http-nio-8080-exec-3] "
        "org.apache.catalina.core.StandardWrapperValve.invoke Servlet.service() failed\n"
        "java.lang.OutOfMemoryError: Java heap space\n"
        "\tat java.util.Arrays.copyOf(Arrays.java:3332)\n"
        "\tat com.example.Ticket.load(Ticket.java:42)\n"
        "11-Jan-2023 10:58:03.000 INFO [main] next\n";
    char *yaml = wp_xasprintf("kind: logtail\nname: tc\npaths: [%s]\ncursor_file: %s\n"
                              "start_at: beginning\npreset: tomcat\n",
                              e->log, e->cursor);

    assert_int_equal(new_probe(yaml, &e->p), 0);
    free(yaml);
    append(e->log, text, strlen(text));
    sample(e);
    assert_int_equal(events(e, "tomcat_severe"), 1);
    assert_int_equal(events(e, "tomcat_oom"), 1);
    const struct cap_rec *r = event_of(e, "tomcat_oom");
    assert_string_equal(capture_field(r, "what"), "Java heap space");
    assert_non_null(strstr(r->text, "\n\tat com.example.Ticket.load(Ticket.java:42)"));
    r = event_of(e, "tomcat_severe");
    assert_string_equal(capture_field(r, "thread"), "http-nio-8080-exec-3");
}

/* optional: true: a missing file gives no series and no cursor file; once it appears it is
 * read from its first line, and the series start. Without optional the series come at once. */
static void logtail_optional_missing(void **state)
{
    struct env *e = *state;
    struct stat st;

    lines_probe(e, "optional: true\n");
    sample(e);
    sample(e);
    assert_int_equal(e->cap.n, 0); /* no logtail/t/line, no logfile/<path> */
    assert_int_equal(e->cap.nrecs, 0);
    e->p->ops->committed(e->p, e->ts);
    assert_int_equal(stat(e->cursor, &st), -1); /* nothing to remember yet */
    write_lines(e, 3);
    sample(e);
    assert_true(capture_get(&e->cap, "logtail/t/line/matches") == 3.0);
    assert_int_equal(capture_count(&e->cap, "logfile"), 1);
    e->p->ops->committed(e->p, e->ts);
    assert_int_equal(stat(e->cursor, &st), 0);
    /* the file goes away again: the probe stays active, its counters stay */
    assert_int_equal(unlink(e->log), 0);
    sample(e);
    assert_true(capture_get(&e->cap, "logtail/t/line/matches") == 3.0);
    all_once(e);
    wp_probe_free(e->p);
    e->p = NULL;

    /* the same without optional: the rule series exist while the file is missing */
    assert_int_equal(unlink(e->cursor), 0);
    lines_probe(e, NULL);
    sample(e);
    assert_true(capture_get(&e->cap, "logtail/t/line/matches") == 0.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(logtail_appends, setup, teardown),
        cmocka_unit_test_setup_teardown(logtail_logrotate_create, setup, teardown),
        cmocka_unit_test_setup_teardown(logtail_copytruncate, setup, teardown),
        cmocka_unit_test_setup_teardown(logtail_truncate_and_recreate, setup, teardown),
        cmocka_unit_test_setup_teardown(logtail_oracle_multiline, setup, teardown),
        cmocka_unit_test_setup_teardown(logtail_gb18030, setup, teardown),
        cmocka_unit_test_setup_teardown(logtail_invalid_utf8_and_long_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(logtail_rate_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(logtail_cursor_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(logtail_unreadable_and_binary, setup, teardown),
        cmocka_unit_test_setup_teardown(logtail_bad_config, setup, teardown),
        cmocka_unit_test_setup_teardown(logtail_tomcat_stack_trace, setup, teardown),
        cmocka_unit_test_setup_teardown(logtail_optional_missing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
