/* SPDX-License-Identifier: Apache-2.0 */
/* The pgsql probe against a real PostgreSQL started by the test in a temporary folder on a
 * loopback port (initdb + pg_ctl from Debian's postgresql package; as the postgres user when
 * the test runs as root): figures, custom queries, a wrong password (CRITICAL with the
 * server's message, the password nowhere), and a stopped server. */
#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "capture.h"
#include "peers.h"
#include "probe.h"
#include "probe_fixture.h"
#include "wp/conf.h"
#include "wp/mem.h"

extern const struct wp_probe_ops wp_probe_pgsql;

#define PG_BIN   "/usr/lib/postgresql/15/bin"
#define PASSWORD "s3cret-Pa55"

struct env {
    char dir[64];
    char data[96];
    char pwfile[96];
    char log[96];
    char as[64]; /* "runuser -u postgres -- " when root */
    int port;
    int started;
};

static struct env E;

/* A free loopback port: bind port 0, read it back, release it for the server. */
static int pg_start(void)
{
    return peers_sh("%s%s/pg_ctl -D %s -l %s -w -t 60 -o '-p %d -k %s -c listen_addresses=127.0.0.1' "
              "start > /dev/null",
              E.as, PG_BIN, E.data, E.log, E.port, E.dir);
}

static int pg_stop(void)
{
    return peers_sh("%s%s/pg_ctl -D %s -w -t 60 -m fast stop > /dev/null 2>&1", E.as, PG_BIN, E.data);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(E.dir, sizeof(E.dir), "/tmp/wp-pgsql-XXXXXX");
    if (mkdtemp(E.dir) == NULL) {
        return -1;
    }
    snprintf(E.data, sizeof(E.data), "%s/data", E.dir);
    snprintf(E.pwfile, sizeof(E.pwfile), "%s/pw", E.dir);
    snprintf(E.log, sizeof(E.log), "%s/server.log", E.dir);
    FILE *f = fopen(E.pwfile, "w");
    if (f == NULL) {
        return -1;
    }
    fprintf(f, "%s\n", PASSWORD);
    fclose(f);
    if (geteuid() == 0) {
        /* initdb refuses root: the cluster belongs to the postgres user */
        struct passwd *pw = getpwnam("postgres");
        if (pw == NULL || chown(E.dir, pw->pw_uid, pw->pw_gid) < 0 ||
            chown(E.pwfile, pw->pw_uid, pw->pw_gid) < 0) {
            return -1;
        }
        snprintf(E.as, sizeof(E.as), "runuser -u postgres -- ");
    }
    if (peers_sh("%s%s/initdb -D %s -U watchpost --pwfile=%s --auth-local=trust "
           "--auth-host=scram-sha-256 -E UTF8 --locale=C > %s/initdb.log 2>&1",
           E.as, PG_BIN, E.data, E.pwfile, E.dir) != 0) {
        fprintf(stderr, "initdb failed, see %s/initdb.log\n", E.dir);
        return -1;
    }
    for (int attempt = 0; attempt < 5 && !E.started; attempt++) {
        E.port = peers_free_port();
        E.started = E.port > 0 && pg_start() == 0;
    }
    if (!E.started) {
        fprintf(stderr, "PostgreSQL did not start, see %s\n", E.log);
        return -1;
    }
    peers_sh("PGPASSWORD=" PASSWORD " %s/psql -h 127.0.0.1 -p %d -U watchpost -d postgres -q -c "
       "\"create database shop; \" > /dev/null 2>&1",
       PG_BIN, E.port);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (E.started) {
        pg_stop();
    }
    peers_rmtree(E.dir);
    return 0;
}

static void figures_and_queries(void **state)
{
    char yaml[1024];
    struct capture c;
    (void)state;

    snprintf(yaml, sizeof(yaml),
             "kind: pgsql\nname: main\n"
             "conninfo: \"host=127.0.0.1 port=%d dbname=postgres user=watchpost\"\n"
             "password_file: %s\n"
             "queries:\n"
             "  answer: \"select 42\"\n"
             "  per_db: \"select datname, length(datname) from pg_database order by 1\"\n",
             E.port, E.pwfile);
    struct wp_probe *p = peers_probe(&wp_probe_pgsql, yaml);
    capture_init(&c, 1767225600000LL, 60);
    assert_int_equal(p->ops->sample(p, &c.sink), 0);
    assert_int_equal(c.bad, 0);
    assert_true(peers_field(&c, "pgsql", "main", "up") == 1);
    assert_true(peers_field(&c, "pgsql", "main", "connect_s") >= 0);
    assert_true(peers_field(&c, "pgsql", "main", "connections") >= 1);
    assert_true(peers_field(&c, "pgsql", "main", "max_connections") == 100);
    assert_true(peers_field(&c, "pgsql", "main", "is_replica") == 0);
    assert_true(peers_field(&c, "pgsql_db", "main/shop", "size_bytes") > 1000000);
    assert_true(peers_field(&c, "pgsql_query", "main/answer", "value") == 42);
    assert_true(peers_field(&c, "pgsql_query", "main/per_db/shop", "value") == 4);
    fixture_assert_check(&c, "pgsql_main", WP_CHECK_OK, "PGSQL OK: connected in");
    capture_cleanup(&c);
    wp_probe_free(p);
}

static void wrong_password_is_critical_and_secret(void **state)
{
    char yaml[1024];
    char pw[128];
    struct capture c;
    (void)state;

    snprintf(pw, sizeof(pw), "%s/wrong", E.dir);
    fixture_write_file(pw, "not-the-Pa55word\n");
    snprintf(yaml, sizeof(yaml),
             "kind: pgsql\nname: main\n"
             "conninfo: \"host=127.0.0.1 port=%d dbname=postgres user=watchpost\"\n"
             "password_file: %s\n",
             E.port, pw);
    struct wp_probe *p = peers_probe(&wp_probe_pgsql, yaml);
    capture_init(&c, 1767225600000LL, 60);
    assert_int_equal(p->ops->sample(p, &c.sink), 0);
    assert_true(peers_field(&c, "pgsql", "main", "up") == 0);
    const struct cap_rec *chk =
        fixture_assert_check(&c, "pgsql_main", WP_CHECK_CRITICAL, "password authentication failed");
    assert_null(strstr(chk->text, "not-the-Pa55word"));
    capture_cleanup(&c);
    wp_probe_free(p);
}

static void stopped_server_is_critical(void **state)
{
    char yaml[1024];
    struct capture c;
    (void)state;

    assert_int_equal(pg_stop(), 0);
    E.started = 0;
    snprintf(yaml, sizeof(yaml),
             "kind: pgsql\nname: main\ntimeout: 2s\n"
             "conninfo: \"host=127.0.0.1 port=%d dbname=postgres user=watchpost\"\n"
             "password_file: %s\n",
             E.port, E.pwfile);
    struct wp_probe *p = peers_probe(&wp_probe_pgsql, yaml);
    capture_init(&c, 1767225600000LL, 60);
    assert_int_equal(p->ops->sample(p, &c.sink), 0);
    assert_true(peers_field(&c, "pgsql", "main", "up") == 0);
    fixture_assert_check(&c, "pgsql_main", WP_CHECK_CRITICAL, "PGSQL CRITICAL");
    capture_cleanup(&c);
    wp_probe_free(p);
    /* back up for anything that follows */
    E.started = pg_start() == 0;
}

static void bad_query_name_refused(void **state)
{
    struct wp_conf_doc *doc = NULL;
    struct wp_conf_err err;
    struct wp_probe *p = NULL;
    const char *yaml = "kind: pgsql\nconninfo: \"host=x\"\nqueries:\n  \"a b\": \"select 1\"\n";
    (void)state;

    assert_int_equal(wp_conf_parse("pgsql.yaml", yaml, strlen(yaml), &err, &doc), 0);
    assert_true(wp_probe_new(&wp_probe_pgsql, doc, wp_conf_root(doc), &err, &p) < 0);
    assert_null(p);
    wp_conf_free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(figures_and_queries),
        cmocka_unit_test(wrong_password_is_critical_and_secret),
        cmocka_unit_test(stopped_server_is_critical),
        cmocka_unit_test(bad_query_name_refused),
    };
    if (access(PG_BIN "/initdb", X_OK) != 0) {
        fprintf(stderr, "test_pgsql: %s/initdb missing (scripts/deps.sh installs postgresql)\n",
                PG_BIN);
        return 1;
    }
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
