/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pgsql probe: is a PostgreSQL server answering, how full is it, how big are its
 * databases, how far behind is a replica, and custom SQL that returns numbers.
 *
 *   probes:
 *     - kind: pgsql
 *       name: main                   # the instance of every row and of the check
 *       interval: 60s
 *       conninfo: "host=127.0.0.1 port=5432 dbname=postgres user=watchpost"
 *       password_file: /etc/watchpost/pgsql.pass   # optional; never logged
 *       timeout: 5s                  # connect and each statement
 *       databases: true              # sizes and backends per database
 *       queries:                     # name: SQL returning one number, or rows (text, number)
 *         orders_open: "select count(*) from orders where state = 'open'"
 *
 * Rows: group "pgsql" instance NAME {up, connect_s, query_s, connections, max_connections,
 * conn_used_pct, is_replica, replication_lag_s}; group "pgsql_db" instance NAME/DB
 * {size_bytes, backends}; group "pgsql_query" instance NAME/QUERY or NAME/QUERY/ROW {value}.
 * Check "pgsql_NAME": OK with the connection figures, CRITICAL with the server's message
 * when the connection or a statement fails. One connection per sample (the figures include
 * what a client pays to connect); the probe runs on the agent's thread pool.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "probe.h"
#include "wp/err.h"
#include "wp/mem.h"

#define PG_PASSWORD_MAX 1024
#define PG_ROWS_MAX     1000 /* rows taken from one custom query */

struct pgsql_ctx {
    /* options */
    char *conninfo;
    char *password_file;
    int64_t timeout_ms;
    int databases;
    struct wp_strlist queries; /* name, sql, name, sql, ... */
    /* state */
    char password[PG_PASSWORD_MAX];
    int has_password;
};

static const struct wp_opt pgsql_opts[] = {
    {.name = "conninfo",
     .type = WP_OPT_STR,
     .help = "libpq connection string (host, port, dbname, user, sslmode, ...)",
     .offset = offsetof(struct pgsql_ctx, conninfo),
     .required = 1},
    {.name = "password_file",
     .type = WP_OPT_STR,
     .help = "file holding the password (first line); never logged",
     .offset = offsetof(struct pgsql_ctx, password_file)},
    {.name = "timeout",
     .type = WP_OPT_DURATION,
     .def = "5s",
     .help = "connect timeout and statement timeout",
     .offset = offsetof(struct pgsql_ctx, timeout_ms),
     .min = 1000,
     .max = 600000},
    {.name = "databases",
     .type = WP_OPT_BOOL,
     .def = "true",
     .help = "report size and backends of every database",
     .offset = offsetof(struct pgsql_ctx, databases)},
    {.name = "queries",
     .type = WP_OPT_STRMAP,
     .help = "name: SQL returning one number, or rows of (name, number)",
     .offset = offsetof(struct pgsql_ctx, queries)},
    WP_OPT_TABLE_END,
};

static const char *const server_fields[] = {
    "up",           "connect_s",     "query_s",    "connections",
    "max_connections", "conn_used_pct", "is_replica", "replication_lag_s",
};
enum { F_UP, F_CONNECT, F_QUERY, F_CONNS, F_MAXCONNS, F_USED, F_REPLICA, F_LAG, F_N };
static const struct wp_series_kind server_kind = {"pgsql", server_fields, F_N, WP_DS_GAUGE};

static const char *const db_fields[] = {"size_bytes", "backends"};
static const struct wp_series_kind db_kind = {"pgsql_db", db_fields, 2, WP_DS_GAUGE};

static const char *const query_fields[] = {"value"};
static const struct wp_series_kind query_kind = {"pgsql_query", query_fields, 1, WP_DS_GAUGE};

static int pgsql_init(struct wp_probe *p)
{
    struct pgsql_ctx *c = p->ctx;
    int rc = wp_probe_map_names_ok(p, &c->queries, "queries");
    if (rc == 0 && c->password_file != NULL) {
        rc = wp_probe_read_secret(p, c->password_file, c->password, sizeof(c->password));
        c->has_password = rc == 0;
    }
    return rc;
}

/* The first line of libpq's message, for a check output. */
static void first_line(const char *msg, char *out, size_t len)
{
    snprintf(out, len, "%s", msg != NULL && *msg != '\0' ? msg : "unknown error");
    out[strcspn(out, "\r\n")] = '\0';
}

/* Run sql; on failure fill why and return NULL. The caller PQclear()s. */
static PGresult *run(PGconn *conn, const char *sql, char *why, size_t len)
{
    PGresult *r = PQexec(conn, sql);
    if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK) {
        first_line(r != NULL ? PQresultErrorMessage(r) : PQerrorMessage(conn), why, len);
        PQclear(r);
        return NULL;
    }
    return r;
}

static double cell(const PGresult *r, int row, int col)
{
    if (row >= PQntuples(r) || col >= PQnfields(r) || PQgetisnull(r, row, col)) {
        return NAN;
    }
    char *end = NULL;
    double v = strtod(PQgetvalue(r, row, col), &end);
    return end != NULL && *end == '\0' ? v : NAN;
}

static void custom_queries(struct wp_probe *p, PGconn *conn, struct wp_sink *out)
{
    struct pgsql_ctx *c = p->ctx;
    char inst[WP_INST_MAX];
    char why[256];

    for (size_t i = 0; i + 1 < c->queries.n; i += 2) {
        const char *qname = c->queries.v[i];
        PGresult *r = run(conn, c->queries.v[i + 1], why, sizeof(why));
        if (r == NULL) {
            WP_PLOG(p, WP_LOG_WARN, "query %s failed: %s", qname, why);
            continue;
        }
        if (PQnfields(r) == 1) {
            double v = cell(r, 0, 0);
            snprintf(inst, sizeof(inst), "%s/%s", p->instance, qname);
            wp_sink_metric(out, &query_kind, inst, &v);
        } else {
            int rows = PQntuples(r) < PG_ROWS_MAX ? PQntuples(r) : PG_ROWS_MAX;
            for (int k = 0; k < rows; k++) {
                double v = cell(r, k, 1);
                if (PQgetisnull(r, k, 0)) {
                    continue;
                }
                snprintf(inst, sizeof(inst), "%s/%s/%s", p->instance, qname,
                         PQgetvalue(r, k, 0));
                wp_sink_metric(out, &query_kind, inst, &v);
            }
        }
        PQclear(r);
    }
}

static int pgsql_sample(struct wp_probe *p, struct wp_sink *out)
{
    struct pgsql_ctx *c = p->ctx;
    double v[F_N];
    char output[512];
    char why[256];
    char timeout_s[24], options[64];
    char check[WP_INST_MAX];
    PGresult *r = NULL;

    snprintf(check, sizeof(check), "pgsql_%s", p->instance);
    for (int i = 0; i < F_N; i++) {
        v[i] = NAN;
    }
    snprintf(timeout_s, sizeof(timeout_s), "%lld", (long long)((c->timeout_ms + 999) / 1000));
    snprintf(options, sizeof(options), "-c statement_timeout=%lld", (long long)c->timeout_ms);
    const char *keys[] = {"dbname", "connect_timeout", "options", "application_name",
                          c->has_password ? "password" : NULL, NULL};
    const char *vals[] = {c->conninfo, timeout_s, options, "watchpost-agent",
                          c->has_password ? c->password : NULL, NULL};
    double t0 = wp_probe_mono_s();
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    v[F_CONNECT] = wp_probe_mono_s() - t0;
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
        first_line(conn != NULL ? PQerrorMessage(conn) : "out of memory", why, sizeof(why));
        v[F_UP] = 0;
        v[F_CONNECT] = NAN;
        wp_sink_metric(out, &server_kind, p->instance, v);
        snprintf(output, sizeof(output), "PGSQL CRITICAL: %s", why);
        wp_sink_check(out, check, WP_CHECK_CRITICAL, output);
        PQfinish(conn);
        return 0;
    }
    v[F_UP] = 1;
    t0 = wp_probe_mono_s();
    r = run(conn,
            "select (select count(*) from pg_stat_activity), "
            "current_setting('max_connections')::int, pg_is_in_recovery()::int, "
            "case when pg_is_in_recovery() then coalesce(extract(epoch from now() - "
            "pg_last_xact_replay_timestamp()), 0) end",
            why, sizeof(why));
    v[F_QUERY] = wp_probe_mono_s() - t0;
    if (r == NULL) {
        v[F_QUERY] = NAN;
        wp_sink_metric(out, &server_kind, p->instance, v);
        snprintf(output, sizeof(output), "PGSQL CRITICAL: connected, but the status query failed: "
                 "%s", why);
        wp_sink_check(out, check, WP_CHECK_CRITICAL, output);
        PQfinish(conn);
        return 0;
    }
    v[F_CONNS] = cell(r, 0, 0);
    v[F_MAXCONNS] = cell(r, 0, 1);
    v[F_REPLICA] = cell(r, 0, 2);
    v[F_LAG] = cell(r, 0, 3);
    v[F_USED] = v[F_MAXCONNS] > 0 ? 100.0 * v[F_CONNS] / v[F_MAXCONNS] : NAN;
    PQclear(r);
    wp_sink_metric(out, &server_kind, p->instance, v);
    snprintf(output, sizeof(output),
             "PGSQL OK: connected in %.3f s, %.0f of %.0f connections used%s", v[F_CONNECT],
             v[F_CONNS], v[F_MAXCONNS], v[F_REPLICA] == 1 ? " (replica)" : "");
    wp_sink_check(out, check, WP_CHECK_OK, output);

    if (c->databases) {
        r = run(conn,
                "select d.datname, pg_database_size(d.oid), coalesce(s.numbackends, 0) "
                "from pg_database d left join pg_stat_database s on s.datid = d.oid "
                "where d.datallowconn and not d.datistemplate order by 1",
                why, sizeof(why));
        if (r == NULL) {
            WP_PLOG(p, WP_LOG_WARN, "database sizes: %s", why);
        } else {
            char inst[WP_INST_MAX];
            for (int k = 0; k < PQntuples(r) && k < PG_ROWS_MAX; k++) {
                double dv[2] = {cell(r, k, 1), cell(r, k, 2)};
                snprintf(inst, sizeof(inst), "%s/%s", p->instance, PQgetvalue(r, k, 0));
                wp_sink_metric(out, &db_kind, inst, dv);
            }
            PQclear(r);
        }
    }
    custom_queries(p, conn, out);
    PQfinish(conn);
    return 0;
}

static void pgsql_destroy(struct wp_probe *p)
{
    struct pgsql_ctx *c = p->ctx;
    /* the password must not linger in freed memory */
    explicit_bzero(c->password, sizeof(c->password));
}

const struct wp_probe_ops wp_probe_pgsql = {
    .name = "pgsql",
    .summary = "PostgreSQL: up, connections, database sizes, replication lag, custom SQL",
    .opts = pgsql_opts,
    .ctx_size = sizeof(struct pgsql_ctx),
    .flags = WP_PROBE_BLOCKING,
    .init = pgsql_init,
    .sample = pgsql_sample,
    .start = NULL,
    .stop = NULL,
    .destroy = pgsql_destroy,
    .committed = NULL,
};
