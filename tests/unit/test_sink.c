/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for the agent's series dictionary (persistence, torn tail) and batch building. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "sink.h"
#include "wp/err.h"
#include "wp/mem.h"
#include "wp/wire.h"

static const char *const cpu_fields[] = {"user", "system", "idle"};
static const struct wp_series_kind cpu_kind = {"cpu", cpu_fields, 3, WP_DS_GAUGE};
static const char *const mem_fields[] = {"used", "free"};
static const struct wp_series_kind mem_kind = {"memory", mem_fields, 2, WP_DS_GAUGE};
/* same group as cpu_kind, other fields: a new definition */
static const char *const cpu2_fields[] = {"user", "system", "idle", "steal"};
static const struct wp_series_kind cpu2_kind = {"cpu", cpu2_fields, 4, WP_DS_GAUGE};
/* a separate struct with cpu_kind's exact layout (another probe defining the same group) */
static const char *const cpu_copy_fields[] = {"user", "system", "idle"};
static const struct wp_series_kind cpu_copy_kind = {"cpu", cpu_copy_fields, 3, WP_DS_GAUGE};

struct fx {
    char dir[64];
    char path[128];
};

static int setup(void **state)
{
    struct fx *f = wp_xcalloc(1, sizeof(*f));

    snprintf(f->dir, sizeof(f->dir), "/tmp/wp_test_sink.XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof(f->path), "%s/series.dict", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static off_t file_size(const char *path)
{
    struct stat st;

    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/* Emit one row and return the id it got, read back from the batch encoder. */
static uint32_t emit(struct agent_sink *s, const struct wp_series_kind *k, const char *inst,
                     uint32_t step)
{
    struct wp_sink *ws = agent_sink_wp(s);
    double vals[WP_SERIES_MAX_FIELDS];
    struct wp_buf tail;
    struct wp_buf frame;
    struct wp_msg m;
    struct wp_rec rec;
    uint32_t id = 0;

    for (uint32_t i = 0; i < k->nfields; i++) {
        vals[i] = i;
    }
    agent_sink_batch_begin(s, 1000);
    ws->ts_ms = 1000;
    ws->step_s = step;
    wp_sink_metric(ws, k, inst, vals);
    if (agent_sink_batch_rows(s) == 0) {
        return 0;
    }
    wp_buf_init(&tail);
    wp_buf_init(&frame);
    agent_sink_batch_finish(s, &tail);
    wp_put_batch(&frame, 1, wp_buf_head(&tail), wp_buf_unread(&tail));
    wp_msg_init(&m);
    assert_int_equal(wp_msg_decode(&m, frame.data + WP_FRAME_HDR, frame.len - WP_FRAME_HDR), 0);
    assert_int_equal(m.u.batch.recs->size, 1);
    assert_int_equal(wp_batch_rec(&m, 0, &rec), 0);
    id = rec.id;
    wp_msg_cleanup(&m);
    wp_buf_cleanup(&tail);
    wp_buf_cleanup(&frame);
    return id;
}

static void assert_def(struct agent_sink *s, uint32_t id, const char *group, const char *inst,
                       uint32_t nfields, uint32_t step)
{
    struct wp_series_def d;

    assert_int_equal(agent_sink_def(s, id, &d), 0);
    assert_int_equal(d.id, id);
    assert_true(wp_str_eq(d.group, group));
    assert_true(wp_str_eq(d.inst, inst));
    assert_int_equal(d.nfields, nfields);
    assert_int_equal(d.step_s, step);
}

static void ids_stable_across_reopen(void **state)
{
    struct fx *f = *state;
    struct agent_sink *s = NULL;

    assert_int_equal(agent_sink_open(f->path, 1, &s), 0);
    assert_int_equal(agent_sink_max_id(s), 0);
    assert_int_equal(emit(s, &cpu_kind, "cpu0", 10), 1);
    assert_int_equal(emit(s, &cpu_kind, "cpu1", 10), 2);
    assert_int_equal(emit(s, &mem_kind, "", 10), 3);
    assert_int_equal(emit(s, &cpu_kind, "cpu0", 10), 1);
    assert_int_equal(emit(s, &mem_kind, NULL, 10), 3); /* NULL inst is "" */
    assert_int_equal(agent_sink_durable_id(s), 0);     /* not on disk yet: not for defs */
    assert_int_equal(agent_sink_sync(s), 0);
    assert_int_equal(agent_sink_durable_id(s), 3);
    agent_sink_free(s);
    s = NULL;

    assert_int_equal(agent_sink_open(f->path, 1, &s), 0);
    assert_int_equal(agent_sink_max_id(s), 3);
    assert_int_equal(agent_sink_durable_id(s), 3);
    assert_def(s, 1, "cpu", "cpu0", 3, 10);
    assert_def(s, 2, "cpu", "cpu1", 3, 10);
    assert_def(s, 3, "memory", "", 2, 10);
    /* found through the full comparison after a reopen (no cached kind yet) */
    assert_int_equal(emit(s, &cpu_kind, "cpu1", 10), 2);
    assert_int_equal(emit(s, &mem_kind, "", 10), 3);
    assert_int_equal(emit(s, &cpu_kind, "cpu2", 10), 4);
    assert_int_equal(agent_sink_sync(s), 0);
    agent_sink_free(s);
    s = NULL;

    assert_int_equal(agent_sink_open(f->path, 0, &s), 0);
    assert_int_equal(agent_sink_max_id(s), 4);
    assert_def(s, 4, "cpu", "cpu2", 3, 10);
    assert_int_equal(agent_sink_def(s, 5, &(struct wp_series_def){0}), WP_ENOTFOUND);
    assert_int_equal(agent_sink_def(s, 0, &(struct wp_series_def){0}), WP_ENOTFOUND);
    agent_sink_free(s);
}

static void unsynced_series_are_not_persisted(void **state)
{
    struct fx *f = *state;
    struct agent_sink *s = NULL;

    assert_int_equal(agent_sink_open(f->path, 0, &s), 0);
    assert_int_equal(emit(s, &cpu_kind, "cpu0", 1), 1);
    assert_int_equal(agent_sink_sync(s), 0);
    assert_int_equal(emit(s, &cpu_kind, "cpu1", 1), 2);
    agent_sink_free(s); /* no sync: id 2 never reached the disk */
    s = NULL;
    assert_int_equal(agent_sink_open(f->path, 0, &s), 0);
    assert_int_equal(agent_sink_max_id(s), 1);
    agent_sink_free(s);
}

static void definition_change_gets_new_id(void **state)
{
    struct fx *f = *state;
    struct agent_sink *s = NULL;

    assert_int_equal(agent_sink_open(f->path, 0, &s), 0);
    assert_int_equal(emit(s, &cpu_kind, "cpu0", 10), 1);
    assert_int_equal(emit(s, &cpu_kind, "cpu0", 1), 2);       /* new step */
    assert_int_equal(emit(s, &cpu2_kind, "cpu0", 1), 3);      /* new fields */
    assert_int_equal(emit(s, &cpu_copy_kind, "cpu0", 10), 1); /* same layout, other struct */
    assert_int_equal(emit(s, &cpu_kind, "cpu0", 10), 1);
    assert_int_equal(emit(s, &cpu2_kind, "cpu0", 1), 3);
    assert_int_equal(agent_sink_max_id(s), 3);
    assert_int_equal(agent_sink_sync(s), 0);
    agent_sink_free(s);
    s = NULL;

    assert_int_equal(agent_sink_open(f->path, 0, &s), 0);
    assert_int_equal(agent_sink_max_id(s), 3);
    assert_def(s, 2, "cpu", "cpu0", 3, 1);
    assert_def(s, 3, "cpu", "cpu0", 4, 1);
    assert_int_equal(emit(s, &cpu2_kind, "cpu0", 1), 3);
    assert_int_equal(emit(s, &cpu_kind, "cpu0", 1), 2);
    agent_sink_free(s);
}

static void torn_tail_is_cut(void **state)
{
    struct fx *f = *state;
    struct agent_sink *s = NULL;
    off_t two = 0;
    off_t three = 0;

    assert_int_equal(agent_sink_open(f->path, 0, &s), 0);
    emit(s, &cpu_kind, "cpu0", 10);
    emit(s, &cpu_kind, "cpu1", 10);
    assert_int_equal(agent_sink_sync(s), 0);
    two = file_size(f->path);
    emit(s, &cpu_kind, "a-rather-long-instance-name", 10);
    assert_int_equal(agent_sink_sync(s), 0);
    three = file_size(f->path);
    agent_sink_free(s);
    s = NULL;

    /* a crash in the middle of the third record's write */
    assert_int_equal(truncate(f->path, three - 7), 0);
    assert_int_equal(agent_sink_open(f->path, 0, &s), 0);
    assert_int_equal(agent_sink_max_id(s), 2);
    assert_int_equal(file_size(f->path), two);
    assert_int_equal(emit(s, &mem_kind, "", 10), 3);
    assert_int_equal(agent_sink_sync(s), 0);
    agent_sink_free(s);
    s = NULL;

    assert_int_equal(agent_sink_open(f->path, 0, &s), 0);
    assert_int_equal(agent_sink_max_id(s), 3);
    assert_def(s, 3, "memory", "", 2, 10);
    agent_sink_free(s);
    s = NULL;

    /* a torn record header only (3 stray bytes) */
    FILE *fp = fopen(f->path, "ab");
    assert_non_null(fp);
    assert_int_equal(fwrite("\x20\x00\x00", 1, 3, fp), 3);
    fclose(fp);
    assert_int_equal(agent_sink_open(f->path, 0, &s), 0);
    assert_int_equal(agent_sink_max_id(s), 3);
    agent_sink_free(s);
}

static void corrupt_record_ends_the_load(void **state)
{
    struct fx *f = *state;
    struct agent_sink *s = NULL;
    off_t one = 0;

    assert_int_equal(agent_sink_open(f->path, 0, &s), 0);
    emit(s, &cpu_kind, "cpu0", 10);
    assert_int_equal(agent_sink_sync(s), 0);
    one = file_size(f->path);
    emit(s, &cpu_kind, "cpu1", 10);
    emit(s, &cpu_kind, "cpu2", 10);
    assert_int_equal(agent_sink_sync(s), 0);
    agent_sink_free(s);
    s = NULL;

    /* flip a byte inside record 2's body: its CRC no longer matches */
    int fd = open(f->path, O_RDWR);
    uint8_t b = 0;
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &b, 1, one + 12), 1);
    b ^= 0x40;
    assert_int_equal(pwrite(fd, &b, 1, one + 12), 1);
    close(fd);

    assert_int_equal(agent_sink_open(f->path, 0, &s), 0);
    assert_int_equal(agent_sink_max_id(s), 1);
    assert_int_equal(file_size(f->path), one);
    assert_int_equal(emit(s, &cpu_kind, "cpu9", 10), 2);
    agent_sink_free(s);
}

static void bad_magic_is_refused(void **state)
{
    struct fx *f = *state;
    struct agent_sink *s = NULL;
    FILE *fp = fopen(f->path, "wb");

    assert_non_null(fp);
    fputs("NOTADICT and more", fp);
    fclose(fp);
    assert_int_equal(agent_sink_open(f->path, 0, &s), WP_ECORRUPT);
    assert_null(s);

    /* a torn magic (crash while creating the file) is simply redone */
    fp = fopen(f->path, "wb");
    assert_non_null(fp);
    fputs("WPDI", fp);
    fclose(fp);
    assert_int_equal(agent_sink_open(f->path, 0, &s), 0);
    assert_int_equal(agent_sink_max_id(s), 0);
    assert_int_equal(file_size(f->path), 8);
    agent_sink_free(s);
}

static void batch_decodes_to_same_rows(void **state)
{
    struct fx *f = *state;
    struct agent_sink *s = NULL;
    struct wp_sink *ws = NULL;
    struct wp_buf tail;
    struct wp_buf frame;
    struct wp_msg m;
    struct wp_rec rec;
    uint32_t body = 0;
    const double cpu0[3] = {1.5, 2, NAN};
    const double cpu1[3] = {-3, 1e12, 0.1};
    const double mem[2] = {123456789012.0, 0};

    assert_int_equal(agent_sink_open(f->path, 0, &s), 0);
    ws = agent_sink_wp(s);
    agent_sink_batch_begin(s, 1700000000000);
    ws->ts_ms = 1700000000000;
    ws->step_s = 1;
    wp_sink_metric(ws, &cpu_kind, "cpu0", cpu0);
    wp_sink_metric(ws, &cpu_kind, "cpu1", cpu1);
    ws->step_s = 10;
    wp_sink_metric(ws, &mem_kind, "", mem);
    assert_int_equal(agent_sink_batch_rows(s), 3);
    assert_int_equal(agent_sink_batch_values(s), 8);

    wp_buf_init(&tail);
    wp_buf_init(&frame);
    agent_sink_batch_finish(s, &tail);
    wp_put_batch(&frame, 42, wp_buf_head(&tail), wp_buf_unread(&tail));
    assert_int_equal(wp_frame_peek(frame.data, frame.len, 1u << 20, &body), 0);
    assert_int_equal(body, frame.len - WP_FRAME_HDR);
    wp_msg_init(&m);
    assert_int_equal(wp_msg_decode(&m, frame.data + WP_FRAME_HDR, body), 0);
    assert_int_equal(m.type, WP_MSG_BATCH);
    assert_int_equal(m.u.batch.seq, 42);
    assert_int_equal(m.u.batch.ts_ms, 1700000000000);
    assert_int_equal(m.u.batch.recs->size, 3);

    assert_int_equal(wp_batch_rec(&m, 0, &rec), 0);
    assert_int_equal(rec.kind, WP_REC_METRIC);
    assert_int_equal(rec.id, 1);
    assert_int_equal(rec.ts_ms, 1700000000000);
    assert_int_equal(rec.nvals, 3);
    assert_true(wp_val(&rec.vals[0]) == 1.5);
    assert_true(wp_val(&rec.vals[1]) == 2);
    assert_true(isnan(wp_val(&rec.vals[2])));
    assert_int_equal(wp_batch_rec(&m, 1, &rec), 0);
    assert_int_equal(rec.id, 2);
    assert_true(wp_val(&rec.vals[0]) == -3);
    assert_true(wp_val(&rec.vals[1]) == 1e12);
    assert_true(wp_val(&rec.vals[2]) == 0.1);
    assert_int_equal(wp_batch_rec(&m, 2, &rec), 0);
    assert_int_equal(rec.id, 3);
    assert_int_equal(rec.nvals, 2);
    assert_true(wp_val(&rec.vals[0]) == 123456789012.0);
    assert_true(wp_val(&rec.vals[1]) == 0);
    assert_def(s, 3, "memory", "", 2, 10);
    wp_msg_cleanup(&m);

    /* the encoder is reused: the next batch holds only its own rows */
    agent_sink_batch_begin(s, 1700000001000);
    ws->ts_ms = 1700000001000;
    ws->step_s = 1;
    wp_sink_metric(ws, &cpu_kind, "cpu1", cpu1);
    assert_int_equal(agent_sink_batch_rows(s), 1);
    wp_buf_reset(&tail);
    wp_buf_reset(&frame);
    agent_sink_batch_finish(s, &tail);
    wp_put_batch(&frame, 43, wp_buf_head(&tail), wp_buf_unread(&tail));
    assert_int_equal(wp_msg_decode(&m, frame.data + WP_FRAME_HDR, frame.len - WP_FRAME_HDR), 0);
    assert_int_equal(m.u.batch.ts_ms, 1700000001000);
    assert_int_equal(m.u.batch.recs->size, 1);
    assert_int_equal(wp_batch_rec(&m, 0, &rec), 0);
    assert_int_equal(rec.id, 2);
    assert_int_equal(rec.ts_ms, 1700000001000);
    wp_msg_cleanup(&m);
    wp_buf_cleanup(&tail);
    wp_buf_cleanup(&frame);
    agent_sink_free(s);
}

static void bad_rows_are_dropped(void **state)
{
    struct fx *f = *state;
    struct agent_sink *s = NULL;
    static const struct wp_series_kind nofields = {"empty", cpu_fields, 0, WP_DS_GAUGE};
    static const char *const bad_fields[] = {"ok", ""};
    static const struct wp_series_kind badfield = {"bad", bad_fields, 2, WP_DS_GAUGE};
    static const struct wp_series_kind badtype = {"cpu", cpu_fields, 3, (enum wp_ds_type)9};
    char longinst[WP_INST_MAX + 2];

    memset(longinst, 'x', sizeof(longinst) - 1);
    longinst[sizeof(longinst) - 1] = '\0';
    assert_int_equal(agent_sink_open(f->path, 0, &s), 0);
    assert_int_equal(emit(s, &nofields, "a", 10), 0);
    assert_int_equal(emit(s, &badfield, "a", 10), 0);
    assert_int_equal(emit(s, &badtype, "a", 10), 0);
    assert_int_equal(emit(s, &cpu_kind, longinst, 10), 0);
    assert_int_equal(emit(s, &cpu_kind, "a", 0), 0);
    assert_int_equal(agent_sink_dropped_rows(s), 5);
    assert_int_equal(agent_sink_max_id(s), 0);
    longinst[WP_INST_MAX] = '\0'; /* exactly at the limit is fine */
    assert_int_equal(emit(s, &cpu_kind, longinst, 10), 1);
    agent_sink_free(s);
}

static void defs_frames_cover_every_series(void **state)
{
    struct fx *f = *state;
    struct agent_sink *s = NULL;
    struct wp_buf out;
    struct wp_msg m;
    struct wp_series_def d;
    char inst[32];
    uint32_t next = 1;
    size_t off = 0;
    size_t frames = 0;

    assert_int_equal(agent_sink_open(f->path, 0, &s), 0);
    for (int i = 0; i < 300; i++) {
        snprintf(inst, sizeof(inst), "line%03d", i);
        assert_int_equal(emit(s, i % 2 ? &cpu_kind : &mem_kind, inst, 5), (uint32_t)i + 1);
    }
    wp_buf_init(&out);
    assert_int_equal(agent_sink_put_defs(s, 0, 300, &out), 3);
    wp_msg_init(&m);
    while (off < out.len) {
        uint32_t body = 0;
        assert_int_equal(wp_frame_peek(out.data + off, out.len - off, 1u << 20, &body), 0);
        assert_int_equal(wp_msg_decode(&m, out.data + off + WP_FRAME_HDR, body), 0);
        assert_int_equal(m.type, WP_MSG_DEFS);
        for (uint32_t i = 0; i < m.u.defs.series->size; i++) {
            assert_int_equal(wp_defs_get(&m, i, &d), 0);
            assert_int_equal(d.id, next);
            snprintf(inst, sizeof(inst), "line%03u", next - 1);
            assert_true(wp_str_eq(d.inst, inst));
            assert_true(wp_str_eq(d.group, (next - 1) % 2 ? "cpu" : "memory"));
            assert_int_equal(d.nfields, (next - 1) % 2 ? 3 : 2);
            assert_true(wp_str_eq(d.fields[d.nfields - 1], (next - 1) % 2 ? "idle" : "free"));
            assert_int_equal(d.step_s, 5);
            next++;
        }
        wp_msg_cleanup(&m);
        off += WP_FRAME_HDR + body;
        frames++;
    }
    assert_int_equal(frames, 3);
    assert_int_equal(next, 301);

    /* only the new ones */
    wp_buf_reset(&out);
    assert_int_equal(agent_sink_put_defs(s, 298, 300, &out), 1);
    assert_int_equal(wp_msg_decode(&m, out.data + WP_FRAME_HDR, out.len - WP_FRAME_HDR), 0);
    assert_int_equal(m.u.defs.series->size, 2);
    assert_int_equal(wp_defs_get(&m, 0, &d), 0);
    assert_int_equal(d.id, 299);
    wp_msg_cleanup(&m);
    wp_buf_reset(&out);
    assert_int_equal(agent_sink_put_defs(s, 300, 300, &out), 0);
    assert_int_equal(out.len, 0);
    wp_buf_cleanup(&out);
    agent_sink_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(ids_stable_across_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(unsynced_series_are_not_persisted, setup, teardown),
        cmocka_unit_test_setup_teardown(definition_change_gets_new_id, setup, teardown),
        cmocka_unit_test_setup_teardown(torn_tail_is_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(corrupt_record_ends_the_load, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_magic_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(batch_decodes_to_same_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_rows_are_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(defs_frames_cover_every_series, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
