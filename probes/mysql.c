/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The mysql probe (MySQL and MariaDB through libmariadb): is the server answering, how
 * full is it, how big are its schemas, how far behind is a replica, and custom SQL.
 *
 *   probes:
 *     - kind: mysql
 *       name: orders                 # the instance of every row and of the check
 *       interval: 60s
 *       host: 127.0.0.1              # or socket: /run/mysqld/mysqld.sock
 *       port: 3306
 *       user: watchpost
 *       password_file: /etc/watchpost/mysql.pass   # optional; never logged
 *       database: ""                 # optional default schema for the queries
 *       timeout: 5s                  # connect, read and write
 *       databases: true              # size per schema
 *       queries:                     # name: SQL returning one number, or rows (text, number)
 *         open_orders: "select count(*) from shop.orders where state = 'open'"
 *
 * Rows: group "mysql" instance NAME {up, connect_s, query_s, connections, max_connections,
 * conn_used_pct, is_replica, replication_lag_s, uptime_s}; group "mysql_db" instance
 * NAME/SCHEMA {size_bytes}; group "mysql_query" instance NAME/QUERY[/ROW] {value}.
 * Check "mysql_NAME": OK with the figures, CRITICAL with the server's message. One
 * connection per sample, on the agent's thread pool.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mysql.h>

#include "probe.h"
#include "wp/err.h"
#include "wp/mem.h"

#define MY_PASSWORD_MAX 1024
#define MY_ROWS_MAX     1000

struct mysql_ctx {
    /* options */
    char *host;
    int64_t port;
    char *socket;
    char *user;
    char *password_file;
    char *database;
    int64_t timeout_ms;
    int databases;
    struct wp_strlist queries;
    /* state */
    char password[MY_PASSWORD_MAX];
    int has_password;
};

static const struct wp_opt mysql_opts[] = {
    {.name = "host",
     .type = WP_OPT_STR,
     .def = "127.0.0.1",
     .help = "server address (ignored with socket)",
     .offset = offsetof(struct mysql_ctx, host)},
    {.name = "port",
     .type = WP_OPT_INT,
     .def = "3306",
     .help = "server port",
     .offset = offsetof(struct mysql_ctx, port),
     .min = 1,
     .max = 65535},
    {.name = "socket",
     .type = WP_OPT_STR,
     .help = "unix socket instead of host and port",
     .offset = offsetof(struct mysql_ctx, socket)},
    {.name = "user",
     .type = WP_OPT_STR,
     .def = "watchpost",
     .help = "user to log in as",
     .offset = offsetof(struct mysql_ctx, user)},
    {.name = "password_file",
     .type = WP_OPT_STR,
     .help = "file holding the password (first line); never logged",
     .offset = offsetof(struct mysql_ctx, password_file)},
    {.name = "database",
     .type = WP_OPT_STR,
     .help = "default schema for the custom queries",
     .offset = offsetof(struct mysql_ctx, database)},
    {.name = "timeout",
     .type = WP_OPT_DURATION,
     .def = "5s",
     .help = "connect, read and write timeout",
     .offset = offsetof(struct mysql_ctx, timeout_ms),
     .min = 1000,
     .max = 600000},
    {.name = "databases",
     .type = WP_OPT_BOOL,
     .def = "true",
     .help = "report the size of every schema",
     .offset = offsetof(struct mysql_ctx, databases)},
    {.name = "queries",
     .type = WP_OPT_STRMAP,
     .help = "name: SQL returning one number, or rows of (name, number)",
     .offset = offsetof(struct mysql_ctx, queries)},
    WP_OPT_TABLE_END,
};

static const char *const server_fields[] = {
    "up",         "connect_s",         "query_s",  "connections", "max_connections",
    "conn_used_pct", "is_replica", "replication_lag_s", "uptime_s",
};
enum { F_UP, F_CONNECT, F_QUERY, F_CONNS, F_MAXCONNS, F_USED, F_REPLICA, F_LAG, F_UPTIME, F_N };
static const struct wp_series_kind server_kind = {"mysql", server_fields, F_N, WP_DS_GAUGE};

static const char *const db_fields[] = {"size_bytes"};
static const struct wp_series_kind db_kind = {"mysql_db", db_fields, 1, WP_DS_GAUGE};

static const char *const query_fields[] = {"value"};
static const struct wp_series_kind query_kind = {"mysql_query", query_fields, 1, WP_DS_GAUGE};

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;

static void lib_init(void)
{
    mysql_library_init(0, NULL, NULL);
}

static int mysql_init_probe(struct wp_probe *p)
{
    struct mysql_ctx *c = p->ctx;

    pthread_once(&lib_once, lib_init);
    int rc = wp_probe_map_names_ok(p, &c->queries, "queries");
    if (rc == 0 && c->password_file != NULL) {
        rc = wp_probe_read_secret(p, c->password_file, c->password, sizeof(c->password));
        c->has_password = rc == 0;
    }
    return rc;
}

static double num(const char *s)
{
    char *end = NULL;
    if (s == NULL) {
        return NAN;
    }
    double v = strtod(s, &end);
    return end != NULL && end != s && *end == '\0' ? v : NAN;
}

/* Run sql and keep the whole result; NULL with the message in why. */
static MYSQL_RES *run(MYSQL *m, const char *sql, char *why, size_t len)
{
    if (mysql_query(m, sql) != 0) {
        snprintf(why, len, "%s", mysql_error(m));
        return NULL;
    }
    MYSQL_RES *r = mysql_store_result(m);
    if (r == NULL) {
        snprintf(why, len, "%s", mysql_errno(m) != 0 ? mysql_error(m) : "no result set");
    }
    return r;
}

/* The value column of SHOW ... STATUS/VARIABLES LIKE 'name'. */
static double show_value(MYSQL *m, const char *sql)
{
    char why[256];
    MYSQL_RES *r = run(m, sql, why, sizeof(why));
    double v = NAN;
    if (r != NULL) {
        MYSQL_ROW row = mysql_fetch_row(r);
        if (row != NULL && mysql_num_fields(r) >= 2) {
            v = num(row[1]);
        }
        mysql_free_result(r);
    }
    return v;
}

static void replica(MYSQL *m, double *is_replica, double *lag)
{
    char why[256];
    MYSQL_RES *r = run(m, "SHOW SLAVE STATUS", why, sizeof(why));

    *is_replica = 0;
    *lag = NAN;
    if (r == NULL) {
        return; /* no privilege for it: not known, not fatal */
    }
    MYSQL_ROW row = mysql_fetch_row(r);
    if (row != NULL) {
        *is_replica = 1;
        MYSQL_FIELD *f = mysql_fetch_fields(r);
        for (unsigned i = 0; i < mysql_num_fields(r); i++) {
            if (strcmp(f[i].name, "Seconds_Behind_Master") == 0) {
                *lag = num(row[i]); /* NULL while the replica threads are stopped */
            }
        }
    }
    mysql_free_result(r);
}

static void custom_queries(struct wp_probe *p, MYSQL *m, struct wp_sink *out)
{
    struct mysql_ctx *c = p->ctx;
    char inst[WP_INST_MAX];
    char why[256];

    for (size_t i = 0; i + 1 < c->queries.n; i += 2) {
        const char *qname = c->queries.v[i];
        MYSQL_RES *r = run(m, c->queries.v[i + 1], why, sizeof(why));
        if (r == NULL) {
            WP_PLOG(p, WP_LOG_WARN, "query %s failed: %s", qname, why);
            continue;
        }
        MYSQL_ROW row;
        if (mysql_num_fields(r) == 1) {
            row = mysql_fetch_row(r);
            double v = row != NULL ? num(row[0]) : NAN;
            snprintf(inst, sizeof(inst), "%s/%s", p->instance, qname);
            wp_sink_metric(out, &query_kind, inst, &v);
        } else {
            for (int k = 0; k < MY_ROWS_MAX && (row = mysql_fetch_row(r)) != NULL; k++) {
                if (row[0] == NULL) {
                    continue;
                }
                double v = num(row[1]);
                snprintf(inst, sizeof(inst), "%s/%s/%s", p->instance, qname, row[0]);
                wp_sink_metric(out, &query_kind, inst, &v);
            }
        }
        mysql_free_result(r);
    }
}

static int mysql_sample(struct wp_probe *p, struct wp_sink *out)
{
    struct mysql_ctx *c = p->ctx;
    double v[F_N];
    char output[512];
    char check[WP_INST_MAX];
    unsigned int tmo = (unsigned int)((c->timeout_ms + 999) / 1000);

    snprintf(check, sizeof(check), "mysql_%s", p->instance);
    for (int i = 0; i < F_N; i++) {
        v[i] = NAN;
    }
    mysql_thread_init();
    MYSQL *m = mysql_init(NULL);
    if (m == NULL) {
        mysql_thread_end();
        return -ENOMEM;
    }
    mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &tmo);
    mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &tmo);
    mysql_options(m, MYSQL_OPT_WRITE_TIMEOUT, &tmo);
    mysql_options(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    double t0 = wp_probe_mono_s();
    if (mysql_real_connect(m, c->socket != NULL ? NULL : c->host, c->user,
                           c->has_password ? c->password : NULL, c->database,
                           (unsigned int)c->port, c->socket, 0) == NULL) {
        v[F_UP] = 0;
        wp_sink_metric(out, &server_kind, p->instance, v);
        snprintf(output, sizeof(output), "MYSQL CRITICAL: %s", mysql_error(m));
        wp_sink_check(out, check, WP_CHECK_CRITICAL, output);
        mysql_close(m);
        mysql_thread_end();
        return 0;
    }
    v[F_CONNECT] = wp_probe_mono_s() - t0;
    v[F_UP] = 1;
    t0 = wp_probe_mono_s();
    v[F_CONNS] = show_value(m, "SHOW GLOBAL STATUS LIKE 'Threads_connected'");
    v[F_QUERY] = wp_probe_mono_s() - t0;
    v[F_MAXCONNS] = show_value(m, "SHOW GLOBAL VARIABLES LIKE 'max_connections'");
    v[F_UPTIME] = show_value(m, "SHOW GLOBAL STATUS LIKE 'Uptime'");
    v[F_USED] = v[F_MAXCONNS] > 0 ? 100.0 * v[F_CONNS] / v[F_MAXCONNS] : NAN;
    replica(m, &v[F_REPLICA], &v[F_LAG]);
    wp_sink_metric(out, &server_kind, p->instance, v);
    if (isnan(v[F_CONNS])) {
        snprintf(output, sizeof(output), "MYSQL CRITICAL: connected, but the status query failed: "
                 "%s", mysql_error(m));
        wp_sink_check(out, check, WP_CHECK_CRITICAL, output);
    } else {
        snprintf(output, sizeof(output),
                 "MYSQL OK: connected in %.3f s, %.0f of %.0f connections used, up %.0f s%s",
                 v[F_CONNECT], v[F_CONNS], v[F_MAXCONNS], v[F_UPTIME],
                 v[F_REPLICA] == 1 ? " (replica)" : "");
        wp_sink_check(out, check, WP_CHECK_OK, output);
    }
    if (c->databases) {
        char why[256];
        MYSQL_RES *r = run(m,
                           "select table_schema, sum(data_length + index_length) "
                           "from information_schema.tables group by table_schema order by 1",
                           why, sizeof(why));
        if (r == NULL) {
            WP_PLOG(p, WP_LOG_WARN, "schema sizes: %s", why);
        } else {
            MYSQL_ROW row;
            char inst[WP_INST_MAX];
            for (int k = 0; k < MY_ROWS_MAX && (row = mysql_fetch_row(r)) != NULL; k++) {
                double dv = num(row[1]);
                snprintf(inst, sizeof(inst), "%s/%s", p->instance, row[0] ? row[0] : "");
                wp_sink_metric(out, &db_kind, inst, &dv);
            }
            mysql_free_result(r);
        }
    }
    custom_queries(p, m, out);
    mysql_close(m);
    mysql_thread_end();
    return 0;
}

static void mysql_destroy(struct wp_probe *p)
{
    struct mysql_ctx *c = p->ctx;
    explicit_bzero(c->password, sizeof(c->password));
}

const struct wp_probe_ops wp_probe_mysql = {
    .name = "mysql",
    .summary = "MySQL/MariaDB: up, connections, schema sizes, replication lag, custom SQL",
    .opts = mysql_opts,
    .ctx_size = sizeof(struct mysql_ctx),
    .flags = WP_PROBE_BLOCKING,
    .init = mysql_init_probe,
    .sample = mysql_sample,
    .start = NULL,
    .stop = NULL,
    .destroy = mysql_destroy,
    .committed = NULL,
};
