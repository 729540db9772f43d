/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the agent spool: round trip, seq rules, acks, bounds, recovery, memory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "spool.h"
#include "wp/err.h"
#include "wp/log.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TEST_SANITIZED 1
#endif
#endif

#ifdef TEST_SANITIZED
/* The sanitizers replace malloc; their allocator reports the live heap. */
size_t __sanitizer_get_current_allocated_bytes(void);
#else
#include <malloc.h>
#endif

#define PL  72u         /* payload length used by most tests */
#define REC (28u + PL)  /* bytes per record on disk */
#define SEG (10u * REC) /* segment size holding exactly ten records */

struct fx {
    char root[64];
    char dir[96];
};

static size_t heap_used(void)
{
#ifdef TEST_SANITIZED
    return __sanitizer_get_current_allocated_bytes();
#else
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
#endif
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    if (f == NULL) {
        return -1;
    }
    snprintf(f->root, sizeof(f->root), "/tmp/wp-spool-XXXXXX");
    if (mkdtemp(f->root) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "%s/spool", f->root);
    wp_log_set_level(WP_LOG_ERROR);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    nftw(f->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static struct wp_spool_limits lim_mk(uint64_t max_bytes, uint64_t seg, int64_t age, int fsync)
{
    struct wp_spool_limits l;

    memset(&l, 0, sizeof(l));
    l.max_bytes = max_bytes;
    l.segment_bytes = seg;
    l.max_age_ms = age;
    l.fsync = fsync;
    return l;
}

static struct wp_spool *open_ok(const char *dir, const struct wp_spool_limits *l)
{
    struct wp_spool *s = NULL;

    assert_int_equal(wp_spool_open(dir, l, &s), 0);
    assert_non_null(s);
    return s;
}

static uint32_t nv(uint64_t seq)
{
    return (uint32_t)(seq % 5 + 1);
}

static int64_t ts_of(uint64_t seq)
{
    return 1000 + (int64_t)seq * 10;
}

static void fill(uint8_t *p, size_t n, uint64_t seq)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)(seq * 31 + i);
    }
}

/* Append the record for the spool's next seq (payload PL, ts given) and check its seq. */
static void put_ts(struct wp_spool *s, uint64_t want, int64_t ts)
{
    uint8_t p[PL];
    uint64_t seq = 0;

    fill(p, PL, want);
    assert_int_equal(wp_spool_append(s, p, PL, ts, nv(want), &seq), 0);
    assert_int_equal(seq, want);
}

static void put_range(struct wp_spool *s, uint64_t from, uint64_t to)
{
    for (uint64_t q = from; q <= to; q++) {
        put_ts(s, q, ts_of(q));
    }
}

/* Read from `from` and check it yields record `want` with the standard payload. */
static void get_ok(struct wp_spool *s, uint64_t from, uint64_t want)
{
    uint8_t p[PL];
    uint64_t seq = 0;
    int64_t ts = 0;
    const uint8_t *pl = NULL;
    size_t len = 0;

    assert_int_equal(wp_spool_read(s, from, &seq, &ts, &pl, &len), 0);
    assert_int_equal(seq, want);
    assert_int_equal(len, PL);
    fill(p, PL, want);
    assert_memory_equal(pl, p, PL);
}

static void get_none(struct wp_spool *s, uint64_t from)
{
    uint64_t seq = 0;
    int64_t ts = 0;
    const uint8_t *pl = NULL;
    size_t len = 0;

    assert_int_equal(wp_spool_read(s, from, &seq, &ts, &pl, &len), WP_ENOTFOUND);
}

static uint64_t nv_sum(uint64_t from, uint64_t to)
{
    uint64_t t = 0;

    for (uint64_t q = from; q <= to; q++) {
        t += nv(q);
    }
    return t;
}

static int count_segs(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *e = NULL;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l > 4 && strcmp(e->d_name + l - 4, ".seg") == 0) {
            n++;
        }
    }
    closedir(d);
    return n;
}

static void seg_path(char *out, size_t n, const char *dir, uint64_t first)
{
    snprintf(out, n, "%s/%020" PRIu64 ".seg", dir, first);
}

static off_t file_size(const char *path)
{
    struct stat st;

    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/* Copy every file of src into a new directory dst: the disk as a crash would leave it. */
static void copy_dir(const char *src, const char *dst)
{
    char a[600];
    char b[600];
    char buf[4096];
    DIR *d = opendir(src);
    struct dirent *e = NULL;

    assert_non_null(d);
    assert_int_equal(mkdir(dst, 0700), 0);
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(a, sizeof(a), "%s/%s", src, e->d_name);
        snprintf(b, sizeof(b), "%s/%s", dst, e->d_name);
        int in = open(a, O_RDONLY);
        int out = open(b, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        assert_true(in >= 0 && out >= 0);
        for (;;) {
            ssize_t r = read(in, buf, sizeof(buf));
            assert_true(r >= 0);
            if (r == 0) {
                break;
            }
            assert_int_equal(write(out, buf, (size_t)r), r);
        }
        close(in);
        close(out);
    }
    closedir(d);
}

static void flip_byte(const char *path, off_t off)
{
    uint8_t c = 0;
    int fd = open(path, O_RDWR);

    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &c, 1, off), 1);
    c ^= 0x5a;
    assert_int_equal(pwrite(fd, &c, 1, off), 1);
    close(fd);
}

static void write_file(const char *path, const void *data, size_t n, int flags)
{
    int fd = open(path, O_WRONLY | O_CREAT | flags, 0600);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, n), (ssize_t)n);
    close(fd);
}

static void spool_round_trip(void **state)
{
    struct fx *f = *state;
    struct wp_spool_limits l = lim_mk(0, 0, 0, 1);
    struct wp_spool *s = open_ok(f->dir, &l);
    struct wp_spool_stats st;
    uint8_t big[3000];
    uint64_t seq = 0;
    int64_t ts = 0;
    const uint8_t *pl = NULL;
    size_t len = 0;

    fill(big, sizeof(big), 3);
    assert_int_equal(wp_spool_append(s, NULL, 0, 111, 0, &seq), 0);
    assert_int_equal(seq, 1);
    assert_int_equal(wp_spool_append(s, "hello", 5, 222, 2, &seq), 0);
    assert_int_equal(seq, 2);
    assert_int_equal(wp_spool_append(s, big, sizeof(big), 333, 40, &seq), 0);
    assert_int_equal(seq, 3);

    assert_int_equal(wp_spool_read(s, 0, &seq, &ts, &pl, &len), 0);
    assert_int_equal(seq, 1);
    assert_int_equal(ts, 111);
    assert_int_equal(len, 0);
    assert_int_equal(wp_spool_read(s, 2, &seq, &ts, &pl, &len), 0);
    assert_int_equal(seq, 2);
    assert_int_equal(ts, 222);
    assert_int_equal(len, 5);
    assert_memory_equal(pl, "hello", 5);
    assert_int_equal(wp_spool_read(s, 3, &seq, &ts, &pl, &len), 0);
    assert_int_equal(seq, 3);
    assert_int_equal(ts, 333);
    assert_int_equal(len, sizeof(big));
    assert_memory_equal(pl, big, sizeof(big));
    assert_int_equal(wp_spool_read(s, 4, &seq, &ts, &pl, &len), WP_ENOTFOUND);
    /* backwards */
    assert_int_equal(wp_spool_read(s, 2, &seq, &ts, &pl, &len), 0);
    assert_int_equal(seq, 2);
    assert_memory_equal(pl, "hello", 5);

    wp_spool_stats(s, &st);
    assert_int_equal(st.next_seq, 4);
    assert_int_equal(st.first_seq, 1);
    assert_int_equal(st.acked_seq, 0);
    assert_int_equal(st.records, 3);
    assert_int_equal(st.pending, 3);
    assert_int_equal(st.bytes, 3 * 28 + 5 + sizeof(big));
    assert_int_equal(st.oldest_ts_ms, 111);
    assert_int_equal(st.dropped_records, 0);

    assert_int_equal(wp_spool_ack(s, 1), 0);
    wp_spool_stats(s, &st);
    assert_int_equal(st.pending, 2);
    assert_int_equal(st.oldest_ts_ms, 222);
    wp_spool_close(s);
}

static void spool_seq_continues_after_reopen(void **state)
{
    struct fx *f = *state;
    struct wp_spool_limits l = lim_mk(0, 0, 0, 0);
    struct wp_spool *s = open_ok(f->dir, &l);
    struct wp_spool_stats st;

    put_range(s, 1, 5);
    assert_int_equal(wp_spool_ack(s, 2), 0); /* deletes nothing: persisted by close */
    wp_spool_close(s);
    s = open_ok(f->dir, &l);
    wp_spool_stats(s, &st);
    assert_int_equal(st.next_seq, 6);
    assert_int_equal(st.records, 5);
    assert_int_equal(st.pending, 3);
    assert_int_equal(st.acked_seq, 2);
    assert_int_equal(st.oldest_ts_ms, ts_of(3));
    put_range(s, 6, 6);
    assert_int_equal(count_segs(f->dir), 1); /* appended to the same segment */
    for (uint64_t q = 1; q <= 6; q++) {
        get_ok(s, q, q);
    }
    wp_spool_close(s);
}

static void spool_ack_deletes_segments_after_state(void **state)
{
    struct fx *f = *state;
    char copy[160];
    struct wp_spool_limits l = lim_mk(1 << 20, SEG, 0, 0);
    struct wp_spool *s = open_ok(f->dir, &l);
    struct wp_spool *c = NULL;
    struct wp_spool_stats st;

    put_range(s, 1, 35); /* 1-10, 11-20, 21-30, 31-35 */
    assert_int_equal(count_segs(f->dir), 4);
    assert_int_equal(wp_spool_ack(s, 15), 0);
    assert_int_equal(count_segs(f->dir), 3); /* 11-20 still holds 16..20 */
    wp_spool_stats(s, &st);
    assert_int_equal(st.acked_seq, 15);
    assert_int_equal(st.first_seq, 11);
    assert_int_equal(st.records, 25);
    assert_int_equal(st.pending, 20);
    assert_int_equal(st.bytes, 25 * REC);
    assert_int_equal(st.oldest_ts_ms, ts_of(16));

    /* A crash right now: the state on disk already covers the deletion. */
    snprintf(copy, sizeof(copy), "%s/copy", f->root);
    copy_dir(f->dir, copy);
    c = open_ok(copy, &l);
    wp_spool_stats(c, &st);
    assert_int_equal(st.acked_seq, 15);
    assert_int_equal(st.next_seq, 36);
    assert_int_equal(st.first_seq, 11);
    assert_int_equal(st.pending, 20);
    get_ok(c, 16, 16);
    wp_spool_close(c);

    /* Clamped to the last assigned seq; the segment being written stays. */
    assert_int_equal(wp_spool_ack(s, 1000), 0);
    wp_spool_stats(s, &st);
    assert_int_equal(st.acked_seq, 35);
    assert_int_equal(st.pending, 0);
    assert_int_equal(st.records, 5);
    assert_int_equal(st.oldest_ts_ms, 0);
    assert_int_equal(count_segs(f->dir), 1);
    get_ok(s, 1, 31); /* acked records stay readable until their segment goes */
    put_range(s, 36, 36);
    wp_spool_stats(s, &st);
    assert_int_equal(st.pending, 1);
    assert_int_equal(st.oldest_ts_ms, ts_of(36));
    wp_spool_close(s);

    s = open_ok(f->dir, &l);
    wp_spool_stats(s, &st);
    assert_int_equal(st.acked_seq, 35);
    assert_int_equal(st.next_seq, 37);
    assert_int_equal(st.dropped_records, 0);
    wp_spool_close(s);
}

static void spool_sync_remote(void **state)
{
    struct fx *f = *state;
    char copy[160];
    char other[160];
    char path[256];
    struct wp_spool_limits l = lim_mk(1 << 20, SEG, 0, 0);
    struct wp_spool *s = open_ok(f->dir, &l);
    struct wp_spool *c = NULL;
    struct wp_spool_stats st;

    /* A lost spool: the collector is ahead, next seq moves past it durably. */
    assert_int_equal(wp_spool_sync_remote(s, 500), 0);
    wp_spool_stats(s, &st);
    assert_int_equal(st.next_seq, 501);
    assert_int_equal(st.acked_seq, 500);
    assert_int_equal(st.pending, 0);
    snprintf(copy, sizeof(copy), "%s/copy", f->root);
    copy_dir(f->dir, copy);
    c = open_ok(copy, &l);
    wp_spool_stats(c, &st);
    assert_int_equal(st.next_seq, 501);
    wp_spool_close(c);
    put_range(s, 501, 501);
    seg_path(path, sizeof(path), f->dir, 501);
    assert_int_equal(access(path, F_OK), 0);
    wp_spool_close(s);

    /* The collector is behind: a plain ack, never backwards. */
    snprintf(other, sizeof(other), "%s/other", f->root);
    s = open_ok(other, &l);
    put_range(s, 1, 10);
    assert_int_equal(wp_spool_sync_remote(s, 4), 0);
    wp_spool_stats(s, &st);
    assert_int_equal(st.acked_seq, 4);
    assert_int_equal(st.next_seq, 11);
    assert_int_equal(st.pending, 6);
    assert_int_equal(wp_spool_sync_remote(s, 2), 0);
    wp_spool_stats(s, &st);
    assert_int_equal(st.acked_seq, 4);
    assert_int_equal(wp_spool_sync_remote(s, 10), 0);
    wp_spool_stats(s, &st);
    assert_int_equal(st.acked_seq, 10);
    assert_int_equal(st.next_seq, 11);
    /* Restored from an old copy: the collector has seq 11 already. */
    assert_int_equal(wp_spool_sync_remote(s, 11), 0);
    wp_spool_stats(s, &st);
    assert_int_equal(st.acked_seq, 11);
    assert_int_equal(st.next_seq, 12);
    assert_int_equal(st.records, 0);
    assert_int_equal(count_segs(other), 0);
    put_range(s, 12, 12);
    seg_path(path, sizeof(path), other, 12);
    assert_int_equal(access(path, F_OK), 0);
    wp_spool_close(s);
}

static void spool_bound_bytes(void **state)
{
    struct fx *f = *state;
    struct wp_spool_limits l = lim_mk(3 * SEG, SEG, 0, 0);
    struct wp_spool *s = open_ok(f->dir, &l);
    struct wp_spool_stats st;
    uint64_t want_vals = 0;

    put_range(s, 1, 30);
    wp_spool_stats(s, &st);
    assert_int_equal(st.bytes, 3 * SEG);
    assert_int_equal(st.dropped_records, 0);
    assert_int_equal(wp_spool_ack(s, 5), 0);

    /* 31 does not fit: 1-10 goes, of which 6..10 were unacked */
    put_range(s, 31, 31);
    want_vals = nv_sum(6, 10);
    wp_spool_stats(s, &st);
    assert_int_equal(st.dropped_records, 5);
    assert_int_equal(st.dropped_values, want_vals);
    assert_int_equal(st.dropped_bytes, 5 * REC);
    assert_int_equal(st.first_seq, 11);
    assert_int_equal(st.records, 21);
    assert_int_equal(st.pending, 21);
    assert_int_equal(st.bytes, 21 * REC);
    assert_int_equal(st.oldest_ts_ms, ts_of(11));

    put_range(s, 32, 40);
    wp_spool_stats(s, &st);
    assert_int_equal(st.dropped_records, 5);
    put_range(s, 41, 41); /* 11-20 goes, all unacked */
    want_vals += nv_sum(11, 20);
    wp_spool_stats(s, &st);
    assert_int_equal(st.dropped_records, 15);
    assert_int_equal(st.dropped_values, want_vals);
    assert_int_equal(st.dropped_bytes, 15 * REC);

    assert_int_equal(wp_spool_ack(s, 25), 0);
    put_range(s, 42, 51); /* 51 pushes out 21-30, of which 26..30 unacked */
    want_vals += nv_sum(26, 30);
    wp_spool_stats(s, &st);
    assert_int_equal(st.dropped_records, 20);
    assert_int_equal(st.dropped_values, want_vals);
    assert_int_equal(st.dropped_bytes, 20 * REC);
    assert_int_equal(st.first_seq, 31);
    assert_int_equal(st.records, 21);
    assert_true(st.bytes <= 3 * SEG);
    assert_int_equal(count_segs(f->dir), 3);
    get_ok(s, 1, 31);

    /* A fully acked segment pushed out by the bound is no loss. */
    put_range(s, 52, 60);
    assert_int_equal(wp_spool_ack(s, 60), 0);
    wp_spool_stats(s, &st);
    assert_int_equal(st.first_seq, 51); /* 51-60 is still the segment being written */
    put_range(s, 61, 61);
    wp_spool_stats(s, &st);
    assert_int_equal(st.dropped_records, 20);
    assert_int_equal(st.dropped_values, want_vals);
    assert_int_equal(st.dropped_bytes, 20 * REC);
    assert_int_equal(st.first_seq, 61);
    wp_spool_close(s);

    /* The counters survive a restart. */
    s = open_ok(f->dir, &l);
    wp_spool_stats(s, &st);
    assert_int_equal(st.dropped_records, 20);
    assert_int_equal(st.dropped_values, want_vals);
    assert_int_equal(st.dropped_bytes, 20 * REC);
    assert_int_equal(st.next_seq, 62);
    assert_int_equal(st.acked_seq, 60);
    wp_spool_close(s);
}

static void spool_bound_age(void **state)
{
    struct fx *f = *state;
    struct wp_spool_limits l = lim_mk(1 << 20, SEG, 1000, 0);
    struct wp_spool *s = open_ok(f->dir, &l);
    struct wp_spool_stats st;

    for (uint64_t q = 1; q <= 10; q++) {
        put_ts(s, q, 1000 + (int64_t)(q - 1) * 10); /* newest 1090 */
    }
    for (uint64_t q = 11; q <= 20; q++) {
        put_ts(s, q, 1500 + (int64_t)(q - 11) * 10); /* newest 1590 */
    }
    put_ts(s, 21, 2095); /* cutoff 1095: 1-10 goes */
    wp_spool_stats(s, &st);
    assert_int_equal(st.dropped_records, 10);
    assert_int_equal(st.dropped_values, nv_sum(1, 10));
    assert_int_equal(st.dropped_bytes, 10 * REC);
    assert_int_equal(st.first_seq, 11);
    assert_int_equal(st.oldest_ts_ms, 1500);
    put_ts(s, 22, 2590); /* cutoff 1590: not older than it */
    wp_spool_stats(s, &st);
    assert_int_equal(st.dropped_records, 10);
    put_ts(s, 23, 2591); /* cutoff 1591: 11-20 goes */
    wp_spool_stats(s, &st);
    assert_int_equal(st.dropped_records, 20);
    assert_int_equal(st.first_seq, 21);
    /* The segment being written is rolled once too old, then dropped. */
    put_ts(s, 24, 5000);
    wp_spool_stats(s, &st);
    assert_int_equal(st.dropped_records, 23);
    assert_int_equal(st.dropped_values, nv_sum(1, 23));
    assert_int_equal(st.dropped_bytes, 23 * REC);
    assert_int_equal(st.first_seq, 24);
    assert_int_equal(st.records, 1);
    assert_int_equal(st.oldest_ts_ms, 5000);
    assert_int_equal(count_segs(f->dir), 1);
    wp_spool_close(s);
}

static void spool_torn_tail(void **state)
{
    struct fx *f = *state;
    char path[256];
    char copy[160];
    const uint8_t junk[10] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    struct wp_spool_limits l = lim_mk(1 << 20, SEG, 0, 0);
    struct wp_spool *s = open_ok(f->dir, &l);
    struct wp_spool_stats st;

    /* garbage after the last record */
    put_range(s, 1, 5);
    wp_spool_close(s);
    seg_path(path, sizeof(path), f->dir, 1);
    write_file(path, junk, sizeof(junk), O_APPEND);
    s = open_ok(f->dir, &l);
    assert_int_equal(file_size(path), 5 * REC);
    wp_spool_stats(s, &st);
    assert_int_equal(st.records, 5);
    assert_int_equal(st.next_seq, 6);
    assert_int_equal(st.dropped_records, 0);
    put_range(s, 6, 6);
    assert_int_equal(count_segs(f->dir), 1);
    assert_int_equal(file_size(path), 6 * REC);
    for (uint64_t q = 1; q <= 6; q++) {
        get_ok(s, q, q);
    }
    get_none(s, 7);

    /* A crash in the middle of writing 7: only 1..6 are whole. */
    put_range(s, 7, 7);
    snprintf(copy, sizeof(copy), "%s/copy", f->root);
    copy_dir(f->dir, copy);
    wp_spool_close(s);
    seg_path(path, sizeof(path), copy, 1);
    assert_int_equal(truncate(path, 6 * REC + 40), 0);
    s = open_ok(copy, &l);
    assert_int_equal(file_size(path), 6 * REC);
    wp_spool_stats(s, &st);
    assert_int_equal(st.records, 6);
    assert_int_equal(st.next_seq, 7);
    assert_int_equal(st.dropped_records, 0);
    put_range(s, 7, 7);
    for (uint64_t q = 1; q <= 7; q++) {
        get_ok(s, q, q);
    }
    wp_spool_close(s);
}

static void spool_corrupt_middle(void **state)
{
    struct fx *f = *state;
    char path[256];
    char copy[160];
    char live[160];
    struct wp_spool_limits l = lim_mk(1 << 20, SEG, 0, 0);
    struct wp_spool *s = open_ok(f->dir, &l);
    struct wp_spool_stats st;

    /* Found on open: record 4's payload is damaged, 4..10 are gone, 11.. are fine. */
    put_range(s, 1, 15);
    wp_spool_close(s);
    seg_path(path, sizeof(path), f->dir, 1);
    flip_byte(path, 3 * REC + 28 + 5);
    s = open_ok(f->dir, &l);
    wp_spool_stats(s, &st);
    assert_int_equal(st.next_seq, 16);
    assert_int_equal(st.records, 8);
    assert_int_equal(st.dropped_records, 7);
    assert_int_equal(st.dropped_values, nv_sum(4, 10));
    assert_int_equal(st.dropped_bytes, 7 * REC);
    assert_int_equal(file_size(path), 3 * REC);
    for (uint64_t q = 1; q <= 3; q++) {
        get_ok(s, q, q);
    }
    get_ok(s, 4, 11);
    get_ok(s, 12, 12);
    wp_spool_close(s);
    s = open_ok(f->dir, &l); /* no double counting */
    wp_spool_stats(s, &st);
    assert_int_equal(st.dropped_records, 7);
    assert_int_equal(st.records, 8);
    wp_spool_close(s);

    /* In the last segment after a crash (state says nothing): seqs 13..15 stay used. */
    snprintf(live, sizeof(live), "%s/live", f->root);
    s = open_ok(live, &l);
    put_range(s, 1, 15);
    snprintf(copy, sizeof(copy), "%s/copy", f->root);
    copy_dir(live, copy);
    seg_path(path, sizeof(path), copy, 11);
    flip_byte(path, 2 * REC + 28 + 1);
    struct wp_spool *c = open_ok(copy, &l);
    wp_spool_stats(c, &st);
    assert_int_equal(st.next_seq, 16);
    assert_int_equal(st.records, 12);
    assert_int_equal(st.dropped_records, 3);
    assert_int_equal(st.dropped_values, nv_sum(13, 15));
    assert_int_equal(st.dropped_bytes, 3 * REC);
    get_none(c, 13);
    put_range(c, 16, 16);
    assert_int_equal(count_segs(copy), 3); /* 16 starts a segment of its own */
    get_ok(c, 13, 16);
    wp_spool_close(c);

    /* Found while reading: the sender skips to the next good segment. */
    seg_path(path, sizeof(path), live, 1);
    flip_byte(path, 3 * REC + 28 + 5);
    get_ok(s, 1, 1);
    get_ok(s, 2, 2);
    get_ok(s, 3, 3);
    get_ok(s, 4, 11);
    wp_spool_stats(s, &st);
    assert_int_equal(st.dropped_records, 7);
    assert_int_equal(st.dropped_values, nv_sum(4, 10));
    assert_int_equal(st.dropped_bytes, 7 * REC);
    assert_int_equal(st.records, 8);
    assert_int_equal(file_size(path), 3 * REC);
    put_range(s, 16, 16);
    wp_spool_close(s);
    s = open_ok(live, &l);
    wp_spool_stats(s, &st);
    assert_int_equal(st.dropped_records, 7);
    assert_int_equal(st.next_seq, 17);
    wp_spool_close(s);
}

static void spool_refuses_too_big(void **state)
{
    struct fx *f = *state;
    static uint8_t p[2000];
    struct wp_spool_limits l = lim_mk(1000, 0, 0, 0);
    struct wp_spool *s = open_ok(f->dir, &l);
    struct wp_spool_stats st;
    uint64_t seq = 99;

    assert_int_equal(wp_spool_append(s, p, 1000 - 28 + 1, 1, 1, &seq), WP_ETOOBIG);
    assert_int_equal(wp_spool_append(s, p, sizeof(p), 1, 1, &seq), WP_ETOOBIG);
    wp_spool_stats(s, &st);
    assert_int_equal(st.next_seq, 1);
    assert_int_equal(st.records, 0);
    assert_int_equal(wp_spool_append(s, p, 1000 - 28, 1, 1, &seq), 0);
    assert_int_equal(seq, 1);
    assert_int_equal(wp_spool_append(s, p, 1000 - 28, 1, 1, &seq), 0);
    assert_int_equal(seq, 2);
    wp_spool_stats(s, &st);
    assert_int_equal(st.bytes, 1000);
    assert_int_equal(st.dropped_records, 1);
    wp_spool_close(s);
}

static void spool_read_forward_after_restart(void **state)
{
    struct fx *f = *state;
    struct wp_spool_limits l = lim_mk(1 << 20, SEG, 0, 0);
    struct wp_spool *s = open_ok(f->dir, &l);

    put_range(s, 1, 50);
    wp_spool_close(s);
    s = open_ok(f->dir, &l);
    for (uint64_t q = 1; q <= 50; q++) {
        get_ok(s, q, q);
    }
    get_none(s, 51);
    get_ok(s, 10, 10);
    get_ok(s, 0, 1);
    get_ok(s, 31, 31);
    assert_int_equal(wp_spool_ack(s, 20), 0);
    get_ok(s, 5, 21);
    for (uint64_t q = 22; q <= 50; q += 7) {
        get_ok(s, q, q);
    }
    wp_spool_close(s);
}

static void spool_state_lost_segments_present(void **state)
{
    struct fx *f = *state;
    char path[256];
    struct wp_spool_limits l = lim_mk(1 << 20, SEG, 0, 0);
    struct wp_spool *s = open_ok(f->dir, &l);
    struct wp_spool_stats st;

    put_range(s, 1, 30);
    assert_int_equal(wp_spool_ack(s, 15), 0);
    wp_spool_close(s);
    snprintf(path, sizeof(path), "%s/state", f->dir);
    assert_int_equal(unlink(path), 0);
    s = open_ok(f->dir, &l);
    wp_spool_stats(s, &st);
    assert_int_equal(st.next_seq, 31);
    assert_int_equal(st.first_seq, 11);
    assert_int_equal(st.acked_seq, 10); /* nothing says more: all stored is pending */
    assert_int_equal(st.pending, 20);
    put_range(s, 31, 31);
    wp_spool_close(s);

    /* A corrupt state file with segments present recovers the same way. */
    write_file(path, "not a state file", 16, O_TRUNC);
    s = open_ok(f->dir, &l);
    wp_spool_stats(s, &st);
    assert_int_equal(st.next_seq, 32);
    assert_int_equal(st.first_seq, 11);
    put_range(s, 32, 32);
    wp_spool_close(s);
}

static void spool_state_lost_no_segments(void **state)
{
    struct fx *f = *state;
    char path[256];
    struct wp_spool_limits l = lim_mk(1 << 20, SEG, 0, 0);
    struct wp_spool *s = open_ok(f->dir, &l);
    struct wp_spool_stats st;

    put_range(s, 1, 10);
    wp_spool_close(s);
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);

    /* The whole spool is gone: seqs restart, and WELCOME moves them past the collector. */
    s = open_ok(f->dir, &l);
    wp_spool_stats(s, &st);
    assert_int_equal(st.next_seq, 1);
    assert_int_equal(wp_spool_sync_remote(s, 10), 0);
    put_range(s, 11, 11);
    wp_spool_close(s);
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);

    /* A corrupt state file and nothing else: refuse rather than reuse seqs. */
    assert_int_equal(mkdir(f->dir, 0700), 0);
    snprintf(path, sizeof(path), "%s/state", f->dir);
    write_file(path, "garbage", 7, O_TRUNC);
    s = (struct wp_spool *)&st;
    assert_int_equal(wp_spool_open(f->dir, &l, &s), WP_ECORRUPT);
    assert_null(s);

    /* ...unless an (empty) segment still names the next seq. */
    seg_path(path, sizeof(path), f->dir, 42);
    write_file(path, "", 0, O_TRUNC);
    s = open_ok(f->dir, &l);
    wp_spool_stats(s, &st);
    assert_int_equal(st.next_seq, 42);
    assert_int_equal(st.acked_seq, 41);
    assert_int_equal(st.records, 0);
    assert_int_equal(count_segs(f->dir), 0);
    put_range(s, 42, 42);
    wp_spool_close(s);
}

static void spool_failed_write_leaves_no_trace(void **state)
{
    struct fx *f = *state;
    char path[256];
    struct wp_spool_limits l = lim_mk(1 << 20, SEG, 0, 1);
    struct wp_spool *s = open_ok(f->dir, &l);
    struct wp_spool_stats st;
    struct rlimit old;
    struct rlimit lim;
    uint8_t p[PL];
    uint64_t seq = 0;

    put_range(s, 1, 3);
    seg_path(path, sizeof(path), f->dir, 1);
    /* A file size limit cuts the write half way, like a full disk. */
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 3 * REC + 50;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    fill(p, PL, 4);
    int rc = wp_spool_append(s, p, PL, ts_of(4), nv(4), &seq);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_DFL);
    assert_int_equal(rc, -EFBIG);
    assert_int_equal(file_size(path), 3 * REC);
    wp_spool_stats(s, &st);
    assert_int_equal(st.next_seq, 4);
    assert_int_equal(st.records, 3);
    put_range(s, 4, 4);
    get_ok(s, 4, 4);
    wp_spool_close(s);
    s = open_ok(f->dir, &l);
    wp_spool_stats(s, &st);
    assert_int_equal(st.records, 4);
    assert_int_equal(st.next_seq, 5);
    wp_spool_close(s);
}

static void spool_locked_while_open(void **state)
{
    struct fx *f = *state;
    struct wp_spool *s = open_ok(f->dir, NULL);
    struct wp_spool *t = NULL;

    assert_int_equal(wp_spool_open(f->dir, NULL, &t), -EBUSY);
    assert_null(t);
    wp_spool_close(s);
    t = open_ok(f->dir, NULL);
    wp_spool_close(t);
}

static void spool_memory_is_bounded(void **state)
{
    struct fx *f = *state;
    struct wp_spool_limits l = lim_mk(16u << 20, 4096, 0, 0);
    struct wp_spool *s = NULL;
    struct wp_spool_stats st;
    uint8_t p[20];
    const uint8_t *pl = NULL;
    size_t len = 0;
    uint64_t seq = 0;
    int64_t ts = 0;
    size_t base = heap_used();

    /* The measure must see a real allocation, or the bound below proves nothing. */
    void *probe = malloc(1 << 20);
    assert_non_null(probe);
    memset(probe, 1, 1 << 20);
    assert_true(heap_used() >= base + (1 << 20));
    free(probe);

    base = heap_used();
    s = open_ok(f->dir, &l);
    memset(p, 7, sizeof(p));
    for (uint64_t q = 1; q <= 100000; q++) {
        assert_int_equal(wp_spool_append(s, p, sizeof(p), (int64_t)q, 1, &seq), 0);
        assert_int_equal(seq, q);
    }
    for (uint64_t q = 1; q <= 100000; q++) {
        assert_int_equal(wp_spool_read(s, q, &seq, &ts, &pl, &len), 0);
        assert_int_equal(seq, q);
        assert_int_equal(ts, (int64_t)q);
    }
    assert_int_equal(wp_spool_ack(s, 50000), 0);
    wp_spool_stats(s, &st);
    assert_int_equal(st.pending, 50000);
    assert_true(count_segs(f->dir) > 500); /* many segments, each indexed */
    size_t used = heap_used() - base;
    print_message("spool heap after 100k records in %d segments: %zu bytes\n", count_segs(f->dir),
                  used);
    assert_true(used < 256 * 1024);
    wp_spool_close(s);

    base = heap_used();
    s = open_ok(f->dir, &l);
    wp_spool_stats(s, &st);
    assert_int_equal(st.records, 100000 - 49980); /* 50000 is inside a 85-record segment */
    assert_true(heap_used() - base < 256 * 1024);
    wp_spool_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(spool_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(spool_seq_continues_after_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(spool_ack_deletes_segments_after_state, setup, teardown),
        cmocka_unit_test_setup_teardown(spool_sync_remote, setup, teardown),
        cmocka_unit_test_setup_teardown(spool_bound_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(spool_bound_age, setup, teardown),
        cmocka_unit_test_setup_teardown(spool_torn_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(spool_corrupt_middle, setup, teardown),
        cmocka_unit_test_setup_teardown(spool_refuses_too_big, setup, teardown),
        cmocka_unit_test_setup_teardown(spool_read_forward_after_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(spool_state_lost_segments_present, setup, teardown),
        cmocka_unit_test_setup_teardown(spool_state_lost_no_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(spool_failed_write_leaves_no_trace, setup, teardown),
        cmocka_unit_test_setup_teardown(spool_locked_while_open, setup, teardown),
        cmocka_unit_test_setup_teardown(spool_memory_is_bounded, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
