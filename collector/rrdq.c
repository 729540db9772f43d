/* SPDX-License-Identifier: Apache-2.0 */
/* RRD read side: rrd_fetch_r and rrd_info_r wrapped with project error codes. */
#include "rrdq.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <rrd.h>

#include "rrdw.h"
#include "wp/err.h"
#include "wp/log.h"
#include "wp/mem.h"
#include "wp/wire.h"

#define Q_COMP "rrd"

static int file_missing(const char *path)
{
    struct stat st;

    if (stat(path, &st) < 0) {
        return -errno;
    }
    return 0;
}

int wp_rrdq_fetch(const char *path, const char *ds, int64_t start_s, int64_t end_s, unsigned flags,
                  wp_rrdq_fn fn, void *arg, uint32_t *step_out)
{
    int rc = 0;
    time_t start = (time_t)start_s;
    time_t end = (time_t)end_s;
    unsigned long step = 1;
    unsigned long nds = 0;
    char **names = NULL;
    rrd_value_t *data = NULL;
    unsigned long idx = 0;

    if (step_out != NULL) {
        *step_out = 0;
    }
    if (start_s <= 0 || end_s <= start_s) {
        return -EINVAL;
    }
    rc = file_missing(path);
    if (rc < 0) {
        return rc;
    }
    rrd_clear_error();
    if (rrd_fetch_r(path, "AVERAGE", &start, &end, &step, &nds, &names, &data) != 0) {
        WP_DEBUG(Q_COMP, "fetch failed file=%s err=\"%s\"", path, rrd_get_error());
        return WP_ERRD; /* rrd_get_error() keeps the message for the caller */
    }
    for (idx = 0; idx < nds; idx++) {
        if (strcmp(names[idx], ds) == 0) {
            break;
        }
    }
    if (idx == nds) {
        rc = WP_ENOTFOUND;
        goto out;
    }
    if (step_out != NULL) {
        *step_out = (uint32_t)step;
    }
    /* row i covers (start + i * step, start + (i + 1) * step] */
    unsigned long rows = step > 0 ? (unsigned long)(end - start) / step : 0;
    for (unsigned long i = 0; i < rows; i++) {
        double v = data[i * nds + idx];
        if ((flags & WP_RRDQ_SKIP_NAN) && isnan(v)) {
            continue;
        }
        rc = fn(arg, (int64_t)start + (int64_t)((i + 1) * step), v);
        if (rc != 0) {
            goto out;
        }
    }
out:
    for (unsigned long i = 0; i < nds; i++) {
        rrd_freemem(names[i]);
    }
    rrd_freemem(names);
    rrd_freemem(data);
    return rc;
}

void wp_rrdq_info_free(struct wp_rrdq_info *info)
{
    if (info == NULL) {
        return;
    }
    for (uint32_t i = 0; i < info->nds; i++) {
        free(info->ds_names[i]);
        free(info->ds_types[i]);
    }
    free(info->ds_names);
    free(info->ds_types);
    free(info->rras);
    free(info);
}

/* Grow the DS arrays so that index idx exists. */
static void info_ds_slot(struct wp_rrdq_info *in, unsigned long idx)
{
    if (idx < in->nds) {
        return;
    }
    uint32_t n = (uint32_t)idx + 1;
    in->ds_names = wp_xrealloc(in->ds_names, n * sizeof(char *));
    in->ds_types = wp_xrealloc(in->ds_types, n * sizeof(char *));
    for (uint32_t i = in->nds; i < n; i++) {
        in->ds_names[i] = NULL;
        in->ds_types[i] = NULL;
    }
    in->nds = n;
}

static void info_rra_slot(struct wp_rrdq_info *in, unsigned long idx)
{
    if (idx < in->nrras) {
        return;
    }
    uint32_t n = (uint32_t)idx + 1;
    in->rras = wp_xrealloc(in->rras, n * sizeof(*in->rras));
    memset(in->rras + in->nrras, 0, (n - in->nrras) * sizeof(*in->rras));
    in->nrras = n;
}

/* "ds[NAME].field": copies NAME (at most 19 chars) and returns the field, or NULL. */
static const char *ds_key(const char *key, char *name, size_t len)
{
    const char *end = NULL;

    if (strncmp(key, "ds[", 3) != 0) {
        return NULL;
    }
    end = strstr(key + 3, "].");
    if (end == NULL || (size_t)(end - (key + 3)) >= len) {
        return NULL;
    }
    memcpy(name, key + 3, (size_t)(end - (key + 3)));
    name[end - (key + 3)] = '\0';
    return end + 2;
}

/* The DS index of name in the info list (ds[NAME].index). */
static long ds_index(const rrd_info_t *list, const char *name)
{
    char want[64];

    snprintf(want, sizeof(want), "ds[%s].index", name);
    for (const rrd_info_t *p = list; p != NULL; p = p->next) {
        if (p->type == RD_I_CNT && strcmp(p->key, want) == 0) {
            return (long)p->value.u_cnt;
        }
    }
    return -1;
}

int wp_rrdq_info(const char *path, struct wp_rrdq_info **out)
{
    int rc = 0;
    rrd_info_t *list = NULL;
    struct wp_rrdq_info *in = NULL;
    char name[32];

    *out = NULL;
    rc = file_missing(path);
    if (rc < 0) {
        return rc;
    }
    rrd_clear_error();
    list = rrd_info_r(path);
    if (list == NULL) {
        WP_DEBUG(Q_COMP, "info failed file=%s err=\"%s\"", path, rrd_get_error());
        return WP_ERRD; /* rrd_get_error() keeps the message for the caller */
    }
    in = wp_xcalloc(1, sizeof(*in));
    for (const rrd_info_t *p = list; p != NULL; p = p->next) {
        const char *field = NULL;
        unsigned long idx = 0;
        int used = 0;

        if (strcmp(p->key, "step") == 0 && p->type == RD_I_CNT) {
            in->step_s = (uint32_t)p->value.u_cnt;
        } else if (strcmp(p->key, "last_update") == 0 && p->type == RD_I_CNT) {
            in->last_update_s = (int64_t)p->value.u_cnt;
        } else if ((field = ds_key(p->key, name, 20)) != NULL) {
            if (strcmp(field, "type") == 0 && p->type == RD_I_STR) {
                long i = ds_index(list, name);
                if (i < 0 || i > 4096) {
                    rc = WP_ERRD;
                    goto out;
                }
                info_ds_slot(in, (unsigned long)i);
                free(in->ds_names[i]);
                free(in->ds_types[i]);
                in->ds_names[i] = wp_xstrdup(name);
                in->ds_types[i] = wp_xstrdup(p->value.u_str);
            }
        } else if (sscanf(p->key, "rra[%lu].%n", &idx, &used) == 1 && used > 0 && idx < 4096) {
            field = p->key + used;
            if (strcmp(field, "cf") == 0 && p->type == RD_I_STR) {
                info_rra_slot(in, idx);
                snprintf(in->rras[idx].cf, sizeof(in->rras[idx].cf), "%s", p->value.u_str);
            } else if (strcmp(field, "rows") == 0 && p->type == RD_I_CNT) {
                info_rra_slot(in, idx);
                in->rras[idx].rows = (uint32_t)p->value.u_cnt;
            } else if (strcmp(field, "pdp_per_row") == 0 && p->type == RD_I_CNT) {
                info_rra_slot(in, idx);
                in->rras[idx].pdp_per_row = (uint32_t)p->value.u_cnt;
            }
        }
    }
    for (uint32_t i = 0; i < in->nds; i++) {
        if (in->ds_names[i] == NULL) {
            rc = WP_ERRD; /* a gap in the DS indexes: not a file we understand */
            goto out;
        }
    }
    *out = in;
    in = NULL;
out:
    wp_rrdq_info_free(in);
    rrd_info_free(list);
    return rc;
}

int wp_rrd_agent_ok(const char *agent)
{
    size_t n = strlen(agent);

    if (n == 0 || n > WP_AGENT_ID_MAX || agent[0] == '.') {
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)agent[i];
        if (c == '/' || c < 0x20 || c == 0x7f) {
            return -EINVAL;
        }
    }
    return 0;
}

int wp_rrdq_path(const char *dir, const char *agent, const char *group, const char *inst, char *buf,
                 size_t len)
{
    char name[256];
    int rc = wp_rrd_agent_ok(agent);

    if (rc < 0) {
        return rc;
    }
    rc = wp_rrd_file_name(group, inst, name, sizeof(name));
    if (rc < 0) {
        return rc;
    }
    int n = snprintf(buf, len, "%s/%s/%s", dir, agent, name);
    if (n < 0 || (size_t)n >= len) {
        return WP_ETOOBIG;
    }
    return 0;
}
