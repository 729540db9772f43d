/* SPDX-License-Identifier: Apache-2.0 */
/* Writes the seed corpus of fuzz_frame (tests/fuzz/corpus/frame): one valid frame of each
 * message type, a hello+defs+batch stream and a stream at every limit, made with the real
 * encoders. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "wp/buf.h"
#include "wp/wire.h"

static int save(const char *dir, const char *name, const struct wp_buf *b)
{
    char path[4096];
    FILE *fp = NULL;
    int rc = 0;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fp = fopen(path, "wbe");
    if (fp == NULL) {
        fprintf(stderr, "gen_frame_seeds: %s: %s\n", path, strerror(errno));
        return -errno;
    }
    if (fwrite(wp_buf_head(b), 1, wp_buf_unread(b), fp) != wp_buf_unread(b)) {
        rc = -EIO;
    }
    if (fclose(fp) != 0 && rc == 0) {
        rc = -errno;
    }
    return rc;
}

static struct wp_str ws(const char *s)
{
    struct wp_str r = {s, (uint32_t)strlen(s)};
    return r;
}

static void put_defs(struct wp_buf *b)
{
    struct wp_series_def d[2];

    memset(d, 0, sizeof(d));
    d[0].id = 1;
    d[0].group = ws("cpu");
    d[0].inst = ws("");
    d[0].nfields = 3;
    d[0].fields[0] = ws("user");
    d[0].fields[1] = ws("system");
    d[0].fields[2] = ws("idle");
    d[0].type = WP_DS_GAUGE;
    d[0].step_s = 10;
    d[1].id = 70000;
    d[1].group = ws("disk");
    d[1].inst = ws("/var/lib");
    d[1].nfields = 2;
    d[1].fields[0] = ws("read_bytes");
    d[1].fields[1] = ws("write_bytes");
    d[1].type = WP_DS_DERIVE;
    d[1].step_s = 60;
    wp_put_defs(b, d, 2);
}

static void put_batch(struct wp_buf *b, uint64_t seq)
{
    struct wp_batch_enc e;
    struct wp_buf tail;
    const double cpu[3] = {12, 0.5, NAN};
    const double disk[2] = {-3.25, 1e300};

    wp_batch_enc_init(&e, 1700000000000);
    wp_buf_init(&tail);
    wp_batch_enc_metric(&e, 1, 1700000000000, cpu, 3);
    wp_batch_enc_metric(&e, 70000, 1700000010000, disk, 2);
    wp_batch_enc_heartbeat(&e, 1699999999000);
    wp_batch_enc_finish(&e, &tail);
    wp_put_batch(b, seq, wp_buf_head(&tail), wp_buf_unread(&tail));
    wp_buf_cleanup(&tail);
    wp_batch_enc_cleanup(&e);
}

/* Frames with every length and count at its limit, so that the fuzzer starts next to
 * the boundaries instead of having to grow 100-byte strings itself. */
static void put_limits(struct wp_buf *b)
{
    static char agent[WP_AGENT_ID_MAX + 1];
    static char inst[WP_INST_MAX + 1];
    static char name[WP_SERIES_MAX_FIELDS][WP_NAME_MAX + 1];
    static char msg[1024 + 1];
    static char keys[64][8];
    const char *labels[64 * 2 + 3];
    struct wp_series_def d;
    struct wp_batch_enc e;
    struct wp_buf tail;
    double vals[WP_SERIES_MAX_FIELDS];

    memset(agent, 'a', WP_AGENT_ID_MAX);
    memset(inst, 'i', WP_INST_MAX);
    memset(msg, 'm', 1024);
    for (int i = 0; i < 64; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%d", i);
        labels[2 * i] = keys[i];
        labels[2 * i + 1] = i == 0 ? inst : "v";
    }
    labels[2 * 64] = NULL;
    for (int i = 0; i < WP_SERIES_MAX_FIELDS; i++) {
        memset(name[i], 'a' + i % 26, WP_NAME_MAX);
        name[i][WP_NAME_MAX] = '\0';
        name[i][0] = (char)('A' + i % 26);
        name[i][1] = (char)('0' + i / 26);
    }
    wp_put_hello(b, agent, inst, name[0], labels, INT64_MIN);
    memset(&d, 0, sizeof(d));
    d.id = UINT32_MAX;
    d.group = ws(name[1]);
    d.inst = ws(inst);
    d.nfields = WP_SERIES_MAX_FIELDS;
    for (int i = 0; i < WP_SERIES_MAX_FIELDS; i++) {
        d.fields[i] = ws(name[i]);
        vals[i] = i % 2 ? -1e300 * i : (double)UINT32_MAX * i;
    }
    d.type = WP_DS_ABSOLUTE;
    d.step_s = 86400;
    wp_put_defs(b, &d, 1);
    wp_batch_enc_init(&e, 1LL << 52);
    wp_buf_init(&tail);
    wp_batch_enc_metric(&e, UINT32_MAX, (1LL << 52) - 400LL * 86400 * 1000, vals,
                        WP_SERIES_MAX_FIELDS);
    wp_batch_enc_heartbeat(&e, (1LL << 52) + 400LL * 86400 * 1000);
    wp_batch_enc_finish(&e, &tail);
    wp_put_batch(b, UINT64_MAX, wp_buf_head(&tail), wp_buf_unread(&tail));
    wp_put_error(b, msg);
    wp_put_welcome(b, UINT64_MAX);
    wp_buf_cleanup(&tail);
    wp_batch_enc_cleanup(&e);
}

/* A batch of events, check results and states (record kinds 2, 3, 4). */
static void put_records(struct wp_buf *b, uint64_t seq)
{
    struct wp_batch_enc e;
    struct wp_buf tail;
    const char *const fields[] = {"code", "ORA-00600", "sid", "orcl", NULL};

    wp_buf_init(&tail);
    wp_batch_enc_init(&e, 1700000000000);
    wp_batch_enc_event(&e, 1700000000100, "/u01/app/oracle/diag/alert_orcl.log", "ora_internal",
                       3, "ORA-00600: internal error code, arguments: [kcbgtcr_13]", fields);
    wp_batch_enc_check(&e, 1700000000200, "http_login", 2, "HTTP CRITICAL: 503 in 0.2 s");
    wp_batch_enc_state(&e, 1700000000300, "SIP/8001", "hotline", "blocked", "Blocked", NULL);
    wp_batch_enc_event(&e, 1700000000400, "/var/log/tomcat9/catalina.out", "tomcat_severe", 2,
                       "SEVERE: 数据库连接失败", NULL);
    wp_batch_enc_finish(&e, &tail);
    wp_put_batch(b, seq, wp_buf_head(&tail), wp_buf_unread(&tail));
    wp_buf_cleanup(&tail);
    wp_batch_enc_cleanup(&e);
}

int main(int argc, char **argv)
{
    const char *const labels[] = {"env", "prod", "rack", "r7", NULL};
    struct wp_buf b;
    int rc = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    wp_buf_init(&b);
    wp_put_hello(&b, "web-01", "web-01.example.net", "0.1.0", labels, 1699990000);
    rc = rc < 0 ? rc : save(argv[1], "hello.bin", &b);
    wp_buf_reset(&b);
    wp_put_welcome(&b, 41);
    rc = rc < 0 ? rc : save(argv[1], "welcome.bin", &b);
    wp_buf_reset(&b);
    wp_put_ack(&b, 42);
    rc = rc < 0 ? rc : save(argv[1], "ack.bin", &b);
    wp_buf_reset(&b);
    wp_put_error(&b, "agent id does not match certificate");
    rc = rc < 0 ? rc : save(argv[1], "error.bin", &b);
    wp_buf_reset(&b);
    put_defs(&b);
    rc = rc < 0 ? rc : save(argv[1], "defs.bin", &b);
    wp_buf_reset(&b);
    put_batch(&b, 42);
    rc = rc < 0 ? rc : save(argv[1], "batch.bin", &b);
    wp_buf_reset(&b);
    wp_put_hello(&b, "db-2", "db-2", "0.1.0", NULL, 5);
    put_defs(&b);
    put_batch(&b, 1);
    put_batch(&b, 2);
    rc = rc < 0 ? rc : save(argv[1], "stream.bin", &b);
    wp_buf_reset(&b);
    put_limits(&b);
    rc = rc < 0 ? rc : save(argv[1], "limits.bin", &b);
    wp_buf_reset(&b);
    put_records(&b, 7);
    rc = rc < 0 ? rc : save(argv[1], "records.bin", &b);
    wp_buf_cleanup(&b);
    return rc < 0 ? 1 : 0;
}
