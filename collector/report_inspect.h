/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daily inspection report (report_inspect.c): the morning check list of every host and
 * every telephony site as PASS / FAIL / N/A items with their evidence, as of one inspection
 * time (default 08:30 local), with "new since the last inspection" meaning since the same
 * time the day before. Read from the stores only (watchpost.db and the RRD files, events.db,
 * lines.db, incidents.db; read-only), nothing reads the clock except to pick the default day,
 * so a rerun on the same data gives the same bytes. docs/REPORTS.md defines every item.
 * Single-threaded.
 */
#ifndef WP_COLLECTOR_REPORT_INSPECT_H
#define WP_COLLECTOR_REPORT_INSPECT_H

#include <stddef.h>
#include <stdint.h>

#include "report.h"

#define INSP_DEFAULT_MIN (8 * 60 + 30) /* 08:30 */

/* Limits of the items; a value at or above the limit fails. */
struct insp_limits {
    double disk_pct;      /* file system used %, default 90 */
    double inode_pct;     /* inodes used %, default 90 */
    double warn_pct;      /* disk and inodes: noted in the evidence at or above, default 85 */
    double cpu_pct;       /* busy %, average of the last hour, default 90 */
    double mem_pct;       /* used %, average of the last hour, default 90 */
    double load_per_core; /* load1 average of the last hour per core, default 2 */
    int64_t stale_ms;     /* a check without a result for longer (and for longer than 3 of
                             its intervals) fails, default 15 min */
};

/* The defaults above. */
void insp_limits_default(struct insp_limits *l);
/* Override limits from "disk=90,inode=90,warn=85,cpu=90,mem=90,load=2,stale=15" (stale in
 * minutes; any subset). 0, or -EINVAL with the reason in err. */
int insp_limits_parse(const char *spec, struct insp_limits *l, char *err, size_t errlen);

/* The inspection of spec: NULL or "" (today at 08:30), "2026-11-30" (08:30 that day),
 * "2026-11-30T09:00" (or a blank instead of T), "09:00" (today at 09:00), in local time.
 * cur is [previous inspection, inspection): the same local time the day before to the
 * inspection time; prev is the inspection before. Labels: "2026-11-30", with "-0900" added
 * when the time is not 08:30. Same shape as rep_week() / rep_month(). 0 or -EINVAL. */
int rep_inspection_day(const char *spec, int64_t now_ms, struct rep_period *cur,
                       struct rep_period *prev);

enum insp_status { INSP_PASS = 0, INSP_FAIL = 1, INSP_NA = 2 };

/* One item of the check list, texts in the report's language. */
struct insp_item {
    char *host;
    int site;   /* 1: a telephony site item (lines.db), else a host item */
    int order;  /* kind of item, for the order within a host */
    char *key;  /* the mount point, check or line group: order within a kind */
    char *name; /* "Disk space /u01" */
    enum insp_status status;
    char *evidence;  /* "93.0 % used (limit 90 %)" */
    char *incidents; /* open incidents of a failed item: "#12 summary; #14 ..." or "" */
};

struct insp_result {
    struct rep_period p;     /* p.to_ms is the inspection time */
    struct insp_item *items; /* by site, host, order, key */
    size_t n;
    size_t hosts, sites, pass, fail, na;
    int have_events; /* events.db was there */
    int zh;
};

/* Inspect the stores of state_dir at p->to_ms (new events since p->from_ms) with limits l
 * (NULL: the defaults) in language o->lang. <0 with err. Free *out with insp_result_free(). */
int insp_build(const char *state_dir, const struct rep_period *p, const struct rep_opts *o,
               const struct insp_limits *l, struct insp_result **out, char *err, size_t errlen);
void insp_result_free(struct insp_result *r);

/* The report document of a result: summary, failed items, the check list (CSV "items").
 * Free with rdoc_free(). */
struct rdoc *insp_doc(const struct insp_result *r, const struct insp_limits *l);

/* insp_build() and insp_doc() in one, the entry point of the report kind "inspection"
 * (l NULL: default limits). <0 with err. */
int rep_inspection_doc(const char *state_dir, const struct rep_period *p, const struct rep_opts *o,
                       const struct insp_limits *l, struct rdoc **out, char *err, size_t errlen);

#endif
