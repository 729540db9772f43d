/* SPDX-License-Identifier: Apache-2.0 */
/* `watchpost report weekly|monthly|attendance|incident ID`: the health report of a week or a
 * month, the seat attendance report against a schedule and the fault report of one incident,
 * from the state directory, as HTML, CSV and PDF files. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "attendance.h"
#include "cli.h"
#include "cliutil.h"
#include "coll_conf.h"
#include "report.h"
#include "report_inspect.h"
#include "report_sched.h"
#include "wp/clock.h"
#include "wp/err.h"
#include "wp/mem.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: watchpost report weekly [--week 2026-W47] [--schedule attendance.yaml]\n"
            "       watchpost report monthly [--month 2026-11] [--schedule attendance.yaml]\n"
            "       watchpost report attendance [--month 2026-11 | --week 2026-W47]\n"
            "                                   --schedule attendance.yaml\n"
            "       watchpost report incident ID\n"
            "       watchpost report inspection [--date 2026-11-30] [--time 08:30]\n"
            "                                   [--limits disk=90,inode=90,cpu=90,mem=90,load=2]\n"
            "                                   (default: limits: of the inspection kind in\n"
            "                                   collector.yaml with -c, else these values)\n"
            "  options: --out DIR (default .) --format html,csv,pdf (default html)\n"
            "           [--lang en|zh-CN] [--silence-rules host_silent,...]\n"
            "           [--state-dir DIR | -c collector.yaml]\n"
            "  with -c and no --schedule: schedule: of the kind in collector.yaml\n"
            "  the default week (month) is the last complete one, in local time (TZ);\n"
            "  files: watchpost-weekly-2026-W47.html, watchpost-weekly-2026-W47-TABLE.csv, ...\n");
}

struct fmts {
    int html, csv, pdf;
};

static int parse_formats(const char *s, struct fmts *f)
{
    char *copy = wp_xstrdup(s);
    char *save = NULL;
    int rc = 0;

    memset(f, 0, sizeof(*f));
    for (char *tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        if (strcmp(tok, "html") == 0) {
            f->html = 1;
        } else if (strcmp(tok, "csv") == 0) {
            f->csv = 1;
        } else if (strcmp(tok, "pdf") == 0) {
#ifdef WP_HAVE_PDF
            f->pdf = 1;
#else
            fprintf(stderr, "report: this build has no PDF output (built without pangocairo); "
                            "use html or csv\n");
            rc = -1;
#endif
        } else {
            fprintf(stderr, "report: unknown format \"%s\" (html, csv, pdf)\n", tok);
            rc = -1;
        }
    }
    free(copy);
    return rc;
}

static int write_doc(const struct rdoc *d, const char *out, const char *name, const struct fmts *f)
{
    char err[512];

    if (f->html) {
        char *path = wp_xasprintf("%s/%s.html", out, name);
        char *tmp = wp_xasprintf("%s.tmp", path);
        FILE *fp = fopen(tmp, "we");
        int rc = fp == NULL ? -errno : rdoc_write_html(d, fp);
        if (fp != NULL && fclose(fp) != 0 && rc == 0) {
            rc = -errno;
        }
        if (rc == 0 && rename(tmp, path) != 0) {
            rc = -errno;
        }
        if (rc < 0) {
            fprintf(stderr, "report: %s: %s\n", path, wp_strerror(rc));
            remove(tmp);
            free(tmp);
            free(path);
            return -1;
        }
        printf("%s\n", path);
        free(tmp);
        free(path);
    }
#ifdef WP_HAVE_PDF
    if (f->pdf) {
        char *path = wp_xasprintf("%s/%s.pdf", out, name);
        char *tmp = wp_xasprintf("%s.tmp", path);
        int rc = rdoc_write_pdf(d, tmp, err, sizeof(err));
        if (rc == 0 && rename(tmp, path) != 0) {
            rc = -errno;
            snprintf(err, sizeof(err), "%s: %s", path, strerror(errno));
        }
        if (rc < 0) {
            fprintf(stderr, "report: %s\n", err);
            remove(tmp);
            free(tmp);
            free(path);
            return -1;
        }
        printf("%s\n", path);
        free(tmp);
        free(path);
    }
#endif
    if (f->csv) {
        int n = rdoc_write_csv_dir(d, out, name, err, sizeof(err));
        if (n < 0) {
            fprintf(stderr, "report: %s: %s\n", err, wp_strerror(n));
            return -1;
        }
        printf("%s/%s-*.csv (%d files)\n", out, name, n);
    }
    return 0;
}

int cli_report(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"week", required_argument, NULL, 'w'},   {"month", required_argument, NULL, 'm'},
        {"out", required_argument, NULL, 'o'},    {"format", required_argument, NULL, 'f'},
        {"lang", required_argument, NULL, 'l'},   {"state-dir", required_argument, NULL, 'd'},
        {"silence-rules", required_argument, NULL, 's'},
        {"schedule", required_argument, NULL, 'S'},
        {"date", required_argument, NULL, 'D'},   {"time", required_argument, NULL, 'T'},
        {"limits", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *week = NULL, *month = NULL, *out = ".", *format = "html", *dir = NULL;
    const char *config = NULL, *schedule = NULL;
    const char *idate = NULL, *itime = NULL, *ilimits = NULL;
    struct insp_limits lim;
    struct rep_period ip, ipp;
    struct att_sched *sched = NULL;
    struct att_report *att = NULL;
    struct rep_opts o;
    struct fmts f;
    struct coll_conf *conf = NULL;
    struct rep_stats *cur = NULL, *prev = NULL;
    struct rdoc *d = NULL;
    char err[512];
    char *name = NULL;
    int opt = 0;
    int rc = 1;

    memset(&o, 0, sizeof(o));
    o.lang = "en";
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'w': week = optarg; break;
        case 'm': month = optarg; break;
        case 'o': out = optarg; break;
        case 'f': format = optarg; break;
        case 'l': o.lang = optarg; break;
        case 'd': dir = optarg; break;
        case 'c': config = optarg; break;
        case 's': o.silence_rules = optarg; break;
        case 'S': schedule = optarg; break;
        case 'D': idate = optarg; break;
        case 'T': itime = optarg; break;
        case 'L': ilimits = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (strcmp(o.lang, "en") != 0 && strcmp(o.lang, "zh-CN") != 0) {
        fprintf(stderr, "report: --lang must be en or zh-CN\n");
        return 2;
    }
    if (parse_formats(format, &f) < 0) {
        return 2;
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    const char *what = argv[optind++];
    int64_t id = 0;
    if (strcmp(what, "incident") == 0) {
        char *end = NULL;
        if (optind >= argc || (id = strtoll(argv[optind], &end, 10)) <= 0 || *end != '\0') {
            fprintf(stderr, "report: incident takes an incident id\n");
            return 2;
        }
        optind++;
    } else if (strcmp(what, "weekly") != 0 && strcmp(what, "monthly") != 0 &&
               strcmp(what, "attendance") != 0 && strcmp(what, "inspection") != 0) {
        usage(stderr);
        return 2;
    }
    int attendance = strcmp(what, "attendance") == 0;
    int inspection = strcmp(what, "inspection") == 0;
    if (!inspection && (idate != NULL || itime != NULL || ilimits != NULL)) {
        usage(stderr);
        return 2;
    }
    if (inspection) {
        char *spec = idate != NULL && itime != NULL ? wp_xasprintf("%sT%s", idate, itime)
                     : wp_xstrdup(idate != NULL ? idate : itime != NULL ? itime : "");
        int r = rep_inspection_day(spec, wp_clock_now_ms(), &ip, &ipp);
        free(spec);
        insp_limits_default(&lim);
        if (r < 0) {
            fprintf(stderr, "report: bad --date \"%s\" or --time \"%s\" (e.g. 2026-11-30, 08:30)\n",
                    idate != NULL ? idate : "", itime != NULL ? itime : "");
            return 2;
        }
        if (ilimits != NULL && insp_limits_parse(ilimits, &lim, err, sizeof(err)) < 0) {
            fprintf(stderr, "report: --limits %s\n", err);
            return 2;
        }
    }
    if (optind < argc || (week != NULL && strcmp(what, "weekly") != 0 && !attendance) ||
        (month != NULL && strcmp(what, "monthly") != 0 && !attendance) ||
        (week != NULL && month != NULL) || (schedule != NULL && (inspection || id > 0))) {
        usage(stderr);
        return 2;
    }
    const char *sdir = cli_state_dir(config, dir, &conf);
    if (sdir == NULL) {
        goto out;
    }
    if (schedule == NULL && !inspection && id == 0) {
        /* the schedule: of this kind in collector.yaml, so that a rerun by hand matches the
         * scheduled report */
        const struct rsched_kconf *k = rsched_conf_kind(conf != NULL ? conf->reports : NULL, what);
        if (k != NULL) {
            schedule = k->schedule;
        }
    }
    if (attendance && schedule == NULL) {
        fprintf(stderr, "report: attendance needs --schedule FILE (the shifts and holidays), or "
                        "-c collector.yaml with schedule: on the attendance kind of reports:\n");
        rc = 2;
        goto out;
    }
    if (schedule != NULL) {
        struct wp_conf_err cerr;
        if (att_sched_load(schedule, &sched, &cerr) < 0) {
            fprintf(stderr, "report: %s\n", cerr.msg);
            rc = 2;
            goto out;
        }
    }
    if (conf != NULL && conf->rrd.dir != NULL) {
        o.rrd_dir = conf->rrd.dir;
    }
    if (inspection && ilimits == NULL) {
        /* the limits the scheduled inspection uses, so that a rerun by hand matches it */
        const struct rsched_kconf *k =
            rsched_conf_kind(conf != NULL ? conf->reports : NULL, "inspection");
        if (k != NULL && k->has_limits) {
            lim = k->lim;
        }
    }
    if (mkdir(out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "report: cannot create %s: %s\n", out, strerror(errno));
        goto out;
    }
    if (id > 0) {
        int r = rep_incident_doc(sdir, id, &o, &d, err, sizeof(err));
        if (r < 0) {
            fprintf(stderr, "report: %s\n", err);
            goto out;
        }
        name = wp_xasprintf("watchpost-incident-%" PRId64, id);
    } else if (attendance) {
        struct rep_period pc, pp;
        int weekly = week != NULL;
        int r = weekly ? rep_week(week, wp_clock_now_ms(), &pc, &pp)
                       : rep_month(month, wp_clock_now_ms(), &pc, &pp);
        if (r < 0) {
            fprintf(stderr, "report: bad %s \"%s\" (%s)\n", weekly ? "--week" : "--month",
                    weekly ? week : month, weekly ? "e.g. 2026-W47" : "e.g. 2026-11");
            rc = 2;
            goto out;
        }
        if (att_build(sdir, sched, &pc, wp_clock_now_ms(), &att, err, sizeof(err)) < 0) {
            fprintf(stderr, "report: %s\n", err);
            goto out;
        }
        d = att_doc(att, &o);
        name = wp_xasprintf("watchpost-attendance-%s", pc.label);
    } else if (inspection) {
        if (rep_inspection_doc(sdir, &ip, &o, &lim, &d, err, sizeof(err)) < 0) {
            fprintf(stderr, "report: %s\n", err);
            goto out;
        }
        name = wp_xasprintf("watchpost-inspection-%s", ip.label);
    } else {
        struct rep_period pc, pp;
        int weekly = strcmp(what, "weekly") == 0;
        int r = weekly ? rep_week(week, wp_clock_now_ms(), &pc, &pp)
                       : rep_month(month, wp_clock_now_ms(), &pc, &pp);
        if (r < 0) {
            fprintf(stderr, "report: bad %s \"%s\" (%s)\n", weekly ? "--week" : "--month",
                    weekly ? week : month, weekly ? "e.g. 2026-W47" : "e.g. 2026-11");
            rc = 2;
            goto out;
        }
        if (rep_stats_build(sdir, &pc, &o, &cur, err, sizeof(err)) < 0 ||
            rep_stats_build(sdir, &pp, &o, &prev, err, sizeof(err)) < 0) {
            fprintf(stderr, "report: %s\n", err);
            goto out;
        }
        /* with --schedule, seat attendance in the telephony section */
        if (sched != NULL &&
            (rep_stats_attendance(cur, sdir, sched, wp_clock_now_ms(), err, sizeof(err)) < 0 ||
             rep_stats_attendance(prev, sdir, sched, wp_clock_now_ms(), err, sizeof(err)) < 0)) {
            fprintf(stderr, "report: %s\n", err);
            goto out;
        }
        d = rep_health_doc(what, cur, prev, &o);
        name = wp_xasprintf("watchpost-%s-%s", what, pc.label);
    }
    if (write_doc(d, out, name, &f) == 0) {
        rc = 0;
    }
out:
    free(name);
    rdoc_free(d);
    rep_stats_free(cur);
    rep_stats_free(prev);
    att_report_free(att);
    att_sched_free(sched);
    coll_conf_free(conf);
    return rc;
}
