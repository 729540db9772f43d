/* SPDX-License-Identifier: Apache-2.0 */
/* Journal tests: ordered durable callbacks, replay, torn and corrupt tails, roll, ENOSPC. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

/* cmocka needs these first, in this order */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <uv.h>

#include "journal.h"
#include "wp/err.h"
#include "wp/mem.h"

#define MAX_RECS 4096

/* Everything a test observes; one per test. */
struct fix {
    uv_loop_t loop;
    char dir[64];
    char jdir[128];
    struct wp_journal *j;
    /* per record: number of callbacks, final status, first status, order of final ones */
    int ncb[MAX_RECS];
    int first_status[MAX_RECS];
    int final_status[MAX_RECS];
    uint64_t segment[MAX_RECS];
    int order[MAX_RECS];
    int nfinal;
    int nfirst;
    int nnotice;
    /* replay capture */
    int nrep;
    char rep_agent[MAX_RECS][16];
    uint64_t rep_seq[MAX_RECS];
    uint64_t rep_seg[MAX_RECS];
    size_t rep_len[MAX_RECS];
    uint8_t rep_first[MAX_RECS];
};

struct cbarg {
    struct fix *fx;
    int idx;
};

static struct cbarg args[MAX_RECS];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    struct fix *fx = wp_xcalloc(1, sizeof(*fx));

    snprintf(fx->dir, sizeof(fx->dir), "/tmp/wpjournalXXXXXX");
    if (mkdtemp(fx->dir) == NULL) {
        free(fx);
        return -1;
    }
    snprintf(fx->jdir, sizeof(fx->jdir), "%s/journal", fx->dir);
    uv_loop_init(&fx->loop);
    *state = fx;
    return 0;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

static int teardown(void **state)
{
    struct fix *fx = *state;

    if (fx->j != NULL) {
        wp_journal_close(fx->j);
        fx->j = NULL;
    }
    uv_walk(&fx->loop, close_walk, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&fx->loop);
    umount2(fx->dir, MNT_DETACH); /* the ENOSPC test mounts a tmpfs here */
    nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return rc == 0 ? 0 : -1;
}

static void on_guard(uv_timer_t *t)
{
    (void)t;
}

/* Run the loop until pred(fx) holds or timeout_ms passes; returns pred's final value. */
static int run_until(struct fix *fx, int (*pred)(struct fix *fx), int64_t timeout_ms)
{
    uv_timer_t guard;
    uint64_t end = uv_now(&fx->loop) + (uint64_t)timeout_ms;
    int ok = 0;

    uv_timer_init(&fx->loop, &guard);
    uv_timer_start(&guard, on_guard, 10, 10); /* wakes uv_run so the deadline is checked */
    while (!(ok = pred(fx))) {
        uv_update_time(&fx->loop);
        if (uv_now(&fx->loop) >= end) {
            break;
        }
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    return ok;
}

static void jopen(struct fix *fx, uint64_t segment_bytes)
{
    struct wp_journal_opts o = {.dir = fx->jdir, .segment_bytes = segment_bytes, .fsync = 1};
    assert_int_equal(wp_journal_open(&fx->loop, &o, &fx->j), 0);
}

static void jclose(struct fix *fx)
{
    wp_journal_close(fx->j);
    fx->j = NULL;
    uv_run(&fx->loop, UV_RUN_NOWAIT); /* runs the async handle's close callback */
}

static void on_rec(void *arg, int status, uint64_t segment)
{
    struct cbarg *a = arg;
    struct fix *fx = a->fx;

    if (fx->ncb[a->idx]++ == 0) {
        fx->first_status[a->idx] = status;
        fx->nfirst++;
    }
    if (status < 0 && status != WP_ECLOSED) {
        fx->nnotice++;
        assert_int_equal(segment, 0);
        return;
    }
    fx->final_status[a->idx] = status;
    fx->segment[a->idx] = segment;
    fx->order[fx->nfinal++] = a->idx;
}

/* Record i: agent "agent-<i%3>", seq 1000 + i, payload of len bytes (i + k) & 0xff. */
static size_t payload_fill(uint8_t *buf, int i, size_t len)
{
    for (size_t k = 0; k < len; k++) {
        buf[k] = (uint8_t)((size_t)i + k);
    }
    return len;
}

static void append_rec(struct fix *fx, int i, size_t len)
{
    uint8_t buf[8192];
    char agent[16];

    assert_true(len <= sizeof(buf));
    snprintf(agent, sizeof(agent), "agent-%d", i % 3);
    payload_fill(buf, i, len);
    args[i].fx = fx;
    args[i].idx = i;
    assert_int_equal(
        wp_journal_append(fx->j, agent, 1000 + (uint64_t)i, buf, len, on_rec, &args[i]), 0);
}

static size_t rec_len(int i)
{
    return (size_t)(i * 37) % 600;
}

/* On-disk bytes of record i as append_rec writes it. */
static size_t rec_disk(int i, size_t len)
{
    char agent[16];
    snprintf(agent, sizeof(agent), "agent-%d", i % 3);
    return 8 + 4 + strlen(agent) + 8 + len;
}

static int on_replay(void *arg, uint64_t segment, const char *agent, uint64_t seq,
                     const uint8_t *payload, size_t len)
{
    struct fix *fx = arg;
    int n = fx->nrep;

    if (n >= MAX_RECS) {
        return -ENOSPC;
    }
    snprintf(fx->rep_agent[n], sizeof(fx->rep_agent[n]), "%s", agent);
    fx->rep_seq[n] = seq;
    fx->rep_seg[n] = segment;
    fx->rep_len[n] = len;
    fx->rep_first[n] = len > 0 ? payload[0] : 0;
    /* the whole payload must be what was appended */
    int i = (int)(seq - 1000);
    for (size_t k = 0; k < len; k++) {
        if (payload[k] != (uint8_t)((size_t)i + k)) {
            return WP_ECORRUPT;
        }
    }
    fx->nrep++;
    return 0;
}

/* Replay into fx and check records [0, n) came back in order with the given lengths. */
static void check_replay(struct fix *fx, int n, size_t (*lenf)(int))
{
    fx->nrep = 0;
    assert_int_equal(wp_journal_replay(fx->j, on_replay, fx), 0);
    assert_int_equal(fx->nrep, n);
    for (int i = 0; i < n; i++) {
        char agent[16];
        snprintf(agent, sizeof(agent), "agent-%d", i % 3);
        assert_string_equal(fx->rep_agent[i], agent);
        assert_int_equal(fx->rep_seq[i], 1000 + (uint64_t)i);
        assert_int_equal(fx->rep_len[i], lenf(i));
    }
}

static int target_final;

static int all_final(struct fix *fx)
{
    return fx->nfinal >= target_final;
}

static int all_first(struct fix *fx)
{
    return fx->nfirst >= target_final;
}

static void journal_appends_ack_in_order_and_replay(void **state)
{
    struct fix *fx = *state;
    const int n = 1000;
    struct wp_journal_stats st;

    jopen(fx, 0);
    for (int i = 0; i < n; i++) {
        append_rec(fx, i, rec_len(i));
    }
    target_final = n;
    assert_true(run_until(fx, all_final, 20000));
    for (int i = 0; i < n; i++) {
        assert_int_equal(fx->order[i], i);
        assert_int_equal(fx->final_status[i], 0);
        assert_int_equal(fx->ncb[i], 1);
        assert_int_equal(fx->segment[i], 1);
    }
    wp_journal_stats(fx->j, &st);
    assert_int_equal(st.records, n);
    assert_int_equal(st.queued_bytes, 0);
    assert_int_equal(st.failed, 0);
    assert_int_equal(st.errors, 0);
    jclose(fx);

    jopen(fx, 0);
    check_replay(fx, n, rec_len);
    assert_int_equal(wp_journal_segment(fx->j), 2);
    jclose(fx);
}

static void journal_group_commit_groups(void **state)
{
    struct fix *fx = *state;
    const int n = 2000;
    struct wp_journal_stats st;

    jopen(fx, 0);
    for (int i = 0; i < n; i++) {
        append_rec(fx, i, 100);
    }
    target_final = n;
    assert_true(run_until(fx, all_final, 20000));
    wp_journal_stats(fx->j, &st);
    print_message("      %d records in %" PRIu64 " fdatasync calls\n", n, st.syncs);
    assert_int_equal(st.records, n);
    assert_true(st.syncs >= 1);
    assert_true(st.syncs < (uint64_t)n / 2);
    jclose(fx);
}

static void seg_path(struct fix *fx, uint64_t seg, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%020" PRIu64 ".wpj", fx->jdir, seg);
}

static off_t file_size(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        return -1;
    }
    return st.st_size;
}

static size_t len_100(int i)
{
    (void)i;
    return 100;
}

static void journal_torn_tail_is_cut(void **state)
{
    struct fix *fx = *state;
    const int n = 50;
    char path[256];

    jopen(fx, 0);
    for (int i = 0; i < n; i++) {
        append_rec(fx, i, 100);
    }
    target_final = n;
    assert_true(run_until(fx, all_final, 10000));
    jclose(fx);

    /* cut the last record in half and put garbage after it */
    seg_path(fx, 1, path, sizeof(path));
    off_t size = file_size(path);
    off_t good = size - (off_t)rec_disk(n - 1, 100);
    assert_int_equal(truncate(path, good + 40), 0);
    int fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "\x13garbage-garbage-garbage", 24), 24);
    close(fd);

    jopen(fx, 0);
    check_replay(fx, n - 1, len_100);
    assert_int_equal(file_size(path), good);

    /* the journal keeps working after the cut */
    memset(fx->ncb, 0, sizeof(fx->ncb));
    fx->nfinal = 0;
    for (int i = n - 1; i < n + 10; i++) {
        append_rec(fx, i, 100);
    }
    target_final = 11;
    assert_true(run_until(fx, all_final, 10000));
    jclose(fx);
    jopen(fx, 0);
    check_replay(fx, n + 10, len_100);
    jclose(fx);
}

static void journal_crc_mismatch_cuts_there(void **state)
{
    struct fix *fx = *state;
    const int n = 40;
    const int bad = 25;
    char path[256];
    off_t off = 0;

    jopen(fx, 0);
    for (int i = 0; i < n; i++) {
        append_rec(fx, i, 100);
    }
    target_final = n;
    assert_true(run_until(fx, all_final, 10000));
    jclose(fx);

    for (int i = 0; i < bad; i++) {
        off += (off_t)rec_disk(i, 100);
    }
    seg_path(fx, 1, path, sizeof(path));
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b = 0;
    off_t at = off + (off_t)rec_disk(bad, 100) - 5; /* inside record 25's payload */
    assert_int_equal(pread(fd, &b, 1, at), 1);
    b ^= 0x40;
    assert_int_equal(pwrite(fd, &b, 1, at), 1);
    close(fd);

    jopen(fx, 0);
    check_replay(fx, bad, len_100);
    assert_int_equal(file_size(path), off);
    jclose(fx);
}

static size_t len_990(int i)
{
    (void)i;
    return 990;
}

static void journal_rolls_and_releases(void **state)
{
    struct fix *fx = *state;
    const int n = 40;
    char path[256];

    /* 4 records of 1017 bytes per 4 KiB segment */
    jopen(fx, 4096);
    for (int i = 0; i < n; i++) {
        append_rec(fx, i, 990);
    }
    target_final = n;
    assert_true(run_until(fx, all_final, 10000));
    uint64_t prev = 0;
    for (int i = 0; i < n; i++) {
        assert_int_equal(fx->final_status[i], 0);
        assert_true(fx->segment[i] >= prev);
        prev = fx->segment[i];
        seg_path(fx, fx->segment[i], path, sizeof(path));
        assert_true(file_size(path) <= 4096);
    }
    uint64_t last = fx->segment[n - 1];
    assert_int_equal(last, 10);
    assert_int_equal(wp_journal_segment(fx->j), last);
    struct wp_journal_stats st;
    wp_journal_stats(fx->j, &st);
    assert_int_equal(st.segments, 10);

    assert_int_equal(wp_journal_release(fx->j, 4), 0);
    for (uint64_t s = 1; s <= last; s++) {
        seg_path(fx, s, path, sizeof(path));
        assert_int_equal(access(path, F_OK) == 0, s >= 4);
    }
    /* never the segment being written, whatever the caller asks */
    assert_int_equal(wp_journal_release(fx->j, UINT64_MAX), 0);
    for (uint64_t s = 1; s <= last; s++) {
        seg_path(fx, s, path, sizeof(path));
        assert_int_equal(access(path, F_OK) == 0, s == last);
    }
    wp_journal_stats(fx->j, &st);
    assert_int_equal(st.segments, 1);
    jclose(fx);

    /* what is left replays; a new process appends to a new segment */
    jopen(fx, 4096);
    fx->nrep = 0;
    assert_int_equal(wp_journal_replay(fx->j, on_replay, fx), 0);
    assert_int_equal(fx->nrep, 4);
    assert_int_equal(fx->rep_seq[0], 1000 + 36);
    assert_int_equal(fx->rep_seg[0], last);
    assert_int_equal(wp_journal_segment(fx->j), last + 1);
    jclose(fx);
}

static void journal_cut_middle_segment_keeps_later_ones(void **state)
{
    struct fix *fx = *state;
    const int n = 12;
    char path[256];

    jopen(fx, 4096);
    for (int i = 0; i < n; i++) {
        append_rec(fx, i, 990);
    }
    target_final = n;
    assert_true(run_until(fx, all_final, 10000));
    jclose(fx);
    /* segment 2 holds records 4..7: lose the tail of record 7 */
    seg_path(fx, 2, path, sizeof(path));
    assert_int_equal(truncate(path, file_size(path) - 3), 0);
    jopen(fx, 4096);
    fx->nrep = 0;
    assert_int_equal(wp_journal_replay(fx->j, on_replay, fx), 0);
    assert_int_equal(fx->nrep, n - 1);
    for (int i = 0; i < fx->nrep; i++) {
        uint64_t want = 1000 + (uint64_t)(i < 7 ? i : i + 1);
        assert_int_equal(fx->rep_seq[i], want);
    }
    (void)len_990;
    jclose(fx);
}

static void journal_back_pressure(void **state)
{
    struct fix *fx = *state;
    int accepted = 0;
    int rc = 0;
    uint8_t buf[1000];

    jopen(fx, 0);
    wp_journal_set_max_queue(fx->j, 10000);
    memset(buf, 0, sizeof(buf));
    for (int i = 0; i < 100; i++) {
        args[i].fx = fx;
        args[i].idx = i;
        rc = wp_journal_append(fx->j, "a", (uint64_t)i, buf, sizeof(buf), on_rec, &args[i]);
        if (rc != 0) {
            break;
        }
        accepted++;
    }
    assert_int_equal(rc, WP_ETOOBIG);
    assert_true(accepted >= 9 && accepted <= 10);
    target_final = accepted;
    assert_true(run_until(fx, all_final, 10000));
    struct wp_journal_stats st;
    wp_journal_stats(fx->j, &st);
    assert_int_equal(st.queued_bytes, 0);
    args[accepted].fx = fx;
    args[accepted].idx = accepted;
    assert_int_equal(wp_journal_append(fx->j, "a", 500, buf, sizeof(buf), on_rec, &args[accepted]),
                     0);
    target_final = accepted + 1;
    assert_true(run_until(fx, all_final, 10000));
    jclose(fx);
}

static size_t len_3000(int i)
{
    (void)i;
    return 3000;
}

/* Fill the filesystem at dir completely; returns the filler's path length or -1. */
static int fill_fs(const char *path)
{
    static uint8_t chunk[4096];
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        return -1;
    }
    for (int i = 0; i < 100000; i++) {
        if (write(fd, chunk, sizeof(chunk)) != (ssize_t)sizeof(chunk)) {
            break;
        }
    }
    close(fd);
    return 0;
}

/* A 1 MiB tmpfs at fx->dir in a private mount namespace, filled up but for one page, and the
 * journal open on it; 0, or -1 when this process may not mount (the test is skipped). */
static int full_fs(struct fix *fx, char *filler, size_t len)
{
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("tmpfs", fx->dir, "tmpfs", 0, "size=1m") != 0) {
        print_message("      SKIP: cannot mount a private tmpfs (%s); needs CAP_SYS_ADMIN\n",
                      strerror(errno));
        return -1;
    }
    jopen(fx, 0);
    snprintf(filler, len, "%s/filler", fx->dir);
    assert_int_equal(fill_fs(filler), 0);
    /* give back a little more than one page, so a write can fail half-way */
    off_t fsz = file_size(filler);
    assert_int_equal(truncate(filler, fsz - 5000), 0);
    return 0;
}

static void journal_enospc_retries_until_space(void **state)
{
    struct fix *fx = *state;
    const int n = 20;
    char filler[256];

    if (full_fs(fx, filler, sizeof(filler)) < 0) {
        skip();
    }
    for (int i = 0; i < n; i++) {
        append_rec(fx, i, 3000);
    }
    /* every record is either durable or has been told it is not (yet) */
    target_final = n;
    assert_true(run_until(fx, all_first, 10000));
    struct wp_journal_stats st;
    wp_journal_stats(fx->j, &st);
    assert_int_equal(st.failed, 1);
    assert_true(st.errors >= 1);
    assert_true(fx->nnotice >= 1);
    assert_true(fx->nfinal < n);
    int acked = fx->nfinal;
    for (int i = 0; i < n; i++) {
        if (i < acked) {
            assert_int_equal(fx->first_status[i], 0);
        } else {
            assert_int_equal(fx->first_status[i], -ENOSPC);
            assert_int_equal(fx->ncb[i], 1);
        }
    }
    /* free the space: the writer's retry completes every record, in order */
    assert_int_equal(unlink(filler), 0);
    target_final = n;
    assert_true(run_until(fx, all_final, 10000));
    for (int i = 0; i < n; i++) {
        assert_int_equal(fx->order[i], i);
        assert_int_equal(fx->final_status[i], 0);
    }
    wp_journal_stats(fx->j, &st);
    assert_int_equal(st.failed, 0);
    assert_int_equal(st.records, n);
    jclose(fx);

    /* nothing half-written was left in the segment */
    jopen(fx, 0);
    check_replay(fx, n, len_3000);
    jclose(fx);
}

static void journal_enospc_close_gives_up_cleanly(void **state)
{
    struct fix *fx = *state;
    const int n = 20;
    char filler[256];
    char path[256];

    if (full_fs(fx, filler, sizeof(filler)) < 0) {
        skip();
    }
    for (int i = 0; i < n; i++) {
        append_rec(fx, i, 3000);
    }
    target_final = n;
    assert_true(run_until(fx, all_first, 10000));
    int acked = fx->nfinal;
    assert_true(acked < n);
    /* closing while the disk is full: the rest get a final WP_ECLOSED, promptly */
    uint64_t t0 = uv_hrtime();
    jclose(fx);
    assert_true(uv_hrtime() - t0 < 900000000ull);
    assert_int_equal(fx->nfinal, n);
    for (int i = 0; i < n; i++) {
        assert_int_equal(fx->final_status[i], i < acked ? 0 : WP_ECLOSED);
    }
    /* a failed write was cut back: the segment holds exactly the acked records */
    seg_path(fx, 1, path, sizeof(path));
    assert_int_equal(file_size(path), (off_t)acked * (off_t)rec_disk(0, 3000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(journal_appends_ack_in_order_and_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(journal_group_commit_groups, setup, teardown),
        cmocka_unit_test_setup_teardown(journal_torn_tail_is_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(journal_crc_mismatch_cuts_there, setup, teardown),
        cmocka_unit_test_setup_teardown(journal_rolls_and_releases, setup, teardown),
        cmocka_unit_test_setup_teardown(journal_cut_middle_segment_keeps_later_ones, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(journal_back_pressure, setup, teardown),
        /* last: they move the process into its own mount namespace */
        cmocka_unit_test_setup_teardown(journal_enospc_retries_until_space, setup, teardown),
        cmocka_unit_test_setup_teardown(journal_enospc_close_gives_up_cleanly, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
