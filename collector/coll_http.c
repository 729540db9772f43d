/* SPDX-License-Identifier: Apache-2.0 */
/* The collector's dashboard and JSON API: the HTTP server from collector.yaml and its routes. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "coll.h"
#include "coll_conf.h"
#include "enroll_api.h"
#include "http.h"
#include "http_api.h"
#include "http_api_host.h"
#include "http_api_maint.h"
#include "http_reports.h"
#include "http_auth.h"
#include "http_graph.h"
#include "wp/err.h"
#include "wp/log.h"

static int write_port_file(const char *path, int port)
{
    char tmp[4096];
    FILE *f = NULL;

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
        return -ENAMETOOLONG;
    }
    f = fopen(tmp, "we");
    if (f == NULL) {
        return -errno;
    }
    fprintf(f, "%d\n", port);
    if (fclose(f) != 0 || rename(tmp, path) < 0) {
        return -errno;
    }
    return 0;
}

static void healthz(struct http_req *req, void *arg)
{
    (void)arg;
    http_resp_header(req, "Cache-Control", "no-store");
    http_respond(req, 200, "text/plain; charset=utf-8", "ok", 2);
}

static void add_stat(void *arg, const char *name, uint64_t value)
{
    json_object_set_new(arg, name, json_integer(value > INT64_MAX ? INT64_MAX : (json_int_t)value));
}

/* GET /api/v1/status: the counters of `watchpost status`, plus the HTTP server's own. */
static void status(struct http_req *req, void *arg)
{
    struct coll_server *s = arg;
    struct http_stats hs;
    json_t *o = json_object();
    json_t *h = NULL;

    coll_stats_foreach(s, add_stat, o);
    http_server_stats(s->http, &hs);
    h = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "connections",
                  (json_int_t)hs.connections, "accepted", (json_int_t)hs.accepted, "refused_busy",
                  (json_int_t)hs.refused_busy, "requests", (json_int_t)hs.requests, "bad_requests",
                  (json_int_t)hs.bad_requests, "too_large_head", (json_int_t)hs.too_large_head,
                  "too_large_body", (json_int_t)hs.too_large_body, "timeouts_header",
                  (json_int_t)hs.timeouts_header, "timeouts_body", (json_int_t)hs.timeouts_body,
                  "timeouts_idle", (json_int_t)hs.timeouts_idle, "tls_failed",
                  (json_int_t)hs.tls_failed, "sse_streams", (json_int_t)hs.sse_streams);
    if (h != NULL) {
        json_object_set_new(o, "http", h);
    }
    json_object_set_new(o, "version", json_string(WP_VERSION));
    http_respond_json(req, 200, o);
}

int coll_http_start(struct coll_server *s)
{
    const struct coll_conf *conf = s->conf;
    char err[512] = "";
    int rc = 0;

    if (conf->http.listen == NULL) {
        return 0;
    }
    struct http_opts o = {
        .host = conf->http.listen_host,
        .port = conf->http.listen_port,
        .tls_cert = conf->http.tls.cert,
        .tls_key = conf->http.tls.key,
        .static_dir = conf->http.static_dir,
        .max_connections = conf->http.max_connections,
        .max_header_bytes = conf->http.max_header,
        .max_body_bytes = conf->http.max_body,
        .header_timeout_ms = conf->http.header_timeout_ms,
        .body_timeout_ms = conf->http.body_timeout_ms,
        .idle_timeout_ms = conf->http.idle_timeout_ms,
        .sse_ping_ms = conf->http.sse_ping_ms,
    };
    rc = http_server_start(s->loop, &o, err, sizeof(err), &s->http);
    if (rc < 0) {
        WP_ERROR("collector", "HTTP server: %s", err[0] ? err : wp_strerror(rc));
        return rc;
    }
    http_route(s->http, "GET", "/healthz", healthz, s);
    http_route_role(s->http, "GET", "/api/v1/status", HTTP_ROLE_VIEWER, status, s);
    /* login: users, tokens and sessions in STATE_DIR/users.db (http_auth.h) */
    char upath[4096];
    struct http_auth *auth = NULL;
    if ((size_t)snprintf(upath, sizeof(upath), "%s/users.db", conf->state_dir) >= sizeof(upath)) {
        return -ENAMETOOLONG;
    }
    struct http_auth_opts ao = {
        .session_idle_ms = conf->http.session_idle_ms,
        .session_max_ms = conf->http.session_max_ms,
        .max_failures = (int)conf->http.login_failures,
        .window_ms = conf->http.login_window_ms,
    };
    rc = http_auth_open(upath, &ao, &auth);
    if (rc < 0) {
        WP_ERROR("collector", "cannot open the users database %s: %s", upath, wp_strerror(rc));
        return rc;
    }
    http_auth_install(s->http, auth);
    coll_api_start(s, auth, &s->api); /* takes auth */
    coll_graph_start(s);              /* host page and graphs (http_graph.c) */
    coll_api_host_start(s);           /* checks and log events (http_api_host.c) */
    coll_api_maint_start(s);          /* maintenance windows (http_api_maint.c) */
    coll_reports_start(s);            /* the report archive (http_reports.c) */
    /* agent enrolment with bootstrap tokens (STATE_DIR/enroll.db; off without ca_dir) */
    if ((size_t)snprintf(upath, sizeof(upath), "%s/enroll.db", conf->state_dir) >= sizeof(upath)) {
        return -ENAMETOOLONG;
    }
    struct enroll_api_opts eo = {
        .ca_dir = conf->http.enroll.ca_dir,
        .db_path = upath,
        .cert_days = (int)conf->http.enroll.cert_days,
        .max_failures = (int)conf->http.login_failures,
        .window_ms = conf->http.login_window_ms,
    };
    rc = enroll_api_start(s->http, &eo, &s->enroll);
    if (rc < 0) {
        return rc;
    }
    int port = http_server_port(s->http);
    if (conf->http.port_file != NULL && (rc = write_port_file(conf->http.port_file, port)) < 0) {
        WP_ERROR("collector", "cannot write HTTP port file %s: %s", conf->http.port_file,
                 wp_strerror(rc));
        return rc;
    }
    WP_INFO("collector", "HTTP%s on %s:%d static=%s", conf->http.tls.cert != NULL ? "S" : "",
            conf->http.listen_host, port, conf->http.static_dir);
    return 0;
}

void coll_http_stop(struct coll_server *s)
{
    coll_api_stop(s->api); /* event streams and the poll timer first */
    s->api = NULL;
    http_server_stop(s->http); /* frees itself once its handles are closed */
    s->http = NULL;
    enroll_api_free(s->enroll); /* no handler runs once the server has stopped */
    s->enroll = NULL;
}
