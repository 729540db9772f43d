/* SPDX-License-Identifier: Apache-2.0 */
/* GET /api/v1/reports, GET /api/v1/reports/{kind}/{period}/{file}, POST
 * /api/v1/reports/run: the archive of scheduled reports (report_sched.h) for
 * the dashboard. */
#include "http_reports.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "coll.h"
#include "coll_conf.h"
#include "http.h"
#include "report_sched.h"
#include "wp/err.h"
#include "wp/log.h"
#include "wp/mem.h"

#define LIST_MAX 1000       /* archive entries in one reply at most */
#define FILE_MAX (64 << 20) /* larger files are not served */

static json_t *jstr(const char *s)
{
    json_t *j = json_string(s != NULL ? s : "");
    return j != NULL ? j : json_string("?");
}

static int entry_cb(void *arg, const struct rsched_entry *e)
{
    json_t *arr = arg;
    json_t *o = json_object();
    json_t *files = json_array();
    json_t *formats = json_array();
    char *copy = wp_xstrdup(e->files != NULL ? e->files : "");
    char *save = NULL;
    int html = 0, pdf = 0, csv = 0;

    for (char *f = strtok_r(copy, "\n", &save); f != NULL; f = strtok_r(NULL, "\n", &save)) {
        json_array_append_new(files, jstr(f));
        const char *dot = strrchr(f, '.');
        html |= dot != NULL && strcmp(dot, ".html") == 0;
        pdf |= dot != NULL && strcmp(dot, ".pdf") == 0;
        csv |= dot != NULL && strcmp(dot, ".csv") == 0;
    }
    free(copy);
    if (html) {
        json_array_append_new(formats, json_string("html"));
    }
    if (pdf) {
        json_array_append_new(formats, json_string("pdf"));
    }
    if (csv) {
        json_array_append_new(formats, json_string("csv"));
    }
    const char *mail = !e->mailed || e->msgs == 0 ? "none"
                       : e->sent == e->msgs       ? "sent"
                       : e->dead > 0              ? "dead"
                                                  : "queued";
    json_object_set_new(o, "kind", jstr(e->kind));
    json_object_set_new(o, "period", jstr(e->period));
    json_object_set_new(o, "from_ms", json_integer(e->from_ms));
    json_object_set_new(o, "to_ms", json_integer(e->to_ms));
    json_object_set_new(o, "created_ms", json_integer(e->created_ms));
    json_object_set_new(o, "bytes", json_integer(e->bytes));
    json_object_set_new(o, "formats", formats);
    json_object_set_new(o, "files", files);
    json_object_set_new(o, "mail", json_string(mail));
    json_object_set_new(o, "mail_messages", json_integer(e->msgs));
    json_object_set_new(o, "mail_sent", json_integer(e->sent));
    json_object_set_new(o, "mail_dead", json_integer(e->dead));
    json_array_append_new(arr, o);
    return 0;
}

static void reports_list(struct http_req *req, void *arg)
{
    struct coll_server *s = arg;
    json_t *arr = json_array();
    json_t *kinds = json_array();
    char err[512] = "";

    if (s->conf->reports != NULL) {
        const struct rsched_conf *c = s->conf->reports;
        for (size_t i = 0; i < c->neff; i++) {
            json_t *k = json_object();
            json_object_set_new(k, "kind", jstr(c->eff[i].kind));
            json_object_set_new(k, "enabled", json_boolean(c->eff[i].enabled));
            json_object_set_new(k, "at", jstr(c->eff[i].at));
            json_array_append_new(kinds, k);
        }
    }
    if (rsched_list(s->conf->state_dir, LIST_MAX, entry_cb, arr, err, sizeof(err)) < 0) {
        json_decref(arr);
        json_decref(kinds);
        WP_WARN("report", "archive list: %s", err);
        http_respond_error(req, 500, "the report archive cannot be read");
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "enabled", json_boolean(s->conf->reports != NULL));
    json_object_set_new(o, "kinds", kinds);
    json_object_set_new(o, "reports", arr);
    http_respond_json(req, 200, o);
}

static const char *ctype_of(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (dot == NULL) {
        return NULL;
    }
    if (strcmp(dot, ".html") == 0) {
        return "text/html; charset=utf-8";
    }
    if (strcmp(dot, ".pdf") == 0) {
        return "application/pdf";
    }
    if (strcmp(dot, ".csv") == 0) {
        return "text/csv; charset=utf-8";
    }
    return NULL;
}

/* GET /api/v1/reports/{kind}/{period}/{file}: each name checked, each component
 * opened below the archive with O_NOFOLLOW, only regular files of the three
 * report types. */
static void report_file(struct http_req *req, void *arg)
{
    struct coll_server *s = arg;
    const char *tail = req->path + strlen("/api/v1/reports/");
    char kind[130], period[130], file[130];
    const char *a = tail, *b = NULL, *c = NULL;
    int fds[4] = {-1, -1, -1, -1};
    char *body = NULL;
    struct stat st;

    if (s->conf->reports == NULL) {
        http_respond_error(req, 404, "reports are not configured (reports: in collector.yaml)");
        return;
    }
    b = strchr(a, '/');
    c = b != NULL ? strchr(b + 1, '/') : NULL;
    if (b == NULL || c == NULL || strchr(c + 1, '/') != NULL || (size_t)(b - a) >= sizeof(kind) ||
        (size_t)(c - b - 1) >= sizeof(period) || strlen(c + 1) >= sizeof(file)) {
        http_respond_error(req, 404, "expected /api/v1/reports/KIND/PERIOD/FILE");
        return;
    }
    snprintf(kind, sizeof(kind), "%.*s", (int)(b - a), a);
    snprintf(period, sizeof(period), "%.*s", (int)(c - b - 1), b + 1);
    snprintf(file, sizeof(file), "%s", c + 1);
    const char *ctype = ctype_of(file);
    if (!rsched_valid_name(kind) || !rsched_valid_name(period) || !rsched_valid_name(file) ||
        ctype == NULL) {
        http_respond_error(req, 404, "no such report file");
        return;
    }
    fds[0] = open(s->conf->reports->archive_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fds[0] >= 0) {
        fds[1] = openat(fds[0], kind, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fds[1] >= 0) {
        fds[2] = openat(fds[1], period, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fds[2] >= 0) {
        fds[3] = openat(fds[2], file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    }
    if (fds[3] < 0 || fstat(fds[3], &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > FILE_MAX) {
        http_respond_error(req, 404, "no such report file");
        goto out;
    }
    body = wp_xmalloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fds[3], body + got, (size_t)st.st_size - got);
        if (r <= 0) {
            break;
        }
        got += (size_t)r;
    }
    if (got != (size_t)st.st_size) {
        http_respond_error(req, 500, "the report file cannot be read");
        goto out;
    }
    /* downloads: the HTML report's inline styles would be blocked by the
     * dashboard's CSP, opened from disk it is self-contained; the PDF opens in
     * the browser */
    char disp[512];
    snprintf(disp, sizeof(disp), "%s; filename=\"watchpost-%s-%s%s\"",
             strcmp(ctype, "application/pdf") == 0 ? "inline" : "attachment", kind, period,
             strncmp(file, "report", 6) == 0 ? file + 6 : file);
    http_resp_header(req, "Content-Disposition", disp);
    http_resp_header(req, "Cache-Control", "private, max-age=60");
    http_respond(req, 200, ctype, body, got);
out:
    free(body);
    for (int i = 0; i < 4; i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
        }
    }
}

static void report_run(struct http_req *req, void *arg)
{
    struct coll_server *s = arg;
    json_error_t jerr;
    json_t *j = json_loadb((const char *)req->body, req->body_len, 0, &jerr);
    const char *kind = json_string_value(json_object_get(j, "kind"));
    const char *period = json_string_value(json_object_get(j, "period"));
    int force = json_is_true(json_object_get(j, "force"));

    if (s->reports == NULL) {
        http_respond_error(req, 409, "reports are not configured (reports: in collector.yaml)");
    } else if (!json_is_object(j) || kind == NULL) {
        http_respond_error(req, 400, "expected {\"kind\": \"weekly\", \"period\": \"2026-W47\"}");
    } else {
        int rc = rsched_run(s->reports, kind, period, force);
        if (rc == -EBUSY) {
            http_resp_header(req, "Retry-After", "10");
            http_respond_error(req, 409, "a report is being made; try again shortly");
        } else if (rc == -EINVAL) {
            http_respond_error(req, 400, "unknown report kind or bad period");
        } else if (rc < 0) {
            http_respond_error(req, 500, "the report job could not be started");
        } else {
            json_t *o = json_object();
            json_object_set_new(o, "started", json_true());
            json_object_set_new(o, "kind", jstr(kind));
            http_respond_json(req, 202, o);
        }
    }
    json_decref(j);
}

int coll_reports_start(struct coll_server *s)
{
    http_route_role(s->http, "GET", "/api/v1/reports", HTTP_ROLE_VIEWER, reports_list, s);
    http_route_role(s->http, "GET", "/api/v1/reports/", HTTP_ROLE_VIEWER, report_file, s);
    http_route_role(s->http, "POST", "/api/v1/reports/run", HTTP_ROLE_OPERATOR, report_run, s);
    return 0;
}
