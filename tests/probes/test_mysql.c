/* SPDX-License-Identifier: Apache-2.0 */
/* The mysql probe against a real MariaDB started by the test in a temporary folder on a
 * loopback port (mariadb-install-db + mariadbd from Debian's mariadb-server; as the mysql
 * user when the test runs as root): figures, custom queries, a wrong password (CRITICAL
 * with the server's message, the password nowhere), and a stopped server. */
#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
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

extern const struct wp_probe_ops wp_probe_mysql;

#define PASSWORD "s3cret-Pa55"

struct env {
    char dir[64];
    char data[96];
    char sock[96];
    char pwfile[96];
    char log[96];
    int port;
    pid_t pid;
};

static struct env E;

/* A free loopback port: bind port 0, read it back, release it for the server. */
static int server_start(void)
{
    E.pid = fork();
    if (E.pid < 0) {
        return -1;
    }
    if (E.pid == 0) {
        char port[16], datadir[128], socket_[128], logf[128];
        snprintf(port, sizeof(port), "--port=%d", E.port);
        snprintf(datadir, sizeof(datadir), "--datadir=%s", E.data);
        snprintf(socket_, sizeof(socket_), "--socket=%s", E.sock);
        snprintf(logf, sizeof(logf), "--log-error=%s", E.log);
        execl("/usr/sbin/mariadbd", "mariadbd", "--no-defaults", datadir, socket_, port,
              "--bind-address=127.0.0.1", logf, "--skip-log-bin", "--innodb-buffer-pool-size=16M",
              "--pid-file=/dev/null", geteuid() == 0 ? "--user=mysql" : "--skip-name-resolve",
              (char *)NULL);
        _exit(127);
    }
    /* ready when the admin client can log in through the socket (bounded: 60 s) */
    for (int i = 0; i < 600; i++) {
        if (peers_sh("mariadb --no-defaults -S %s -u root -e 'select 1' > /dev/null 2>&1", E.sock) ==
            0) {
            return 0;
        }
        if (waitpid(E.pid, NULL, WNOHANG) == E.pid) {
            E.pid = 0;
            return -1;
        }
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

static void server_stop(void)
{
    if (E.pid > 0) {
        kill(E.pid, SIGTERM);
        for (int i = 0; i < 300 && waitpid(E.pid, NULL, WNOHANG) == 0; i++) {
            struct timespec ts = {0, 100000000};
            nanosleep(&ts, NULL);
        }
        kill(E.pid, SIGKILL);
        waitpid(E.pid, NULL, 0);
        E.pid = 0;
    }
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(E.dir, sizeof(E.dir), "/tmp/wp-mysql-XXXXXX");
    if (mkdtemp(E.dir) == NULL) {
        return -1;
    }
    snprintf(E.data, sizeof(E.data), "%s/data", E.dir);
    snprintf(E.sock, sizeof(E.sock), "%s/sock", E.dir);
    snprintf(E.pwfile, sizeof(E.pwfile), "%s/pw", E.dir);
    snprintf(E.log, sizeof(E.log), "%s/server.log", E.dir);
    FILE *f = fopen(E.pwfile, "w");
    if (f == NULL) {
        return -1;
    }
    fprintf(f, "%s\n", PASSWORD);
    fclose(f);
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("mysql");
        if (pw == NULL || chown(E.dir, pw->pw_uid, pw->pw_gid) < 0) {
            return -1;
        }
    }
    if (peers_sh("mariadb-install-db --no-defaults --datadir=%s %s --auth-root-authentication-method=socket "
           "--skip-test-db > %s/install.log 2>&1",
           E.data, geteuid() == 0 ? "--user=mysql" : "", E.dir) != 0) {
        fprintf(stderr, "mariadb-install-db failed, see %s/install.log\n", E.dir);
        return -1;
    }
    int started = 0;
    for (int attempt = 0; attempt < 5 && !started; attempt++) {
        E.port = peers_free_port();
        started = E.port > 0 && server_start() == 0;
        if (!started) {
            server_stop();
        }
    }
    if (!started) {
        fprintf(stderr, "MariaDB did not start, see %s\n", E.log);
        return -1;
    }
    if (peers_sh("mariadb --no-defaults -S %s -u root -e \"create user watchpost@'127.0.0.1' "
           "identified by '%s'; grant process, replication client, select on *.* to "
           "watchpost@'127.0.0.1'; create database shop; create table shop.t (x int); "
           "insert into shop.t values (1), (2), (3);\"",
           E.sock, PASSWORD) != 0) {
        fprintf(stderr, "could not create the test user\n");
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    server_stop();
    peers_rmtree(E.dir);
    return 0;
}

static void figures_and_queries(void **state)
{
    char yaml[1024];
    struct capture c;
    (void)state;

    snprintf(yaml, sizeof(yaml),
             "kind: mysql\nname: orders\nhost: 127.0.0.1\nport: %d\nuser: watchpost\n"
             "password_file: %s\n"
             "queries:\n"
             "  rows: \"select count(*) from shop.t\"\n"
             "  per_x: \"select concat('x', x), x * 10 from shop.t order by 1\"\n",
             E.port, E.pwfile);
    struct wp_probe *p = peers_probe(&wp_probe_mysql, yaml);
    capture_init(&c, 1767225600000LL, 60);
    assert_int_equal(p->ops->sample(p, &c.sink), 0);
    assert_int_equal(c.bad, 0);
    assert_true(peers_field(&c, "mysql", "orders", "up") == 1);
    assert_true(peers_field(&c, "mysql", "orders", "connections") >= 1);
    assert_true(peers_field(&c, "mysql", "orders", "max_connections") == 151);
    assert_true(peers_field(&c, "mysql", "orders", "uptime_s") >= 0);
    assert_true(peers_field(&c, "mysql", "orders", "is_replica") == 0);
    assert_true(peers_field(&c, "mysql_db", "orders/shop", "size_bytes") > 0);
    assert_true(peers_field(&c, "mysql_query", "orders/rows", "value") == 3);
    assert_true(peers_field(&c, "mysql_query", "orders/per_x/x2", "value") == 20);
    fixture_assert_check(&c, "mysql_orders", WP_CHECK_OK, "MYSQL OK: connected in");
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
             "kind: mysql\nname: orders\nport: %d\npassword_file: %s\n", E.port, pw);
    struct wp_probe *p = peers_probe(&wp_probe_mysql, yaml);
    capture_init(&c, 1767225600000LL, 60);
    assert_int_equal(p->ops->sample(p, &c.sink), 0);
    assert_true(peers_field(&c, "mysql", "orders", "up") == 0);
    const struct cap_rec *chk =
        fixture_assert_check(&c, "mysql_orders", WP_CHECK_CRITICAL, "Access denied");
    assert_null(strstr(chk->text, "not-the-Pa55word"));
    capture_cleanup(&c);
    wp_probe_free(p);
}

static void stopped_server_is_critical(void **state)
{
    char yaml[1024];
    struct capture c;
    (void)state;

    server_stop();
    snprintf(yaml, sizeof(yaml),
             "kind: mysql\nname: orders\ntimeout: 2s\nport: %d\npassword_file: %s\n", E.port,
             E.pwfile);
    struct wp_probe *p = peers_probe(&wp_probe_mysql, yaml);
    capture_init(&c, 1767225600000LL, 60);
    assert_int_equal(p->ops->sample(p, &c.sink), 0);
    assert_true(peers_field(&c, "mysql", "orders", "up") == 0);
    fixture_assert_check(&c, "mysql_orders", WP_CHECK_CRITICAL, "MYSQL CRITICAL");
    capture_cleanup(&c);
    wp_probe_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(figures_and_queries),
        cmocka_unit_test(wrong_password_is_critical_and_secret),
        cmocka_unit_test(stopped_server_is_critical),
    };
    if (access("/usr/sbin/mariadbd", X_OK) != 0) {
        fprintf(stderr, "test_mysql: /usr/sbin/mariadbd missing (scripts/deps.sh installs "
                        "mariadb-server)\n");
        return 1;
    }
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
