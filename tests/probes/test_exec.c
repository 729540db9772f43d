/* SPDX-License-Identifier: Apache-2.0 */
/* The exec probe with Debian's monitoring-plugins and the test plugins in fixtures/plugins. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "capture.h"
#include "probe.h"
#include "probe_fixture.h"
#include "wp/clock.h"
#include "wp/conf.h"
#include "wp/err.h"
#include "wp/mem.h"

extern const struct wp_probe_ops wp_probe_exec;

#define T0      1000000
#define NAGIOS  "/usr/lib/nagios/plugins"
#define IN_TEST "exec.yaml"

struct env {
    char dir[64];
    char *plugins; /* $WP_FIXTURES/plugins */
    struct capture cap;
    struct wp_probe *p;
    struct wp_conf_err err;
    char logpath[160];
    int saved_stderr;
};

/* ---- helpers ---- */

static int setup(void **state)
{
    struct env *e = wp_xcalloc(1, sizeof(*e));
    const char *fix = getenv("WP_FIXTURES");
    static const char *const scripts[] = {"hang.sh",     "leftover.sh", "flood.sh", "exit7.sh",
                                          "killself.sh", "stderr.sh",   "env.sh",   "conc.sh",
                                          "perf.sh",     "many.sh"};

    assert_non_null(fix);
    e->plugins = wp_xasprintf("%s/plugins", fix);
    for (size_t i = 0; i < sizeof(scripts) / sizeof(scripts[0]); i++) {
        char *path = wp_xasprintf("%s/%s", e->plugins, scripts[i]);
        if (access(path, X_OK) != 0) {
            print_error("%s is not executable (git lost the mode? chmod 755 it)\n", path);
        }
        assert_int_equal(access(path, X_OK), 0);
        free(path);
    }
    snprintf(e->dir, sizeof(e->dir), "/tmp/wp-exec-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    snprintf(e->logpath, sizeof(e->logpath), "%s/log", e->dir);
    e->saved_stderr = -1;
    capture_init(&e->cap, T0, 60);
    *state = e;
    return 0;
}

static void log_end(struct env *e);

static int teardown(void **state)
{
    struct env *e = *state;
    char cmd[128];

    log_end(e);
    wp_probe_free(e->p);
    capture_cleanup(&e->cap);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
    assert_int_equal(system(cmd), 0);
    free(e->plugins);
    free(e);
    return 0;
}

static void log_begin(struct env *e)
{
    fixture_stderr_begin(e->logpath, &e->saved_stderr);
}

static void log_end(struct env *e)
{
    fixture_stderr_end(&e->saved_stderr);
}

static char *log_text(struct env *e)
{
    char *s = NULL;

    log_end(e);
    s = fixture_read_file(e->logpath, NULL);
    return s;
}

/* Create the probe from YAML text; returns wp_probe_new()'s code (err in e->err). */
static int make(struct env *e, const char *yaml)
{
    return fixture_probe_remake(&wp_probe_exec, IN_TEST, yaml, &e->err, &e->p);
}

static void make_ok(struct env *e, const char *yaml)
{
    int rc = make(e, yaml);

    if (rc != 0) {
        print_error("config: %s\n", e->err.msg);
    }
    assert_int_equal(rc, 0);
    assert_non_null(e->p);
}

static void sample(struct env *e)
{
    capture_clear(&e->cap);
    assert_int_equal(e->p->ops->sample(e->p, &e->cap.sink), 0);
    assert_int_equal(e->cap.bad, 0);
}

static const struct cap_rec *check(const struct env *e, const char *name)
{
    const struct cap_rec *r = capture_rec(&e->cap, WP_REC_CHECK, name);

    if (r == NULL) {
        print_error("no check result for %s\n", name);
    }
    assert_non_null(r);
    return r;
}

static void expect_val(const struct capture *c, const char *path, double want)
{
    double v = capture_get(c, path);

    if (fabs(v - want) > 1e-9 * (fabs(want) > 1 ? fabs(want) : 1)) {
        print_error("%s: got %g, want %g\n", path, v, want);
    }
    assert_true(fabs(v - want) <= 1e-9 * (fabs(want) > 1 ? fabs(want) : 1));
}

static void expect_nan(const struct capture *c, const char *path)
{
    double v = capture_get(c, path);

    if (!isnan(v)) {
        print_error("%s: got %g, want NaN\n", path, v);
    }
    assert_true(isnan(v));
}

static void expect_absent(const struct capture *c, const char *group, const char *inst)
{
    if (capture_row(c, group, inst) != NULL) {
        print_error("%s %s: present, want absent\n", group, inst);
    }
    assert_null(capture_row(c, group, inst));
}

/* Live (not zombie) processes whose process group is pgid. */
static int group_alive(pid_t pgid)
{
    DIR *d = opendir("/proc");
    struct dirent *de = NULL;
    int n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        char path[300];
        char buf[512];
        FILE *fp = NULL;
        char *rp = NULL;
        char st = 0;
        long ppid = 0;
        long pgrp = 0;

        if (de->d_name[0] < '0' || de->d_name[0] > '9') {
            continue;
        }
        snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
        fp = fopen(path, "r");
        if (fp == NULL) {
            continue;
        }
        if (fgets(buf, sizeof(buf), fp) != NULL) {
            rp = strrchr(buf, ')');
            if (rp != NULL && sscanf(rp + 1, " %c %ld %ld", &st, &ppid, &pgrp) == 3 &&
                pgrp == (long)pgid && st != 'Z' && st != 'X') {
                n++;
            }
        }
        fclose(fp);
    }
    closedir(d);
    return n;
}

/* Wait up to 2 s for the group to be gone (SIGKILL is delivered asynchronously). */
static int group_gone(pid_t pgid)
{
    for (int i = 0; i < 200; i++) {
        if (group_alive(pgid) == 0) {
            return 1;
        }
        usleep(10000);
    }
    return 0;
}

/* The two pids a hang/leftover plugin wrote: its own (the group) and its child's. */
static void read_pids(const char *path, pid_t *leader, pid_t *child)
{
    char *s = fixture_read_file(path, NULL);
    long a = 0;
    long b = 0;

    assert_non_null(s);
    assert_int_equal(sscanf(s, "%ld %ld", &a, &b), 2);
    free(s);
    *leader = (pid_t)a;
    *child = (pid_t)b;
}

/* ---- real monitoring-plugins ---- */

static void exec_check_dummy_statuses(void **state)
{
    struct env *e = *state;
    char yaml[2048];
    static const char *const want[] = {"OK: all good", "WARNING: all good", "CRITICAL: all good",
                                       "UNKNOWN: all good"};

    snprintf(yaml, sizeof(yaml),
             "kind: exec\n"
             "interval: 60s\n"
             "checks:\n"
             "  - {name: d0, command: [%s/check_dummy, '0', all good]}\n"
             "  - {name: d1, command: [%s/check_dummy, '1', all good]}\n"
             "  - {name: d2, command: [%s/check_dummy, '2', all good]}\n"
             "  - {name: d3, command: [%s/check_dummy, '3', all good]}\n",
             NAGIOS, NAGIOS, NAGIOS, NAGIOS);
    make_ok(e, yaml);
    sample(e);
    assert_int_equal(e->cap.nrecs, 4);
    for (unsigned i = 0; i < 4; i++) {
        char name[8];
        char path[64];
        snprintf(name, sizeof(name), "d%u", i);
        const struct cap_rec *r = check(e, name);
        assert_int_equal(r->level, i);
        assert_string_equal(r->text, want[i]);
        assert_int_equal(r->ts_ms, T0);
        snprintf(path, sizeof(path), "exec/%s/status", name);
        expect_val(&e->cap, path, i);
        snprintf(path, sizeof(path), "exec/%s/timed_out", name);
        expect_val(&e->cap, path, 0);
        snprintf(path, sizeof(path), "exec/%s/cut", name);
        expect_val(&e->cap, path, 0);
        snprintf(path, sizeof(path), "exec/%s/output_bytes", name);
        expect_val(&e->cap, path, strlen(want[i]) + 1);
        snprintf(path, sizeof(path), "exec/%s/duration_s", name);
        assert_true(capture_get(&e->cap, path) >= 0 && capture_get(&e->cap, path) < 5);
    }
    assert_int_equal(capture_count(&e->cap, "perf"), 0);
}

static void exec_check_disk_load_procs(void **state)
{
    struct env *e = *state;
    char yaml[2048];

    snprintf(yaml, sizeof(yaml),
             "kind: exec\n"
             "interval: 60s\n"
             "checks:\n"
             "  - name: disk_root\n"
             "    command: [%s/check_disk, -w, '1%%', -c, '0%%', -p, /]\n"
             "  - name: load\n"
             "    command: [%s/check_load, -w, '100,100,100', -c, '200,200,200']\n"
             "  - name: procs\n"
             "    command: [%s/check_procs, -c, '1:']\n",
             NAGIOS, NAGIOS, NAGIOS);
    make_ok(e, yaml);
    sample(e);

    const struct cap_rec *disk = check(e, "disk_root");
    assert_true(disk->level == WP_CHECK_OK || disk->level == WP_CHECK_WARNING);
    assert_non_null(strstr(disk->text, "DISK"));
    assert_null(strchr(disk->text, '|'));
    assert_true(capture_get(&e->cap, "perf/disk_root///value") > 0);
    assert_true(capture_get(&e->cap, "perf/disk_root///max") >=
                capture_get(&e->cap, "perf/disk_root///value"));
    expect_val(&e->cap, "perf/disk_root///min", 0);

    const struct cap_rec *load = check(e, "load");
    assert_int_equal(load->level, WP_CHECK_OK);
    assert_non_null(strstr(load->text, "LOAD OK"));
    assert_true(capture_get(&e->cap, "perf/load/load1/value") >= 0);
    assert_true(capture_get(&e->cap, "perf/load/load5/value") >= 0);
    assert_true(capture_get(&e->cap, "perf/load/load15/value") >= 0);
    expect_val(&e->cap, "perf/load/load1/warn", 100);
    expect_val(&e->cap, "perf/load/load15/crit", 200);
    expect_val(&e->cap, "perf/load/load5/min", 0);
    expect_nan(&e->cap, "perf/load/load5/max");
    assert_int_equal(capture_count(&e->cap, "perf"), 3 + 1 + 1);

    const struct cap_rec *procs = check(e, "procs");
    assert_int_equal(procs->level, WP_CHECK_OK);
    assert_non_null(strstr(procs->text, "PROCS OK"));
    assert_true(capture_get(&e->cap, "perf/procs/procs/value") >= 1);
    expect_nan(&e->cap, "perf/procs/procs/crit"); /* "1:" is a range */
    print_message("%s | %s | %s\n", disk->text, load->text, procs->text);
}

/* ---- timeouts, process groups, output limits ---- */

static void exec_timeout_kills_the_group(void **state)
{
    struct env *e = *state;
    char yaml[2048];
    char pidfile[128];
    pid_t leader = 0;
    pid_t child = 0;
    int64_t t0 = 0;
    int64_t dt = 0;

    snprintf(pidfile, sizeof(pidfile), "%s/hang.pids", e->dir);
    snprintf(yaml, sizeof(yaml),
             "kind: exec\n"
             "checks:\n"
             "  - {name: hang, timeout: 1s, command: [%s/hang.sh, %s]}\n",
             e->plugins, pidfile);
    make_ok(e, yaml);
    log_begin(e);
    t0 = wp_clock_mono_ms();
    sample(e);
    dt = wp_clock_mono_ms() - t0;
    char *log = log_text(e);
    assert_non_null(strstr(log, "WARN probe: exec:exec: check hang: UNKNOWN, timed out after 1s"));
    assert_null(strstr(log, "hang.sh")); /* the command line is never logged */
    free(log);
    assert_true(dt >= 1000 && dt < 3000);

    const struct cap_rec *r = check(e, "hang");
    assert_int_equal(r->level, WP_CHECK_UNKNOWN);
    assert_string_equal(r->text, "still working (timed out after 1s, killed)");
    expect_val(&e->cap, "exec/hang/timed_out", 1);
    expect_val(&e->cap, "exec/hang/status", 3);
    read_pids(pidfile, &leader, &child);
    assert_true(leader > 1 && child > 1);
    assert_true(group_gone(leader)); /* the background sleep too */
    errno = 0;
    assert_int_equal(waitpid(leader, NULL, WNOHANG), -1); /* reaped: no zombie of ours */
    assert_int_equal(errno, ECHILD);
}

static void exec_sigterm_ignored_gets_sigkill(void **state)
{
    struct env *e = *state;
    char yaml[2048];
    char pidfile[128];
    pid_t leader = 0;
    pid_t child = 0;
    int64_t t0 = 0;
    int64_t dt = 0;

    snprintf(pidfile, sizeof(pidfile), "%s/stubborn.pids", e->dir);
    snprintf(yaml, sizeof(yaml),
             "kind: exec\n"
             "checks:\n"
             "  - {name: stubborn, timeout: 300ms, command: [%s/hang.sh, %s, ignore-term]}\n",
             e->plugins, pidfile);
    make_ok(e, yaml);
    t0 = wp_clock_mono_ms();
    sample(e);
    dt = wp_clock_mono_ms() - t0;
    assert_true(dt >= 1300 && dt < 3000); /* timeout + 1 s grace before SIGKILL */
    const struct cap_rec *r = check(e, "stubborn");
    assert_int_equal(r->level, WP_CHECK_UNKNOWN);
    assert_string_equal(r->text, "still working (timed out after 300ms, killed)");
    read_pids(pidfile, &leader, &child);
    assert_true(group_gone(leader));
}

static void exec_exited_plugin_leaves_no_process(void **state)
{
    struct env *e = *state;
    char yaml[2048];
    char pidfile[128];
    pid_t leader = 0;
    pid_t child = 0;
    int64_t t0 = 0;

    snprintf(pidfile, sizeof(pidfile), "%s/left.pids", e->dir);
    snprintf(yaml, sizeof(yaml),
             "kind: exec\n"
             "checks:\n"
             "  - {name: left, timeout: 5s, command: [%s/leftover.sh, %s]}\n",
             e->plugins, pidfile);
    make_ok(e, yaml);
    t0 = wp_clock_mono_ms();
    sample(e);
    /* the child holds the pipe: read on for a moment, then the group is killed */
    assert_true(wp_clock_mono_ms() - t0 < 2000);
    const struct cap_rec *r = check(e, "left");
    assert_int_equal(r->level, WP_CHECK_OK);
    assert_string_equal(r->text, "OK left a child behind");
    expect_val(&e->cap, "perf/left/left/value", 1);
    expect_val(&e->cap, "exec/left/timed_out", 0);
    read_pids(pidfile, &leader, &child);
    assert_true(group_gone(leader));
}

static void exec_output_cut_at_64k(void **state)
{
    struct env *e = *state;
    char yaml[2048];

    snprintf(yaml, sizeof(yaml),
             "kind: exec\n"
             "checks:\n"
             "  - {name: flood, timeout: 10s, command: [%s/flood.sh]}\n",
             e->plugins);
    make_ok(e, yaml);
    sample(e);
    const struct cap_rec *r = check(e, "flood");
    assert_int_equal(r->level, WP_CHECK_OK); /* the plugin's verdict stands */
    assert_string_equal(r->text, "OK flood (output cut at 64 KiB)");
    expect_val(&e->cap, "exec/flood/cut", 1);
    expect_val(&e->cap, "exec/flood/timed_out", 0);
    expect_val(&e->cap, "exec/flood/output_bytes", strlen("OK flood|lines=65536\n") + 1048576);
    expect_val(&e->cap, "perf/flood/lines/value", 65536);
}

static void exec_bad_exits(void **state)
{
    struct env *e = *state;
    char yaml[2048];

    snprintf(yaml, sizeof(yaml),
             "kind: exec\n"
             "concurrency: 3\n"
             "checks:\n"
             "  - {name: seven, command: [%s/exit7.sh]}\n"
             "  - {name: killed, command: [%s/killself.sh]}\n"
             "  - {name: err, command: [%s/stderr.sh]}\n",
             e->plugins, e->plugins, e->plugins);
    make_ok(e, yaml);
    sample(e);
    const struct cap_rec *r = check(e, "seven");
    assert_int_equal(r->level, WP_CHECK_UNKNOWN);
    assert_string_equal(r->text, "weird plugin (exit status 7)");
    expect_val(&e->cap, "exec/seven/status", 3);
    expect_val(&e->cap, "perf/seven/x/value", 1);
    r = check(e, "killed");
    assert_int_equal(r->level, WP_CHECK_UNKNOWN);
    assert_string_equal(r->text, "about to die (killed by signal 9)");
    r = check(e, "err");
    assert_int_equal(r->level, WP_CHECK_CRITICAL);
    assert_string_equal(r->text, "CRITICAL: said on stderr");
}

static void exec_spawn_failure_is_unknown(void **state)
{
    struct env *e = *state;
    char yaml[2048];
    char path[128];
    FILE *fp = NULL;

    snprintf(path, sizeof(path), "%s/vanishing", e->dir);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("#!/bin/sh\necho OK\n", fp);
    fclose(fp);
    assert_int_equal(chmod(path, 0755), 0);
    snprintf(yaml, sizeof(yaml),
             "kind: exec\n"
             "checks:\n"
             "  - {name: gone, command: [%s]}\n",
             path);
    make_ok(e, yaml);
    sample(e);
    assert_int_equal(check(e, "gone")->level, WP_CHECK_OK);
    assert_int_equal(unlink(path), 0);
    log_begin(e);
    sample(e);
    char *log = log_text(e);
    assert_non_null(strstr(log, "check gone: UNKNOWN, cannot run its command"));
    free(log);
    const struct cap_rec *r = check(e, "gone");
    assert_int_equal(r->level, WP_CHECK_UNKNOWN);
    assert_non_null(strstr(r->text, "cannot run "));
    assert_non_null(strstr(r->text, "No such file"));
    expect_val(&e->cap, "exec/gone/status", 3);
}

static void exec_environment_and_fds(void **state)
{
    struct env *e = *state;
    char yaml[2048];
    int leak = open("/dev/null", O_RDONLY); /* no O_CLOEXEC on purpose */

    assert_true(leak > 2);
    snprintf(yaml, sizeof(yaml),
             "kind: exec\n"
             "checks:\n"
             "  - {name: plain, command: [%s/env.sh, '%d']}\n"
             "  - name: custom\n"
             "    command: [%s/env.sh, '%d']\n"
             "    env: {FOO: 'a b', LANG: C}\n",
             e->plugins, leak, e->plugins, leak);
    make_ok(e, yaml);
    sample(e);
    close(leak);
    assert_string_equal(check(e, "plain")->text, "OK path=/usr/bin:/bin lang=C.UTF-8 foo=unset "
                                                 "cwd=/ stdin=/dev/null leak=no");
    assert_string_equal(check(e, "custom")->text,
                        "OK path=/usr/bin:/bin lang=C foo=a b cwd=/ stdin=/dev/null leak=no");
}

/* ---- perf data ---- */

static void exec_perf_data_parsing(void **state)
{
    struct env *e = *state;
    struct capture *c = &e->cap;
    char yaml[2048];

    snprintf(yaml, sizeof(yaml),
             "kind: exec\n"
             "checks:\n"
             "  - {name: tricky, command: [%s/perf.sh]}\n"
             "  - {name: many, command: [%s/many.sh]}\n",
             e->plugins, e->plugins);
    make_ok(e, yaml);
    sample(e);
    const struct cap_rec *r = check(e, "tricky");
    assert_int_equal(r->level, WP_CHECK_WARNING);
    assert_string_equal(r->text, "WARNING - tricky perf data");

    /* quoted label with a blank, ms converted to seconds, all five fields */
    expect_val(c, "perf/tricky/with space/value", 0.005);
    expect_val(c, "perf/tricky/with space/warn", 0.010);
    expect_val(c, "perf/tricky/with space/crit", 0.020);
    expect_val(c, "perf/tricky/with space/min", 0);
    expect_val(c, "perf/tricky/with space/max", 0.1);
    /* missing fields are NaN */
    expect_val(c, "perf/tricky/plain/value", 3);
    expect_nan(c, "perf/tricky/plain/warn");
    expect_nan(c, "perf/tricky/plain/max");
    expect_val(c, "perf/tricky/pct/value", 50);
    expect_val(c, "perf/tricky/pct/crit", 90);
    expect_nan(c, "perf/tricky/pct/min");
    expect_val(c, "perf/tricky/disk/value", 2048); /* KB = 1024 B */
    expect_val(c, "perf/tricky/disk/min", 0);
    expect_nan(c, "perf/tricky/disk/max");
    expect_val(c, "perf/tricky/it's/value", 1); /* '' is a quote */
    expect_val(c, "perf/tricky/neg/value", -1500);
    /* malformed items are skipped, not guessed at */
    expect_absent(c, "perf", "tricky/bad");
    expect_absent(c, "perf", "tricky/garbage");
    expect_absent(c, "perf", "tricky/");
    expect_absent(c, "perf", "tricky/temp"); /* unknown unit */
    expect_absent(c, "perf", "tricky/over"); /* six fields */
    expect_absent(c, "perf", "tricky/a");    /* long output before the '|' line */
    /* long output: after '|' on the first line with one, and every line after it */
    expect_val(c, "perf/tricky/second/value", 1.5);
    expect_nan(c, "perf/tricky/second/warn"); /* ranges have no one number */
    expect_nan(c, "perf/tricky/second/crit");
    expect_val(c, "perf/tricky/hits/value", 10);
    expect_val(c, "perf/tricky/big/value", 1048576);
    expect_val(c, "perf/tricky/big/max", 2097152);
    expect_absent(c, "perf", "tricky/bigu");  /* max with a unit */
    expect_nan(c, "perf/tricky/third/value"); /* U */
    expect_val(c, "perf/tricky/third/warn", 5);
    expect_val(c, "perf/tricky/third/min", 0);
    expect_val(c, "perf/tricky/dup/value", 1); /* the first of two */
    expect_val(c, "perf/tricky/mu/value", 0.00025);
    expect_val(c, "perf/tricky/sp ace/value", 7);
    expect_nan(c, "perf/tricky/sp ace/warn");
    expect_val(c, "perf/tricky/range/value", 1);
    expect_nan(c, "perf/tricky/range/crit");
    expect_val(c, "perf/tricky/tab/value", 1);
    expect_val(c, "perf/tricky/after/value", 2);
    expect_absent(c, "perf", "tricky/open"); /* unterminated quote ends the line */
    expect_absent(c, "perf", "tricky/never");
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++) {
        n += strcmp(c->rows[i].group, "perf") == 0 && strncmp(c->rows[i].inst, "tricky/", 7) == 0;
    }
    assert_int_equal(n, 16);

    /* at most 64 items per check */
    assert_string_equal(check(e, "many")->text, "OK many");
    expect_val(c, "perf/many/p0/value", 0);
    expect_val(c, "perf/many/p63/value", 63);
    expect_absent(c, "perf", "many/p64");
    n = 0;
    for (size_t i = 0; i < c->n; i++) {
        n += strcmp(c->rows[i].group, "perf") == 0 && strncmp(c->rows[i].inst, "many/", 5) == 0;
    }
    assert_int_equal(n, 64);
}

/* ---- concurrency ---- */

/* The most "+" lines without their "-" at any point of the file. */
static int max_running(const char *path)
{
    char *s = fixture_read_file(path, NULL);
    int cur = 0;
    int max = 0;

    assert_non_null(s);
    for (char *l = strtok(s, "\n"); l != NULL; l = strtok(NULL, "\n")) {
        cur += l[0] == '+' ? 1 : -1;
        max = cur > max ? cur : max;
    }
    free(s);
    assert_int_equal(cur, 0);
    return max;
}

static void conc_yaml(const struct env *e, char *yaml, size_t len, int conc, int n,
                      const char *file, const char *secs)
{
    size_t off = (size_t)snprintf(yaml, len, "kind: exec\nconcurrency: %d\nchecks:\n", conc);

    for (int i = 0; i < n; i++) {
        off += (size_t)snprintf(yaml + off, len - off,
                                "  - {name: c%d, command: [%s/conc.sh, %s, '%s']}\n", i, e->plugins,
                                file, secs);
    }
}

static void exec_concurrency_limit(void **state)
{
    struct env *e = *state;
    char yaml[4096];
    char file[128];
    int64_t t0 = 0;
    int64_t dt = 0;

    /* 4 checks of 1 s at concurrency 4: all at once */
    snprintf(file, sizeof(file), "%s/c4", e->dir);
    conc_yaml(e, yaml, sizeof(yaml), 4, 4, file, "1");
    make_ok(e, yaml);
    t0 = wp_clock_mono_ms();
    sample(e);
    dt = wp_clock_mono_ms() - t0;
    assert_int_equal(max_running(file), 4);
    assert_true(dt < 3500);
    for (int i = 0; i < 4; i++) {
        char name[8];
        snprintf(name, sizeof(name), "c%d", i);
        assert_string_equal(check(e, name)->text, "OK slept 1");
    }

    /* 5 checks at concurrency 2: never more than 2 */
    snprintf(file, sizeof(file), "%s/c2", e->dir);
    conc_yaml(e, yaml, sizeof(yaml), 2, 5, file, "0.2");
    make_ok(e, yaml);
    sample(e);
    assert_int_equal(max_running(file), 2);
    assert_int_equal(e->cap.nrecs, 5);

    /* concurrency 1: one after the other */
    snprintf(file, sizeof(file), "%s/c1", e->dir);
    conc_yaml(e, yaml, sizeof(yaml), 1, 3, file, "0.1");
    make_ok(e, yaml);
    sample(e);
    assert_int_equal(max_running(file), 1);
    assert_int_equal(e->cap.nrecs, 3);
}

/* ---- config ---- */

/* make() must fail with a message that starts with prefix and contains what. */
static void expect_conf_error(struct env *e, const char *yaml, const char *prefix, const char *what)
{
    int rc = make(e, yaml);

    if (rc != WP_ECONFIG || strncmp(e->err.msg, prefix, strlen(prefix)) != 0 ||
        strstr(e->err.msg, what) == NULL) {
        print_error("rc %d, message: %s\nwant: %s...%s\n", rc, e->err.msg, prefix, what);
    }
    assert_int_equal(rc, WP_ECONFIG);
    assert_null(e->p);
    assert_memory_equal(e->err.msg, prefix, strlen(prefix));
    assert_non_null(strstr(e->err.msg, what));
}

static void exec_config_errors(void **state)
{
    struct env *e = *state;
    char path[128];
    char yaml[512];
    FILE *fp = NULL;

    expect_conf_error(e,
                      "kind: exec\n"
                      "checks:\n"
                      "  - name: rel\n"
                      "    command: [check_load, -w, '1,1,1']\n",
                      "exec.yaml:4:15: ", "checks[0].command[0]: expected an absolute path");
    expect_conf_error(e,
                      "kind: exec\n"
                      "checks:\n"
                      "  - {name: ok, command: [" NAGIOS "/check_dummy, '0']}\n"
                      "  - name: missing\n"
                      "    command:\n"
                      "      - /nonexistent/check_nothing\n",
                      "exec.yaml:6:9: ",
                      "checks[1].command[0]: /nonexistent/check_nothing: No "
                      "such file or directory");
    expect_conf_error(e,
                      "kind: exec\n"
                      "checks:\n"
                      "  - name: empty\n"
                      "    command: []\n",
                      "exec.yaml:4:14: ", "checks[0].command: expected an argv list");
    expect_conf_error(e,
                      "kind: exec\n"
                      "checks:\n"
                      "  - name: shell\n"
                      "    command: " NAGIOS "/check_load -w 1,1,1\n",
                      "exec.yaml:4:14: ", "(no shell runs), got a single string");
    snprintf(path, sizeof(path), "%s/noexec", e->dir);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("#!/bin/sh\necho OK\n", fp);
    fclose(fp);
    assert_int_equal(chmod(path, 0644), 0);
    snprintf(yaml, sizeof(yaml),
             "kind: exec\n"
             "checks:\n"
             "  - {name: noexec, command: [%s]}\n",
             path);
    expect_conf_error(e, yaml, "exec.yaml:3:30: ", "/noexec: not an executable file");
    expect_conf_error(e,
                      "kind: exec\n"
                      "checks:\n"
                      "  - {name: dir, command: [/usr/bin]}\n",
                      "exec.yaml:3:27: ", "/usr/bin: not an executable file");
    expect_conf_error(e,
                      "kind: exec\n"
                      "checks:\n"
                      "  - {name: a, command: [" NAGIOS "/check_dummy, '0']}\n"
                      "  - {name: a, command: [" NAGIOS "/check_dummy, '1']}\n",
                      "exec.yaml:4:12: ", "\"a\" is used by checks[0] already");
    expect_conf_error(e,
                      "kind: exec\n"
                      "checks:\n"
                      "  - {name: 'a/b', command: [" NAGIOS "/check_dummy, '0']}\n",
                      "exec.yaml:3:12: ", "checks[0].name: expected 1 to 64 letters");
    expect_conf_error(e,
                      "kind: exec\n"
                      "checks:\n"
                      "  - {name: a, comand: [" NAGIOS "/check_dummy, '0']}\n",
                      "exec.yaml:3:15: ", "unknown key \"comand\"");
    expect_conf_error(e,
                      "kind: exec\n"
                      "checks:\n"
                      "  - {command: [" NAGIOS "/check_dummy, '0']}\n",
                      "exec.yaml:3:5: ", "checks[0].name: required key is missing");
    expect_conf_error(e, "kind: exec\nchecks: []\n",
                      "exec.yaml:2:9: ", "checks: expected a non-empty list");
    expect_conf_error(e, "kind: exec\ntimeout: 10s\n",
                      "exec.yaml:1:1: ", "checks: required key is missing");
    expect_conf_error(e,
                      "kind: exec\n"
                      "checks:\n"
                      "  - {name: a, timeout: 1ms, command: [" NAGIOS "/check_dummy, '0']}\n",
                      "exec.yaml:3:24: ", "checks[0].timeout");
    expect_conf_error(e,
                      "kind: exec\n"
                      "concurrency: 0\n"
                      "checks:\n"
                      "  - {name: a, command: [" NAGIOS "/check_dummy, '0']}\n",
                      "exec.yaml:2:14: ", "concurrency");
}

static void exec_secrets_not_logged(void **state)
{
    struct env *e = *state;

    make_ok(e,
            "kind: exec\n"
            "checks:\n"
            "  - {name: secret, command: [" NAGIOS "/check_dummy, '2', '--password=hunter2']}\n");
    wp_log_set_level(WP_LOG_DEBUG);
    log_begin(e);
    sample(e);
    sample(e);
    char *log = log_text(e);
    wp_log_set_level(WP_LOG_INFO);
    assert_non_null(strstr(log, "INFO probe: exec:exec: check secret: CRITICAL (exit status 2)"));
    assert_int_equal(strstr(strstr(log, "check secret: CRITICAL") + 1, "check secret: CRITICAL"),
                     NULL); /* logged on a change only */
    assert_null(strstr(log, "hunter2"));
    assert_null(strstr(log, "check_dummy"));
    free(log);
    assert_string_equal(check(e, "secret")->text, "CRITICAL: --password=hunter2");
}

static void exec_option_table(void **state)
{
    const struct wp_opt *o = wp_probe_exec.opts;
    size_t n = 0;

    (void)state;
    for (; o[n].type != WP_OPT_END; n++) {
        assert_true(o[n].offset < wp_probe_exec.ctx_size);
    }
    assert_int_equal(n, 3);
    assert_int_equal(wp_probe_exec.flags & WP_PROBE_BLOCKING, WP_PROBE_BLOCKING);
    assert_string_equal(wp_probe_exec.name, "exec");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(exec_check_dummy_statuses, setup, teardown),
        cmocka_unit_test_setup_teardown(exec_check_disk_load_procs, setup, teardown),
        cmocka_unit_test_setup_teardown(exec_timeout_kills_the_group, setup, teardown),
        cmocka_unit_test_setup_teardown(exec_sigterm_ignored_gets_sigkill, setup, teardown),
        cmocka_unit_test_setup_teardown(exec_exited_plugin_leaves_no_process, setup, teardown),
        cmocka_unit_test_setup_teardown(exec_output_cut_at_64k, setup, teardown),
        cmocka_unit_test_setup_teardown(exec_bad_exits, setup, teardown),
        cmocka_unit_test_setup_teardown(exec_spawn_failure_is_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(exec_environment_and_fds, setup, teardown),
        cmocka_unit_test_setup_teardown(exec_perf_data_parsing, setup, teardown),
        cmocka_unit_test_setup_teardown(exec_concurrency_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(exec_config_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(exec_secrets_not_logged, setup, teardown),
        cmocka_unit_test(exec_option_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
