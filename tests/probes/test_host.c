/* SPDX-License-Identifier: Apache-2.0 */
/* The host probe on fixture trees (tests/fixtures/host/{a,b}) and once on this machine's /proc. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
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
#include "wp/err.h"
#include "wp/mem.h"

extern const struct wp_probe_ops wp_probe_host;

#define T0 1000000 /* first sample time (ms); the fixtures' second snapshot is 10 s later */

/* A scratch proc tree (snapshots are copied in place, so the probe's open fds see them). */
struct env {
    char dir[64];
    char proc[128];
    char *fix; /* $WP_FIXTURES/host */
    struct capture cap;
    struct wp_probe *p;
    char logpath[160];
    int saved_stderr;
};

/* ---- helpers ---- */

static void write_file(const char *path, const char *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static void write_text(const struct env *e, const char *rel, const char *text)
{
    char path[256];

    snprintf(path, sizeof(path), "%s/%s", e->proc, rel);
    write_file(path, text, strlen(text));
}

/* Copy snapshot snap's proc files over the scratch proc tree (in place). */
static void load_snapshot(const struct env *e, const char *snap)
{
    static const char *const files[] = {"stat",      "meminfo", "loadavg", "uptime",
                                        "diskstats", "net/dev", "mounts"};
    char src[512], dst[256];
    size_t len = 0;

    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(src, sizeof(src), "%s/%s/proc/%s", e->fix, snap, files[i]);
        snprintf(dst, sizeof(dst), "%s/%s", e->proc, files[i]);
        char *data = fixture_read_file(src, &len);
        write_file(dst, data, len);
        free(data);
    }
}

static void mkdir_in(const struct env *e, const char *rel)
{
    char path[256];

    snprintf(path, sizeof(path), "%s/%s", e->proc, rel);
    assert_int_equal(mkdir(path, 0755), 0);
}

static int setup(void **state)
{
    struct env *e = wp_xcalloc(1, sizeof(*e));
    const char *fix = getenv("WP_FIXTURES");

    if (fix == NULL) {
        fprintf(stderr, "WP_FIXTURES is not set (run through ctest)\n");
        free(e);
        return -1;
    }
    e->fix = wp_xasprintf("%s/host", fix);
    snprintf(e->dir, sizeof(e->dir), "/tmp/wp-host-XXXXXX");
    if (mkdtemp(e->dir) == NULL) {
        free(e->fix);
        free(e);
        return -1;
    }
    snprintf(e->proc, sizeof(e->proc), "%s/proc", e->dir);
    snprintf(e->logpath, sizeof(e->logpath), "%s/log", e->dir);
    e->saved_stderr = -1;
    mkdir(e->proc, 0755);
    mkdir_in(e, "net");
    /* three processes, and entries that are not processes */
    mkdir_in(e, "1");
    mkdir_in(e, "42");
    mkdir_in(e, "1000");
    mkdir_in(e, "sys");
    mkdir_in(e, "12a");
    load_snapshot(e, "a");
    capture_init(&e->cap, T0, 10);
    *state = e;
    return 0;
}

static void log_end(struct env *e);

static int teardown(void **state)
{
    struct env *e = *state;

    log_end(e);
    wp_probe_free(e->p);
    capture_cleanup(&e->cap);
    peers_rmtree(e->dir);
    free(e->fix);
    free(e);
    return 0;
}

/* Send stderr (the log) to a file until log_end(). */
static void log_begin(struct env *e)
{
    fixture_stderr_begin(e->logpath, &e->saved_stderr);
}

static void log_end(struct env *e)
{
    fixture_stderr_end(&e->saved_stderr);
}

/* The log written since log_begin() (ends it); free() it. */
static char *log_text(struct env *e)
{
    size_t len = 0;

    log_end(e);
    return fixture_read_file(e->logpath, &len);
}

/* How often needle occurs in hay. */
static int count_of(const char *hay, const char *needle)
{
    int n = 0;

    for (const char *q = strstr(hay, needle); q != NULL; q = strstr(q + 1, needle)) {
        n++;
    }
    return n;
}

/* Whether log has a line of level lvl ("WARN") from this probe whose message starts with msg
 * (the identity is "host:host: ", however the registry decorates it). */
static int has_line(const char *log, const char *lvl, const char *msg)
{
    size_t ll = strlen(lvl);

    for (const char *line = log; *line != '\0';) {
        const char *nl = strchr(line, '\n');
        size_t len = nl != NULL ? (size_t)(nl - line) : strlen(line);
        char *copy = wp_xstrndup(line, len);
        const char *who = strstr(copy, "host:host: ");
        int hit = strncmp(copy, lvl, ll) == 0 && copy[ll] == ' ' && who != NULL &&
                  strncmp(who + 11, msg, strlen(msg)) == 0;
        free(copy);
        if (hit) {
            return 1;
        }
        line += len + (nl != NULL);
    }
    return 0;
}

/* Create a host probe through the registry from YAML options (proc/sys/root set here). */
static int new_probe(struct env *e, const char *proc, const char *extra, struct wp_probe **out)
{
    char *yaml = wp_xasprintf("kind: host\nproc_root: \"%s\"\nsys_root: \"%s/a/sys\"\n"
                              "root_fs: \"%s/a/root\"\n%s",
                              proc, e->fix, e->fix, extra != NULL ? extra : "");
    int rc = fixture_probe_new(&wp_probe_host, "host.yaml", yaml, out);

    free(yaml);
    return rc;
}

static void start(struct env *e, const char *extra)
{
    assert_int_equal(new_probe(e, e->proc, extra, &e->p), 0);
    assert_non_null(e->p);
}

static void sample_at(struct env *e, int64_t ts_ms)
{
    capture_clear(&e->cap);
    e->cap.sink.ts_ms = ts_ms;
    assert_int_equal(e->p->ops->sample(e->p, &e->cap.sink), 0);
    assert_int_equal(e->cap.bad, 0);
}

static void expect_val_at(const struct capture *c, const char *path, double want, const char *file,
                          int line)
{
    double v = capture_get(c, path);

    if (v == CAP_ABSENT) {
        fail_msg("%s:%d: %s is absent, want %.6f", file, line, path, want);
    }
    if (!(fabs(v - want) <= 1e-9 * fmax(1.0, fabs(want)))) {
        fail_msg("%s:%d: %s = %.9f, want %.9f", file, line, path, v, want);
    }
}

static void expect_nan_at(const struct capture *c, const char *path, const char *file, int line)
{
    double v = capture_get(c, path);

    if (v == CAP_ABSENT) {
        fail_msg("%s:%d: %s is absent, want NaN", file, line, path);
    }
    if (!isnan(v)) {
        fail_msg("%s:%d: %s = %.9f, want NaN", file, line, path, v);
    }
}

#define expect_val(c, path, want) expect_val_at((c), (path), (want), __FILE__, __LINE__)
#define expect_nan(c, path)       expect_nan_at((c), (path), __FILE__, __LINE__)
#define expect_absent(c, path)    assert_true(capture_get((c), (path)) == CAP_ABSENT)

/* ---- tests ---- */

static void host_rates_from_two_snapshots(void **state)
{
    struct env *e = *state;
    struct capture *c = &e->cap;

    start(e, NULL);
    sample_at(e, T0);
    load_snapshot(e, "b");
    sample_at(e, T0 + 10000);

    /* cpu: 2000 ticks passed; guest (+300) is inside user already and not added again */
    expect_val(c, "cpu/total/user", 25.0);
    expect_val(c, "cpu/total/nice", 1.0);
    expect_val(c, "cpu/total/system", 10.0);
    expect_val(c, "cpu/total/iowait", 5.0);
    expect_val(c, "cpu/total/irq", 1.0);
    expect_val(c, "cpu/total/softirq", 2.0);
    expect_val(c, "cpu/total/steal", 1.0);
    expect_val(c, "cpu/total/idle", 55.0);
    expect_val(c, "cpu/0/user", 40.0);
    expect_val(c, "cpu/0/idle", 40.0);
    expect_val(c, "cpu/0/irq", 2.0);
    expect_val(c, "cpu/1/user", 10.0);
    expect_val(c, "cpu/1/nice", 2.0);
    expect_val(c, "cpu/1/idle", 70.0);
    assert_int_equal(capture_count(c, "cpu"), 3);

    /* mem (kB * 1024): used = total - available, cached = Cached + SReclaimable */
    expect_val(c, "mem//total", 16000000.0 * 1024);
    expect_val(c, "mem//used", 7000000.0 * 1024);
    expect_val(c, "mem//available", 9000000.0 * 1024);
    expect_val(c, "mem//free", 3000000.0 * 1024);
    expect_val(c, "mem//buffers", 500000.0 * 1024);
    expect_val(c, "mem//cached", 6000000.0 * 1024);
    expect_val(c, "mem//swap_total", 2000000.0 * 1024);
    expect_val(c, "mem//swap_used", 500000.0 * 1024);

    expect_val(c, "load//load1", 2.0);
    expect_val(c, "load//load5", 1.0);
    expect_val(c, "load//load15", 0.5);

    expect_val(c, "system//uptime", 12355.67);
    expect_val(c, "system//procs", 3.0);
    expect_val(c, "system//procs_running", 7.0);
    expect_val(c, "system//procs_blocked", 2.0);
    expect_val(c, "system//threads", 460.0);

    /* sda over 10 s: 1000 reads, 20480 sectors read, 500 writes, 10240 sectors written,
     * 2500 ms busy, 4500 ms for 1500 ops */
    expect_val(c, "disk/sda/rd_ops", 100.0);
    expect_val(c, "disk/sda/wr_ops", 50.0);
    expect_val(c, "disk/sda/rd_bytes", 20480.0 * 512 / 10);
    expect_val(c, "disk/sda/wr_bytes", 10240.0 * 512 / 10);
    expect_val(c, "disk/sda/busy_pct", 25.0);
    expect_val(c, "disk/sda/await_ms", 3.0);
    /* an idle disk: zero, not NaN */
    expect_val(c, "disk/nvme0n1/rd_ops", 0.0);
    expect_val(c, "disk/nvme0n1/busy_pct", 0.0);
    expect_val(c, "disk/nvme0n1/await_ms", 0.0);
    /* 12 s of io_ticks in 10 s: clamped to 100 % */
    expect_val(c, "disk/dm-0/busy_pct", 100.0);
    expect_val(c, "disk/dm-0/rd_bytes", 80.0 * 512 / 10);
    expect_val(c, "disk/dm-0/await_ms", 5.0);
    /* partitions, loop, sr, zram: no series */
    assert_int_equal(capture_count(c, "disk"), 3);

    /* eth0 over 10 s ("eth0:31100648" without a blank after the colon in snapshot b) */
    expect_val(c, "net/eth0/rx_bytes", 1000000.0);
    expect_val(c, "net/eth0/tx_bytes", 500000.0);
    expect_val(c, "net/eth0/rx_packets", 1000.0);
    expect_val(c, "net/eth0/tx_packets", 800.0);
    expect_val(c, "net/eth0/rx_errors", 1.0);
    expect_val(c, "net/eth0/tx_errors", 0.0);
    expect_val(c, "net/eth0/rx_drops", 2.0);
    expect_val(c, "net/eth0/tx_drops", 0.5);
    /* lo excluded, eth1 vanished, wlan0 new (no rate yet) */
    expect_absent(c, "net/lo/rx_bytes");
    expect_absent(c, "net/eth1/rx_bytes");
    expect_nan(c, "net/wlan0/rx_bytes");
    assert_int_equal(capture_count(c, "net"), 2);

    for (size_t i = 0; i < c->n; i++) {
        assert_int_equal(c->rows[i].ts_ms, T0 + 10000);
    }
}

static void host_first_sample_gives_nan_rates_and_gauges(void **state)
{
    struct env *e = *state;
    struct capture *c = &e->cap;

    start(e, NULL);
    sample_at(e, T0);
    expect_nan(c, "cpu/total/user");
    expect_nan(c, "cpu/1/idle");
    expect_nan(c, "disk/sda/rd_ops");
    expect_nan(c, "disk/sda/busy_pct");
    expect_nan(c, "net/eth0/rx_bytes");
    expect_nan(c, "net/eth1/tx_drops");
    expect_val(c, "mem//used", 6000000.0 * 1024);
    expect_val(c, "load//load1", 1.5);
    expect_val(c, "system//threads", 456.0);
    expect_val(c, "system//procs_blocked", 1.0);
    assert_true(capture_get(c, "df///bytes_total") > 0);
}

static void host_counter_reset_gives_nan(void **state)
{
    struct env *e = *state;
    struct capture *c = &e->cap;
    const char *dev = "Inter-|   Receive |  Transmit\n"
                      " face |bytes packets errs drop fifo frame compressed multicast|bytes\n"
                      "  eth0: 1000 50811 3 7 0 0 0 12 49562000 40656 1 2 0 0 0 0\n";
    const char *disk = "   8       0 sda 10 0 80 5 30000 5000 2000000 60000 0 100000 150000\n";
    const char *stat = "cpu  100 0 30 800 10 1 2 0 0 0\n"
                       "cpu0 6000 0 15 400 5 1 1 0 0 0\n"
                       "cpu1 5100 270 1600 40700 550 50 120 35 0 0\n";

    start(e, NULL);
    sample_at(e, T0);
    /* eth0 rx_bytes and sda reads went back (driver reset, 32-bit wrap); the cpu total and
     * cpu0 went back (counters restarted; cpu0's user column is higher though: the sum
     * decides); cpu1 moved on normally */
    write_text(e, "net/dev", dev);
    write_text(e, "diskstats", disk);
    write_text(e, "stat", stat);
    sample_at(e, T0 + 1000);
    expect_nan(c, "net/eth0/rx_bytes");
    expect_val(c, "net/eth0/tx_bytes", 1000.0);
    expect_val(c, "net/eth0/rx_packets", 0.0);
    expect_nan(c, "disk/sda/rd_ops");
    expect_nan(c, "disk/sda/rd_bytes");
    expect_nan(c, "disk/sda/await_ms");
    expect_val(c, "disk/sda/wr_ops", 0.0);
    expect_nan(c, "cpu/total/user");
    expect_nan(c, "cpu/0/idle");
    expect_val(c, "cpu/1/user", 10.0);
    /* and the next round has rates again, from the post-reset counters */
    sample_at(e, T0 + 2000);
    expect_val(c, "net/eth0/rx_bytes", 0.0);
    expect_val(c, "disk/sda/rd_ops", 0.0);
    expect_nan(c, "cpu/total/user"); /* no tick passed: 0/0 */
}

static void host_cpu_column_going_back_counts_as_zero(void **state)
{
    struct env *e = *state;
    struct capture *c = &e->cap;

    start(e, "per_cpu: false\n");
    write_text(e, "stat", "cpu  1000 0 1000 8000 500 0 0 0 0 0\n");
    sample_at(e, T0);
    /* iowait 500 -> 490 (seen on NO_HZ kernels) while 1000 ticks passed */
    write_text(e, "stat", "cpu  1250 0 1250 8500 490 0 0 0 0 0\n");
    sample_at(e, T0 + 5000);
    expect_val(c, "cpu/total/iowait", 0.0);
    expect_val(c, "cpu/total/user", 25.0);
    expect_val(c, "cpu/total/system", 25.0);
    expect_val(c, "cpu/total/idle", 50.0);
    assert_int_equal(capture_count(c, "cpu"), 1);
}

static void host_vanished_instance_leaves_no_state(void **state)
{
    struct env *e = *state;
    struct capture *c = &e->cap;

    start(e, NULL);
    sample_at(e, T0);
    load_snapshot(e, "b"); /* eth1 gone */
    sample_at(e, T0 + 10000);
    expect_absent(c, "net/eth1/rx_bytes");
    load_snapshot(e, "a"); /* eth1 back: its old counters must not be used */
    sample_at(e, T0 + 20000);
    expect_nan(c, "net/eth1/rx_bytes");
    expect_absent(c, "net/wlan0/rx_bytes");
    /* eth0's counters went back to snapshot a's: NaN, not 2^64 - x */
    expect_nan(c, "net/eth0/rx_bytes");
    sample_at(e, T0 + 30000);
    expect_val(c, "net/eth1/rx_bytes", 0.0);
}

static void host_interval_comes_from_sink_time(void **state)
{
    struct env *e = *state;
    struct capture *c = &e->cap;

    start(e, NULL);
    sample_at(e, T0);
    load_snapshot(e, "b");
    sample_at(e, T0 + 20000); /* the same deltas over 20 s */
    expect_val(c, "disk/sda/rd_ops", 50.0);
    expect_val(c, "net/eth0/rx_bytes", 500000.0);
    expect_val(c, "disk/sda/busy_pct", 12.5);
    /* the same time again: no interval, no rate */
    sample_at(e, T0 + 20000);
    expect_nan(c, "disk/sda/rd_ops");
}

static void host_df_mounts_filtered(void **state)
{
    struct env *e = *state;
    struct capture *c = &e->cap;
    static const char *const want[] = {"/", "/boot", "/u01", "/srv/my data"};

    start(e, NULL);
    sample_at(e, T0);
    /* pseudo fs, tmpfs, squashfs, overlay, nfs4 (remote_fs off), what mount_exclude matches,
     * the duplicate "/" and /u02 hidden by a tmpfs mounted over it: no series */
    assert_int_equal(capture_count(c, "df"), 4);
    for (size_t i = 0; i < 4; i++) {
        const struct cap_row *r = capture_row(c, "df", want[i]);
        assert_non_null(r);
        assert_int_equal(r->nfields, 7);
        assert_true(r->vals[0] > 0);                        /* bytes_total */
        assert_true(r->vals[1] + r->vals[2] <= r->vals[0]); /* used + avail <= total */
        assert_true(r->vals[3] >= 0 && r->vals[3] <= 100);  /* used_pct */
    }
    expect_absent(c, "df//u02/bytes_total");
    expect_absent(c, "df//mnt/nas/bytes_total");
    expect_absent(c, "df//dev/shm/bytes_total");
    /* the same mount table again: the cached list gives the same rows */
    sample_at(e, T0 + 1000);
    assert_int_equal(capture_count(c, "df"), 4);
}

static void host_df_remote_and_include(void **state)
{
    struct env *e = *state;
    struct capture *c = &e->cap;
    struct wp_probe *q = NULL;

    start(e, "remote_fs: true\n");
    sample_at(e, T0);
    assert_int_equal(capture_count(c, "df"), 5);
    assert_non_null(capture_row(c, "df", "/mnt/nas"));

    /* fs_include_types replaces the exclude list (the tmpfs over /u02 counts now); an item
     * may hold a comma list; nfs4 still needs remote_fs */
    assert_int_equal(new_probe(e, e->proc,
                               "fs_include_types: [\"xfs, nfs4\", tmpfs]\n"
                               "mount_exclude: [/dev/*, /run]\n",
                               &q),
                     0);
    capture_clear(c);
    assert_int_equal(q->ops->sample(q, &c->sink), 0);
    assert_non_null(capture_row(c, "df", "/u01"));
    assert_non_null(capture_row(c, "df", "/u02"));
    assert_int_equal(capture_count(c, "df"), 2);
    wp_probe_free(q);
}

static void host_df_statvfs_failure_skips_one_mount(void **state)
{
    struct env *e = *state;
    struct capture *c = &e->cap;

    /* replacing mount_exclude lets /var/lib/docker/containers through; it does not exist
     * under root_fs, so its statvfs fails: logged once, the others still reported */
    start(e, "mount_exclude: [/boot]\n");
    log_begin(e);
    sample_at(e, T0);
    sample_at(e, T0 + 1000);
    char *log = log_text(e);
    assert_true(has_line(log, "WARN", "statvfs "));
    assert_non_null(strstr(log, "/var/lib/docker/containers"));
    assert_int_equal(count_of(log, "statvfs"), 1); /* once, not per sample */
    free(log);
    expect_absent(c, "df//boot/bytes_total");
    expect_absent(c, "df//var/lib/docker/containers/bytes_total");
    assert_non_null(capture_row(c, "df", "/"));
    assert_non_null(capture_row(c, "df", "/u01"));
    assert_non_null(capture_row(c, "df", "/srv/my data"));
}

static void host_mount_table_changes(void **state)
{
    struct env *e = *state;
    struct capture *c = &e->cap;

    start(e, NULL);
    sample_at(e, T0);
    assert_int_equal(capture_count(c, "df"), 4);
    write_text(e, "mounts", "/dev/vda / ext4 rw 0 0\n/dev/vdb /u01 xfs rw 0 0\n");
    sample_at(e, T0 + 1000);
    assert_int_equal(capture_count(c, "df"), 2);
    assert_non_null(capture_row(c, "df", "/u01"));
}

static void host_pid1_mount_table_preferred(void **state)
{
    struct env *e = *state;
    struct capture *c = &e->cap;

    write_text(e, "1/mounts", "/dev/nvme0n1p1 /u01 xfs rw 0 0\n");
    start(e, NULL);
    sample_at(e, T0);
    assert_int_equal(capture_count(c, "df"), 1);
    assert_non_null(capture_row(c, "df", "/u01"));
}

static void host_per_cpu_off_and_excludes(void **state)
{
    struct env *e = *state;
    struct capture *c = &e->cap;

    start(e, "per_cpu: false\nnet_exclude: []\ndisk_exclude: [\"sd*\", \"dm-*\"]\n");
    sample_at(e, T0);
    assert_int_equal(capture_count(c, "cpu"), 1);
    assert_non_null(capture_row(c, "cpu", "total"));
    assert_non_null(capture_row(c, "net", "lo"));
    assert_int_equal(capture_count(c, "net"), 3);
    /* loop0/loop1/sr0/zram0 are whole disks and now allowed; sda and dm-0 are excluded */
    assert_null(capture_row(c, "disk", "sda"));
    assert_null(capture_row(c, "disk", "dm-0"));
    assert_non_null(capture_row(c, "disk", "loop0"));
    assert_non_null(capture_row(c, "disk", "sr0"));
    assert_null(capture_row(c, "disk", "sda1"));
    assert_int_equal(capture_count(c, "disk"), 5); /* loop0 loop1 nvme0n1 sr0 zram0 */
}

static void host_procs_counted_every_procs_interval(void **state)
{
    struct env *e = *state;
    struct capture *c = &e->cap;

    start(e, "procs_interval: 30s\n");
    sample_at(e, T0);
    expect_val(c, "system//procs", 3.0);
    mkdir_in(e, "4242");
    sample_at(e, T0 + 10000); /* reused */
    expect_val(c, "system//procs", 3.0);
    sample_at(e, T0 + 30000); /* rescanned */
    expect_val(c, "system//procs", 4.0);
}

static void host_missing_file_skips_its_group(void **state)
{
    struct env *e = *state;
    struct capture *c = &e->cap;
    char path[256];

    snprintf(path, sizeof(path), "%s/net/dev", e->proc);
    assert_int_equal(unlink(path), 0);
    start(e, NULL);
    log_begin(e);
    sample_at(e, T0);
    sample_at(e, T0 + 1000);
    char *log = log_text(e);
    assert_true(has_line(log, "WARN", "cannot read "));
    assert_non_null(strstr(log, "/net/dev: "));
    assert_int_equal(count_of(log, "cannot read "), 1); /* once, not per sample */
    free(log);
    assert_int_equal(capture_count(c, "net"), 0);
    assert_int_equal(capture_count(c, "cpu"), 3);
    assert_non_null(capture_row(c, "mem", ""));
    assert_int_equal(capture_count(c, "df"), 4);
    /* the file comes back: read again, and that is logged once */
    load_snapshot(e, "a");
    log_begin(e);
    sample_at(e, T0 + 2000);
    log = log_text(e);
    assert_true(has_line(log, "INFO", "reading "));
    free(log);
    assert_int_equal(capture_count(c, "net"), 2);
}

static void host_garbage_file_skips_its_group(void **state)
{
    struct env *e = *state;
    struct capture *c = &e->cap;

    write_text(e, "loadavg", "garbage\n");
    start(e, NULL);
    log_begin(e);
    sample_at(e, T0);
    sample_at(e, T0 + 1000);
    char *log = log_text(e);
    assert_true(has_line(log, "WARN", "cannot parse "));
    assert_non_null(strstr(log, "/loadavg"));
    assert_int_equal(count_of(log, "cannot parse"), 1); /* once, not per sample */
    free(log);
    assert_null(capture_row(c, "load", ""));
    expect_nan(c, "system//threads");
    expect_val(c, "system//procs_blocked", 1.0);
    assert_non_null(capture_row(c, "mem", ""));
    write_text(e, "loadavg", "0.10 0.20 0.30 1/99 7\n");
    sample_at(e, T0 + 2000);
    expect_val(c, "load//load15", 0.3);
    expect_val(c, "system//threads", 99.0);
}

static void host_init_fails_without_proc(void **state)
{
    struct env *e = *state;
    struct wp_probe *q = NULL;
    char *missing = wp_xasprintf("%s/nothing", e->dir);

    log_begin(e);
    int rc = new_probe(e, missing, NULL, &q);
    char *log = log_text(e);
    assert_true(rc < 0);
    assert_null(q);
    assert_true(has_line(log, "ERROR", "cannot read "));
    assert_non_null(strstr(log, "/nothing/stat"));
    free(log);
    free(missing);

    /* a readable stat that is not /proc/stat */
    write_text(e, "stat", "hello\n");
    log_begin(e);
    rc = new_probe(e, e->proc, NULL, &q);
    log = log_text(e);
    assert_true(rc < 0);
    assert_non_null(strstr(log, "check proc_root"));
    free(log);
}

static void host_real_proc(void **state)
{
    struct env *e = *state;
    struct capture *c = &e->cap;
    struct wp_conf_doc *doc = NULL;
    struct wp_conf_err err;
    const char *yaml = "kind: host\n";
    struct timespec t0, t1;

    assert_int_equal(wp_conf_parse("host.yaml", yaml, strlen(yaml), &err, &doc), 0);
    assert_int_equal(wp_probe_new(&wp_probe_host, doc, wp_conf_root(doc), &err, &e->p), 0);
    wp_conf_free(doc);
    sample_at(e, T0);
    assert_true(capture_get(c, "mem//total") > 0);
    assert_true(capture_get(c, "mem//available") > 0);
    assert_non_null(capture_row(c, "cpu", "total"));
    assert_non_null(capture_row(c, "cpu", "0"));
    assert_true(capture_count(c, "df") >= 1);
    assert_true(capture_get(c, "system//procs") >= 1);
    assert_true(capture_get(c, "system//uptime") > 0);
    assert_true(capture_get(c, "load//load1") >= 0);
    /* a second sample: every cpu row sums to 100 (or is NaN when no tick passed) */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        clock_gettime(CLOCK_MONOTONIC, &t1);
    } while ((t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec) < 30000000L);
    sample_at(e, T0 + 1000);
    for (size_t i = 0; i < c->n; i++) {
        const struct cap_row *r = &c->rows[i];
        if (strcmp(r->group, "cpu") != 0 || isnan(r->vals[0])) {
            continue;
        }
        double sum = 0;
        for (uint32_t k = 0; k < r->nfields; k++) {
            assert_true(r->vals[k] >= 0 && r->vals[k] <= 100);
            sum += r->vals[k];
        }
        assert_true(fabs(sum - 100.0) < 1e-6);
    }
    print_message("real /proc: %zu rows, cpu %zu, df %zu, disk %zu, net %zu\n", c->n,
                  capture_count(c, "cpu"), capture_count(c, "df"), capture_count(c, "disk"),
                  capture_count(c, "net"));
}

static void host_option_table(void **state)
{
    const struct wp_opt *o = wp_probe_host.opts;
    size_t n = 0;

    (void)state;
    for (; o[n].type != WP_OPT_END; n++) {
        assert_true(o[n].offset < wp_probe_host.ctx_size);
        for (size_t k = 0; k < n; k++) {
            assert_string_not_equal(o[k].name, o[n].name);
        }
    }
    assert_int_equal(n, 11);
    assert_non_null(wp_probe_host.sample);
    assert_non_null(wp_probe_host.destroy);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(host_rates_from_two_snapshots, setup, teardown),
        cmocka_unit_test_setup_teardown(host_first_sample_gives_nan_rates_and_gauges, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(host_counter_reset_gives_nan, setup, teardown),
        cmocka_unit_test_setup_teardown(host_cpu_column_going_back_counts_as_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(host_vanished_instance_leaves_no_state, setup, teardown),
        cmocka_unit_test_setup_teardown(host_interval_comes_from_sink_time, setup, teardown),
        cmocka_unit_test_setup_teardown(host_df_mounts_filtered, setup, teardown),
        cmocka_unit_test_setup_teardown(host_df_remote_and_include, setup, teardown),
        cmocka_unit_test_setup_teardown(host_df_statvfs_failure_skips_one_mount, setup, teardown),
        cmocka_unit_test_setup_teardown(host_mount_table_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(host_pid1_mount_table_preferred, setup, teardown),
        cmocka_unit_test_setup_teardown(host_per_cpu_off_and_excludes, setup, teardown),
        cmocka_unit_test_setup_teardown(host_procs_counted_every_procs_interval, setup, teardown),
        cmocka_unit_test_setup_teardown(host_missing_file_skips_its_group, setup, teardown),
        cmocka_unit_test_setup_teardown(host_garbage_file_skips_its_group, setup, teardown),
        cmocka_unit_test_setup_teardown(host_init_fails_without_proc, setup, teardown),
        cmocka_unit_test_setup_teardown(host_real_proc, setup, teardown),
        cmocka_unit_test(host_option_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
