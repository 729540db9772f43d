/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of probes: start a peer program as a child that dies with the test, build a probe from
 * YAML text that may be refused, read files, capture the log, and assert a captured check
 * result. Include after cmocka.h. */
#ifndef WP_TESTS_PROBE_FIXTURE_H
#define WP_TESTS_PROBE_FIXTURE_H

#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "capture.h"
#include "probe.h"
#include "wp/conf.h"
#include "wp/err.h"
#include "wp/mem.h"

enum {
    FIXTURE_APPEND = 1, /* append to the log file rather than truncate it */
    FIXTURE_PGROUP = 2, /* the child leads its own process group (kill(-pid) reaches all) */
};

/*
 * Fork and execvp argv (argv[0] looked up in PATH): stdout and stderr to logf (created 0600),
 * stdin /dev/null, working directory dir; the child gets deathsig when this process dies
 * (and exits 127 should it already be gone). flags: FIXTURE_*. The pid, or -1.
 */
static inline pid_t fixture_spawn(const char *dir, const char *logf, unsigned flags, int deathsig,
                                  const char *const *argv)
{
    pid_t parent = getpid();
    pid_t pid = 0;

    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        return -1;
    }
    if (pid == 0) {
        int fd = -1;
        if (flags & FIXTURE_PGROUP) {
            setpgid(0, 0);
        }
        prctl(PR_SET_PDEATHSIG, deathsig);
        if (getppid() != parent) {
            _exit(127);
        }
        fd = open(logf,
                  O_WRONLY | O_CREAT | ((flags & FIXTURE_APPEND) ? O_APPEND : O_TRUNC) | O_CLOEXEC,
                  0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            dup2(fd, 0);
        }
        if (chdir(dir) != 0) {
            _exit(127);
        }
        execvp(argv[0], (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    if (flags & FIXTURE_PGROUP) {
        setpgid(pid, pid);
    }
    return pid;
}

/* A probe of kind ops from YAML text (file names it in errors) into *out: wp_probe_new()'s
 * result; a refusal is printed, a YAML error fails the test. */
static inline int fixture_probe_new(const struct wp_probe_ops *ops, const char *file,
                                    const char *yaml, struct wp_probe **out)
{
    struct wp_conf_doc *doc = NULL;
    struct wp_conf_err err;

    if (wp_conf_parse(file, yaml, strlen(yaml), &err, &doc) < 0) {
        fail_msg("yaml: %s", err.msg);
    }
    int rc = wp_probe_new(ops, doc, wp_conf_root(doc), &err, out);
    if (rc < 0) {
        print_message("wp_probe_new: %s\n", err.msg);
    }
    wp_conf_free(doc);
    return rc;
}

/*
 * Replace *p with a probe of kind ops from YAML text (file names it in errors): *p and *err
 * are reset first; wp_probe_new()'s result, a refusal in *err. A YAML error fails the test.
 */
static inline int fixture_probe_remake(const struct wp_probe_ops *ops, const char *file,
                                       const char *yaml, struct wp_conf_err *err,
                                       struct wp_probe **p)
{
    struct wp_conf_doc *doc = NULL;
    int rc = 0;

    wp_probe_free(*p);
    *p = NULL;
    memset(err, 0, sizeof(*err));
    assert_int_equal(wp_conf_parse(file, yaml, strlen(yaml), err, &doc), 0);
    rc = wp_probe_new(ops, doc, wp_conf_root(doc), err, p);
    wp_conf_free(doc);
    return rc;
}

/* The whole file at path, NUL-terminated, its length in *len (or NULL); free() it. A file
 * that cannot be read fails the test. */
static inline char *fixture_read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    char *buf = NULL;
    long n = 0;

    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    n = ftell(fp);
    assert_true(n >= 0);
    rewind(fp);
    buf = wp_xmalloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    buf[n] = '\0';
    fclose(fp);
    if (len != NULL) {
        *len = (size_t)n;
    }
    return buf;
}

/* Create or replace the file at path with text; a failure fails the test. */
static inline void fixture_write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "wb");

    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, strlen(text), fp), strlen(text));
    assert_int_equal(fclose(fp), 0);
}

/* Send stderr (the log) to the file path (truncated) until fixture_stderr_end(); *saved keeps
 * the real stderr. */
static inline void fixture_stderr_begin(const char *path, int *saved)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

    assert_true(fd >= 0);
    fflush(stderr);
    *saved = dup(STDERR_FILENO);
    assert_true(*saved >= 0);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    close(fd);
}

/* Put the real stderr back (nothing when *saved is -1); *saved becomes -1. */
static inline void fixture_stderr_end(int *saved)
{
    if (*saved >= 0) {
        fflush(stderr);
        dup2(*saved, STDERR_FILENO);
        close(*saved);
        *saved = -1;
    }
}

/* Assert that wp_probe_new() refuses YAML text (file names it) for kind ops with WP_ECONFIG,
 * an error that starts with prefix (NULL: any) and contains what. */
static inline void fixture_expect_config_error(const struct wp_probe_ops *ops, const char *file,
                                               const char *yaml, const char *prefix,
                                               const char *what)
{
    struct wp_conf_doc *doc = NULL;
    struct wp_conf_err err;
    struct wp_probe *p = NULL;

    if (wp_conf_parse(file, yaml, strlen(yaml), &err, &doc) < 0) {
        fail_msg("yaml: %s", err.msg);
    }
    assert_int_equal(wp_probe_new(ops, doc, wp_conf_root(doc), &err, &p), WP_ECONFIG);
    wp_conf_free(doc);
    assert_null(p);
    if (prefix != NULL && strncmp(err.msg, prefix, strlen(prefix)) != 0) {
        fail_msg("error \"%s\" does not start with \"%s\"", err.msg, prefix);
    }
    if (strstr(err.msg, what) == NULL) {
        fail_msg("\"%s\" does not contain \"%s\"", err.msg, what);
    }
}

/* Assert that c holds the check result check with status and output containing want; the
 * record, for further asserts. */
static inline const struct cap_rec *fixture_assert_check(const struct capture *c, const char *check,
                                                         unsigned status, const char *want)
{
    const struct cap_rec *chk = capture_rec(c, WP_REC_CHECK, check);

    assert_non_null(chk);
    assert_int_equal(chk->level, status);
    assert_non_null(strstr(chk->text, want));
    return chk;
}

#endif
