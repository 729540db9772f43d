/* SPDX-License-Identifier: Apache-2.0 */
/* Per-line RRD series from the stored line states; see linerrd.h. */
#include "linerrd.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "coll.h"
#include "lines.h"
#include "rrdw.h"
#include "wp/err.h"
#include "wp/log.h"
#include "wp/wire.h"

const char *const coll_linerrd_fields[COLL_LINERRD_NFIELDS] = {"state", "avail", "busy"};

static const struct {
    const char *name;
    double code, avail, busy;
} state_codes[] = {
    {"idle", 1, 1, 0},        {"ringing", 2, 1, 1},        {"in_use", 3, 1, 1},
    {"on_hold", 4, 1, 1},     {"busy", 5, 1, 1},           {"unavailable", 6, 0, 0},
    {"out_of_service", 7, 0, 0}, {"blocked", 8, 0, 0},
};

void coll_linerrd_values(const char *state, double vals[COLL_LINERRD_NFIELDS])
{
    vals[0] = vals[1] = vals[2] = NAN;
    for (size_t i = 0; state != NULL && i < sizeof(state_codes) / sizeof(state_codes[0]); i++) {
        if (strcmp(state, state_codes[i].name) == 0) {
            vals[0] = state_codes[i].code;
            vals[1] = state_codes[i].avail;
            vals[2] = state_codes[i].busy;
            return;
        }
    }
}

void coll_linerrd_put(struct coll_server *s, const char *agent, const char *object,
                      const char *state, int64_t ts_ms)
{
    double vals[COLL_LINERRD_NFIELDS];
    int err = 0;

    if (s->rrdw == NULL) {
        return;
    }
    struct wp_rrdw_file *f =
        wp_rrdw_file_get(s->rrdw, agent, COLL_LINERRD_GROUP, object, coll_linerrd_fields,
                         COLL_LINERRD_NFIELDS, WP_DS_GAUGE, COLL_LINERRD_STEP_S, &err);
    if (f == NULL) {
        WP_DEBUG("collector", "line %s of agent %s has no RRD series: %s", object, agent,
                 wp_strerror(err));
        return;
    }
    coll_linerrd_values(state, vals);
    /* derived from lines.db, not from a journal segment: nothing to hold the journal for */
    wp_rrdw_add(s->rrdw, f, ts_ms, vals, COLL_LINERRD_NFIELDS, UINT64_MAX);
}

struct refresh {
    struct coll_server *s;
    int64_t ts_ms;
    int n;
};

static int refresh_cb(void *arg, const struct coll_line *l)
{
    struct refresh *r = arg;
    coll_linerrd_put(r->s, l->agent, l->object, l->state, r->ts_ms);
    r->n++;
    return 0;
}

int coll_linerrd_refresh(struct coll_server *s, int64_t ts_ms)
{
    struct refresh r = {.s = s, .ts_ms = ts_ms, .n = 0};

    if (s->lines == NULL) {
        return 0;
    }
    int rc = coll_lines_each(s->lines, NULL, NULL, NULL, refresh_cb, &r);
    return rc < 0 ? rc : r.n;
}
