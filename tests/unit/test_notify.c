/* SPDX-License-Identifier: Apache-2.0 */
/* Notification config and rendering: `notify:` errors with file:line:column, routing by
 * priority, category, host, host group, escalation level and hours, webhook templates (JSON
 * values that no incident text can break, URL encoding, header injection refused),
 * PagerDuty bodies, response paths, the outbox's timeline cursor, and what goes out when an
 * incident's suppression (maintenance, a parent rule) lifts. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <jansson.h>
#include <uv.h>

#include "deliver.h"
#include "incident.h"
#include "notify.h"
#include "notify_render.h"
#include "outbox.h"
#include "wp/clock.h"
#include "wp/conf.h"
#include "wp/err.h"
#include "wp/mem.h"

static char tmpdir[] = "/tmp/wp-notify-XXXXXX";
static char secret_path[256];

static int decode(const char *yaml, struct notify_conf **out, struct wp_conf_err *err)
{
    struct wp_conf_doc *doc = NULL;
    int rc = wp_conf_parse("t.yaml", yaml, strlen(yaml), err, &doc);
    if (rc < 0) {
        return rc;
    }
    *out = NULL;
    rc = notify_conf_decode(doc, wp_conf_root(doc), out, NULL, err);
    wp_conf_free(doc);
    if (rc < 0) {
        notify_conf_free(out, NULL);
    }
    return rc;
}

static struct notify_conf *decode_ok(const char *yaml)
{
    struct notify_conf *c = NULL;
    struct wp_conf_err err;
    int rc = decode(yaml, &c, &err);
    if (rc < 0) {
        print_error("%s\n", err.msg);
    }
    assert_int_equal(rc, 0);
    return c;
}

static void expect_err(const char *yaml, const char *want)
{
    struct notify_conf *c = NULL;
    struct wp_conf_err err;
    memset(&err, 0, sizeof(err));
    assert_true(decode(yaml, &c, &err) < 0);
    if (strstr(err.msg, want) == NULL) {
        print_error("want \"%s\" in: %s\n", want, err.msg);
    }
    assert_non_null(strstr(err.msg, want));
}

static void config_errors(void **state)
{
    (void)state;
    expect_err("destinations:\n  - {name: a, kind: fax, url: x}\n", "t.yaml:2:");
    expect_err("destinations:\n  - {name: A!, kind: webhook, url: x}\n",
               "expected 1 to 64 of [a-z0-9_.-]");
    expect_err("destinations:\n"
               "  - {name: a, kind: webhook, url: 'http://x/', requests: {open: {body: '{}'}}}\n"
               "  - {name: a, kind: webhook, url: 'http://x/', requests: {open: {body: '{}'}}}\n",
               "t.yaml:3:12: notify.destinations[1].name: \"a\" is already the name of");
    expect_err("destinations:\n  - {name: a, kind: webhook, url: 'http://x/'}\n",
               "a webhook needs requests:");
    expect_err("destinations:\n"
               "  - {name: a, kind: webhook, url: 'http://x/',\n"
               "     requests: {open: {body: '{\"t\": {summmary}}'}}}\n",
               "unknown placeholder {summmary}");
    expect_err("destinations:\n  - {name: pd, kind: pagerduty, url: 'http://x/'}\n",
               "secret_file is missing (the routing key)");
    expect_err("destinations:\n  - {name: m, kind: email, url: 'smtp://x:25'}\n",
               "email needs from: and to:");
    expect_err("destinations:\n"
               "  - {name: m, kind: email, url: 'smtp://x', from: a@b, to: [c@d], lang: fr}\n",
               "lang: expected en or zh-CN");
    expect_err("destinations:\n  - {name: pd, kind: pagerduty, url: 'http://x/',\n"
               "     secret_file: /nonexistent/key}\n",
               "cannot read /nonexistent/key");
    expect_err("destinations:\n"
               "  - {name: a, kind: webhook, url: 'http://x/', digest: true,\n"
               "     requests: {open: {body: '{}'}}}\n",
               "digest: needs rate:");
    expect_err("routes:\n  - {to: [nowhere]}\n",
               "t.yaml:2:10: notify.routes[0].to: no destination named \"nowhere\"");
    expect_err("destinations:\n"
               "  - {name: a, kind: webhook, url: 'http://x/', requests: {open: {body: '{}'}}}\n"
               "routes:\n  - {priorities: [P5], to: [a]}\n",
               "expected P1, P2, P3 or P4");
    expect_err("destinations:\n"
               "  - {name: a, kind: webhook, url: 'http://x/', requests: {open: {body: '{}'}}}\n"
               "routes:\n  - {hours: '25:00-07:00', to: [a]}\n",
               "expected HH:MM-HH:MM");
}

/* ---- routing ------------------------------------------------------------------------------- */

struct hit {
    char names[512];
};

static void hit_cb(void *arg, const struct notify_dest *d)
{
    struct hit *h = arg;
    strncat(h->names, d->name, sizeof(h->names) - strlen(h->names) - 2);
    strcat(h->names, " ");
}

static int in_group(void *arg, const char *group, const char *host)
{
    (void)arg;
    return strcmp(group, "db") == 0 && strncmp(host, "db-", 3) == 0;
}

static const char *route(const struct notify_conf *c, int prio, const char *cat,
                         const char *host, int level, int hour, struct hit *h)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = 126;
    tm.tm_mon = 10;
    tm.tm_mday = 30;
    tm.tm_hour = hour;
    tm.tm_isdst = -1;
    struct notify_route_in in = {.priority = prio,
                                 .category = cat,
                                 .host = host,
                                 .rule = "r",
                                 .escalation = level,
                                 .now_ms = (int64_t)mktime(&tm) * 1000,
                                 .in_group = in_group};
    memset(h, 0, sizeof(*h));
    notify_route(c, &in, hit_cb, h);
    return h->names;
}

static void routing(void **state)
{
    struct hit h;
    (void)state;
    struct notify_conf *c = decode_ok(
        "destinations:\n"
        "  - {name: desk, kind: webhook, url: 'http://x/', requests: {open: {body: '{}'}}}\n"
        "  - {name: duty, kind: webhook, url: 'http://x/', requests: {open: {body: '{}'}}}\n"
        "  - {name: chat, kind: webhook, url: 'http://x/', requests: {open: {body: '{}'}}}\n"
        "  - {name: dba, kind: webhook, url: 'http://x/', requests: {open: {body: '{}'}}}\n"
        "  - {name: vendor, kind: webhook, url: 'http://x/', requests: {open: {body: '{}'}}}\n"
        "  - {name: tel, kind: webhook, url: 'http://x/', requests: {open: {body: '{}'}}}\n"
        "routes:\n"
        "  - {to: [desk]}\n"
        "  - {priorities: [P1, P2], to: [duty, desk]}\n"
        "  - {priorities: [P3, P4], hours: '08:00-20:00', to: [chat]}\n"
        "  - {groups: [db], to: [dba]}\n"
        "  - {from_level: 3, to: [vendor]}\n"
        "  - {categories: [tele*], hosts: ['pbx-*'], to: [tel]}\n");
    assert_string_equal(route(c, 1, "capacity", "app-1", 0, 3, &h), "desk duty ");
    assert_string_equal(route(c, 3, "capacity", "app-1", 0, 10, &h), "desk chat ");
    /* quiet hours: a P3 at night reaches the service desk only */
    assert_string_equal(route(c, 3, "capacity", "app-1", 0, 22, &h), "desk ");
    assert_string_equal(route(c, 4, "capacity", "db-1", 0, 22, &h), "desk dba ");
    assert_string_equal(route(c, 2, "capacity", "app-1", 3, 22, &h), "desk duty vendor ");
    assert_string_equal(route(c, 4, "telephony", "pbx-2", 0, 22, &h), "desk tel ");
    assert_string_equal(route(c, 4, "telephony", "app-2", 2, 22, &h), "desk ");
    notify_conf_free(&c, NULL);
}

/* ---- rendering ------------------------------------------------------------------------------ */

static const char *ctx_json =
    "{\"id\": 42, \"key\": \"disk|web01|mount=/var\", \"priority\": 1, \"status\": \"open\","
    " \"host\": \"web01\", \"rule\": \"disk\", \"category\": \"capacity\","
    " \"summary\": \"Disk \\\"/var\\\" full \\\\ 97 %\\nsecond line\", \"description\": \"d\","
    " \"runbook\": \"rm -rf nothing\", \"values\": {\"used_pct\": 97.5},"
    " \"event\": \"open\", \"event_by\": \"rule\", \"event_text\": \"used_pct 97.5 > 95\","
    " \"event_ms\": 1796026021000, \"event_at\": \"2026-11-30T08:07:01Z\", \"seq\": 7,"
    " \"escalation\": 0}";

static struct outbox_msg msg(const char *event)
{
    struct outbox_msg m;
    memset(&m, 0, sizeof(m));
    m.id = 1;
    m.event_id = "desk-42-7";
    m.dest = "desk";
    m.inc_key = "disk|web01|mount=/var";
    m.event = event;
    m.incident_id = 42;
    m.ctx = ctx_json;
    return m;
}

static void webhook_templates(void **state)
{
    char why[512];
    struct notify_request rq;
    (void)state;
    char *yaml = wp_xasprintf(
        "domain: noc.test\n"
        "destinations:\n"
        "  - name: desk\n"
        "    kind: webhook\n"
        "    url: 'http://desk/api/tickets'\n"
        "    secret_file: %s\n"
        "    headers: {Authorization: 'Bearer {secret}', X-Host: '{host}'}\n"
        "    requests:\n"
        "      open: {body: '{\"t\": {summary}, \"p\": {priority}, \"v\": {values}, \"r\": {ref}}'}\n"
        "      update: {url: 'http://desk/api/tickets/{remote_id}/notes?s={summary}',\n"
        "               body: '{\"text\": {event_text}}'}\n"
        "      resolve: {method: PUT, url: 'http://desk/api/tickets/{remote_id}',\n"
        "                headers: {X-Sum: '{summary}'}, body: '{\"state\": \"closed\"}'}\n"
        "    store: result.id\n",
        secret_path);
    struct notify_conf *c = decode_ok(yaml);
    free(yaml);
    const struct notify_dest *d = &c->dests[0];
    /* escalate and ack fall back to update; close has no request: not sent */
    assert_true(notify_dest_sends(d, NEV_ESCALATE));
    assert_false(notify_dest_sends(d, NEV_CLOSE));

    struct outbox_msg m = msg("open");
    assert_int_equal(notify_render(c, d, &m, "", &rq, why, sizeof(why)), 0);
    assert_string_equal(rq.method, "POST");
    assert_string_equal(rq.url, "http://desk/api/tickets");
    json_t *b = json_loads(rq.body, 0, NULL);
    assert_non_null(b); /* quotes, backslash and newline of the summary did not break it */
    assert_string_equal(json_string_value(json_object_get(b, "t")),
                        "Disk \"/var\" full \\ 97 %\nsecond line");
    assert_int_equal(json_integer_value(json_object_get(b, "p")), 1);
    assert_true(json_real_value(json_object_get(json_object_get(b, "v"), "used_pct")) == 97.5);
    assert_string_equal(json_string_value(json_object_get(b, "r")), "noc.test/INC-42");
    json_decref(b);
    assert_non_null(strstr(rq.headers, "Authorization: Bearer s3cr3t\n"));
    assert_non_null(strstr(rq.headers, "Idempotency-Key: desk-42-7\n"));
    assert_non_null(strstr(rq.headers, "X-Host: web01\n"));
    notify_request_free(&rq);

    /* an update needs the remote id: without one it is refused, with one URL-encoded */
    m = msg("update");
    assert_true(notify_render(c, d, &m, "", &rq, why, sizeof(why)) < 0);
    assert_non_null(strstr(why, "{remote_id}"));
    assert_int_equal(notify_render(c, d, &m, "T/1 x", &rq, why, sizeof(why)), 0);
    assert_non_null(strstr(rq.url, "/tickets/T%2F1%20x/notes?s=Disk%20%22%2Fvar%22"));
    notify_request_free(&rq);

    /* a header from incident text with a newline is refused (no header injection) */
    m = msg("resolve");
    assert_true(notify_render(c, d, &m, "T-1", &rq, why, sizeof(why)) < 0);
    assert_non_null(strstr(why, "control character"));

    /* the remote id from a response */
    char id[64];
    assert_int_equal(notify_json_pick("{\"result\": {\"id\": 17}}", 22, "result.id", id,
                                      sizeof(id)), 0);
    assert_string_equal(id, "17");
    const char *items = "{\"items\": [{\"id\": \"T-9\"}, {\"id\": \"T-10\"}]}";
    assert_int_equal(notify_json_pick(items, strlen(items), "items.0.id", id, sizeof(id)), 0);
    assert_string_equal(id, "T-9");
    assert_int_equal(notify_json_pick("{\"items\": []}", 13, "items.0.id", id, sizeof(id)),
                     WP_ENOTFOUND);
    assert_int_equal(notify_json_pick("not json", 8, "id", id, sizeof(id)), WP_ENOTFOUND);
    notify_conf_free(&c, NULL);
}

static void pagerduty_body(void **state)
{
    char why[256];
    struct notify_request rq;
    (void)state;
    char *yaml = wp_xasprintf("destinations:\n"
                              "  - {name: pd, kind: pagerduty, url: 'https://pd/v2/enqueue',\n"
                              "     secret_file: %s}\n",
                              secret_path);
    struct notify_conf *c = decode_ok(yaml);
    free(yaml);
    struct outbox_msg m = msg("open");
    m.event_id = "pd-42-7";
    assert_int_equal(notify_render(c, &c->dests[0], &m, "", &rq, why, sizeof(why)), 0);
    json_t *b = json_loads(rq.body, 0, NULL);
    assert_non_null(b);
    assert_string_equal(json_string_value(json_object_get(b, "routing_key")), "s3cr3t");
    assert_string_equal(json_string_value(json_object_get(b, "event_action")), "trigger");
    assert_string_equal(json_string_value(json_object_get(b, "dedup_key")),
                        "disk|web01|mount=/var");
    json_t *p = json_object_get(b, "payload");
    assert_string_equal(json_string_value(json_object_get(p, "severity")), "critical");
    assert_string_equal(json_string_value(json_object_get(p, "source")), "web01");
    assert_non_null(strstr(json_string_value(json_object_get(p, "summary")), "[INC-42] P1"));
    json_decref(b);
    notify_request_free(&rq);
    m = msg("resolve");
    assert_int_equal(notify_render(c, &c->dests[0], &m, "", &rq, why, sizeof(why)), 0);
    b = json_loads(rq.body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(b, "event_action")), "resolve");
    assert_null(json_object_get(b, "payload"));
    json_decref(b);
    notify_request_free(&rq);
    notify_conf_free(&c, NULL);
}

/* ---- the outbox follows the timeline -------------------------------------------------------- */

static void outbox_cursor(void **state)
{
    (void)state;
    char *path = wp_xasprintf("%s/incidents.db", tmpdir);
    struct inc_store *st = NULL;
    struct outbox *ob = NULL;
    int64_t id = 0;
    char err[256];
    struct notify_conf *c = decode_ok(
        "destinations:\n"
        "  - {name: desk, kind: webhook, url: 'http://x/',\n"
        "     requests: {open: {body: '{}'}, update: {body: '{}'}, resolve: {body: '{}'}}}\n"
        "routes:\n  - {priorities: [P1, P2], to: [desk]}\n");
    assert_int_equal(inc_open(path, NULL, &st), 0);
    struct inc_signal sig = {.fingerprint = "old|h", .rule = "old", .host = "h", .impact = 1,
                             .urgency = 1, .category = "c", .summary = "before the outbox",
                             .values_json = "{}"};
    assert_int_equal(inc_fire(st, &sig, 1000, &id), 1);
    /* a new outbox starts at the end of the timeline: the history is not sent */
    assert_int_equal(outbox_open(path, c, &ob), 0);
    assert_int_equal(outbox_generate(ob, 2000, 100), 0);
    sig.fingerprint = "new|h";
    sig.summary = "after";
    assert_int_equal(inc_fire(st, &sig, 3000, &id), 1);
    assert_int_equal(inc_ack(st, id, "alice", "on it", 4000, err, sizeof(err)), 0);
    sig.fingerprint = "low|h";
    sig.impact = 3;
    sig.urgency = 3; /* P4: no route */
    assert_int_equal(inc_fire(st, &sig, 4500, NULL), 1);
    assert_int_equal(outbox_generate(ob, 5000, 100), 2); /* open and ack of the P1 */
    assert_int_equal(outbox_generate(ob, 5000, 100), 0); /* nothing twice */
    /* a second outbox on the same file (a restart) resumes at the cursor */
    outbox_close(ob);
    assert_int_equal(outbox_open(path, c, &ob), 0);
    assert_int_equal(outbox_generate(ob, 6000, 100), 0);
    assert_int_equal(inc_clear(st, "new|h", 7000), 0);
    assert_int_equal(outbox_generate(ob, 8000, 100), 1);
    struct outbox_counts n;
    assert_int_equal(outbox_counts(ob, &n), 0);
    assert_int_equal((int)n.queued, 3);
    outbox_close(ob);
    inc_close(st);
    notify_conf_free(&c, NULL);
    free(path);
}

/* ---- after a suppression ------------------------------------------------------------------ */

struct ob_row {
    int64_t id;
    char dest[32], event[16], state[16], event_id[96], last_error[256];
    char *ctx;
};

struct ob_rows {
    int64_t inc;
    struct ob_row r[32];
    size_t n;
};

static int row_cb(void *arg, const struct outbox_msg *m)
{
    struct ob_rows *rs = arg;
    if (m->incident_id != rs->inc || rs->n == sizeof(rs->r) / sizeof(rs->r[0])) {
        return 0;
    }
    struct ob_row *r = &rs->r[rs->n++];
    r->id = m->id;
    snprintf(r->last_error, sizeof(r->last_error), "%s", m->last_error);
    snprintf(r->dest, sizeof(r->dest), "%s", m->dest);
    snprintf(r->event, sizeof(r->event), "%s", m->event);
    snprintf(r->state, sizeof(r->state), "%s", m->state);
    snprintf(r->event_id, sizeof(r->event_id), "%s", m->event_id);
    r->ctx = wp_xstrdup(m->ctx);
    return 0;
}

static void rows_free(struct ob_rows *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        free(rs->r[i].ctx);
    }
    rs->n = 0;
}

/* The messages of incident inc in state (NULL: any), newest first, as "dest:event ..." */
static const char *rows_of(struct outbox *ob, int64_t inc, const char *state, struct ob_rows *rs,
                           char *buf, size_t len)
{
    rows_free(rs);
    rs->inc = inc;
    assert_true(outbox_list(ob, state, 1000, row_cb, rs) >= 0);
    buf[0] = '\0';
    for (size_t i = 0; i < rs->n; i++) {
        snprintf(buf + strlen(buf), len - strlen(buf), "%s%s:%s", i > 0 ? " " : "",
                 rs->r[i].dest, rs->r[i].event);
    }
    return buf;
}

/* An incident that opened suppressed (maintenance, a silent host, a parent rule) is announced
 * when the suppression lifts while it is still open: once per destination, only to those
 * never told of it, as "open" (or "reopen" to those told that it had ended). */
static void outbox_after_suppression(void **state)
{
    (void)state;
    char *path = wp_xasprintf("%s/suppressed.db", tmpdir);
    char *yaml = wp_xasprintf(
        "destinations:\n"
        "  - {name: desk, kind: webhook, url: 'http://x/',\n"
        "     requests: {open: {body: '{\"t\": {event_text}, \"e\": {event}}'},\n"
        "                update: {body: '{}'}, resolve: {body: '{}'}}}\n"
        "  - {name: pd, kind: pagerduty, url: 'http://pd/', secret_file: %s}\n"
        "routes:\n  - {priorities: [P1, P2], to: [desk, pd]}\n",
        secret_path);
    struct notify_conf *c = decode_ok(yaml);
    free(yaml);
    struct inc_store *st = NULL;
    struct outbox *ob = NULL;
    struct ob_rows rs = {0};
    struct inc_row row;
    struct notify_request rq;
    char buf[512], why[256], err[256];
    int64_t a = 0, b = 0, cc = 0, d = 0, e = 0, f = 0;
    const int64_t t0 = 1796026021000; /* 2026-11-30T08:07:01Z */

    assert_int_equal(inc_open(path, NULL, &st), 0);
    assert_int_equal(outbox_open(path, c, &ob), 0);
    struct inc_signal sig = {.fingerprint = "a|h", .rule = "r", .host = "h", .impact = 1,
                             .urgency = 1, .category = "c", .summary = "opened in maintenance",
                             .values_json = "{}"};

    /* opened inside a maintenance window: the open is skipped */
    assert_int_equal(inc_fire(st, &sig, t0, &a), 1);
    assert_int_equal(inc_suppress(st, "a|h", 1, "maintenance DB patching", t0), 0);
    assert_int_equal(outbox_generate(ob, t0 + 1000, 100), 0);
    assert_string_equal(rows_of(ob, a, "skipped", &rs, buf, sizeof(buf)), "pd:open desk:open");
    /* the window ends, the problem is still there: each destination gets the open now */
    assert_int_equal(inc_suppress(st, "a|h", 0, "no longer", t0 + 60000), 0);
    assert_int_equal(outbox_generate(ob, t0 + 61000, 100), 2);
    assert_string_equal(rows_of(ob, a, "queued", &rs, buf, sizeof(buf)), "pd:open desk:open");
    for (size_t i = 0; i < rs.n; i++) {
        char want[64];
        snprintf(want, sizeof(want), "%s-%lld-", rs.r[i].dest, (long long)a);
        assert_true(strncmp(rs.r[i].event_id, want, strlen(want)) == 0);
        assert_non_null(strstr(rs.r[i].ctx, "maintenance DB patching"));
        assert_non_null(strstr(rs.r[i].ctx, "2026-11-30T08:08:01Z"));
    }
    struct outbox_msg m;
    memset(&m, 0, sizeof(m));
    m.id = 1;
    m.incident_id = a;
    m.event = rs.r[1].event;
    m.event_id = rs.r[1].event_id;
    m.ctx = rs.r[1].ctx;
    assert_int_equal(notify_render(c, &c->dests[0], &m, "", &rq, why, sizeof(why)), 0);
    json_t *body = json_loads(rq.body, 0, NULL);
    assert_non_null(body); /* the desk's open request, telling why it comes late */
    assert_string_equal(json_string_value(json_object_get(body, "e")), "open");
    assert_non_null(strstr(json_string_value(json_object_get(body, "t")),
                           "nothing was sent while it was suppressed"));
    json_decref(body);
    notify_request_free(&rq);
    m.event = rs.r[0].event;
    m.event_id = rs.r[0].event_id;
    m.ctx = rs.r[0].ctx;
    assert_int_equal(notify_render(c, &c->dests[1], &m, "", &rq, why, sizeof(why)), 0);
    body = json_loads(rq.body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(body, "event_action")), "trigger");
    assert_string_equal(json_string_value(json_object_get(body, "dedup_key")), "a|h");
    json_decref(body);
    notify_request_free(&rq);
    /* suppressed and unsuppressed again (a parent rule): nothing twice */
    assert_int_equal(inc_suppress(st, "a|h", 1, "parent on h", t0 + 70000), 0);
    assert_int_equal(inc_suppress(st, "a|h", 0, "no longer", t0 + 80000), 0);
    assert_int_equal(outbox_generate(ob, t0 + 81000, 100), 0);
    assert_string_equal(rows_of(ob, a, NULL, &rs, buf, sizeof(buf)),
                        "pd:open desk:open pd:open desk:open");

    /* notified before its suppression: nothing when it lifts */
    sig.fingerprint = "b|h";
    assert_int_equal(inc_fire(st, &sig, t0 + 90000, &b), 1);
    assert_int_equal(outbox_generate(ob, t0 + 91000, 100), 2);
    assert_int_equal(inc_suppress(st, "b|h", 1, "maintenance DB patching", t0 + 92000), 0);
    assert_int_equal(inc_suppress(st, "b|h", 0, "no longer", t0 + 93000), 0);
    assert_int_equal(outbox_generate(ob, t0 + 94000, 100), 0);
    assert_string_equal(rows_of(ob, b, NULL, &rs, buf, sizeof(buf)), "pd:open desk:open");

    /* resolved while suppressed: the resolve goes out as before; when it fires again after
     * the window its reopen is the first the destinations hear of it: an open */
    sig.fingerprint = "c|h";
    assert_int_equal(inc_fire(st, &sig, t0 + 100000, &cc), 1);
    assert_int_equal(inc_suppress(st, "c|h", 1, "maintenance DB patching", t0 + 100000), 0);
    assert_int_equal(inc_clear(st, "c|h", t0 + 110000), 0);
    assert_int_equal(outbox_generate(ob, t0 + 111000, 100), 2);
    assert_string_equal(rows_of(ob, cc, "queued", &rs, buf, sizeof(buf)),
                        "pd:resolve desk:resolve");
    assert_int_equal(inc_fire(st, &sig, t0 + 120000, NULL), 1); /* reopened */
    memset(&row, 0, sizeof(row));
    assert_int_equal(inc_find_open(st, "c|h", &row), 0);
    assert_int_equal(row.suppressed, 0); /* the rules engine suppresses it again if need be */
    inc_row_cleanup(&row);
    assert_int_equal(outbox_generate(ob, t0 + 121000, 100), 2);
    assert_string_equal(rows_of(ob, cc, "queued", &rs, buf, sizeof(buf)),
                        "pd:open desk:open pd:resolve desk:resolve");

    /* told, resolved, reopened inside a window: a reopen when the window ends */
    sig.fingerprint = "d|h";
    assert_int_equal(inc_fire(st, &sig, t0 + 130000, &d), 1);
    assert_int_equal(inc_clear(st, "d|h", t0 + 131000), 0);
    assert_int_equal(outbox_generate(ob, t0 + 132000, 100), 4);
    assert_int_equal(inc_fire(st, &sig, t0 + 133000, NULL), 1);
    assert_int_equal(inc_suppress(st, "d|h", 1, "maintenance DB patching", t0 + 133000), 0);
    assert_int_equal(outbox_generate(ob, t0 + 134000, 100), 0);
    assert_int_equal(inc_suppress(st, "d|h", 0, "no longer", t0 + 135000), 0);
    assert_int_equal(outbox_generate(ob, t0 + 136000, 100), 2);
    assert_string_equal(rows_of(ob, d, NULL, &rs, buf, sizeof(buf)),
                        "pd:reopen desk:reopen pd:reopen desk:reopen pd:resolve desk:resolve "
                        "pd:open desk:open");
    assert_string_equal(rs.r[0].state, "queued");
    assert_string_equal(rs.r[2].state, "skipped");

    /* acknowledged while suppressed: someone has it, no open afterwards (the ack went out) */
    sig.fingerprint = "e|h";
    assert_int_equal(inc_fire(st, &sig, t0 + 140000, &e), 1);
    assert_int_equal(inc_suppress(st, "e|h", 1, "maintenance DB patching", t0 + 140000), 0);
    assert_int_equal(inc_ack(st, e, "alice", "patching it", t0 + 141000, err, sizeof(err)), 0);
    assert_int_equal(outbox_generate(ob, t0 + 142000, 100), 2);
    assert_int_equal(inc_suppress(st, "e|h", 0, "no longer", t0 + 143000), 0);
    assert_int_equal(outbox_generate(ob, t0 + 144000, 100), 0);
    assert_string_equal(rows_of(ob, e, "queued", &rs, buf, sizeof(buf)), "pd:ack desk:ack");

    /* suppressed again before the outbox looked: nothing yet, the open comes with the next
     * lift */
    sig.fingerprint = "f|h";
    assert_int_equal(inc_fire(st, &sig, t0 + 150000, &f), 1);
    assert_int_equal(inc_suppress(st, "f|h", 1, "host h silent (host_silent)", t0 + 150000), 0);
    assert_int_equal(inc_suppress(st, "f|h", 0, "no longer", t0 + 151000), 0);
    assert_int_equal(inc_suppress(st, "f|h", 1, "maintenance DB patching", t0 + 152000), 0);
    assert_int_equal(outbox_generate(ob, t0 + 153000, 100), 0);
    assert_int_equal(inc_suppress(st, "f|h", 0, "no longer", t0 + 154000), 0);
    assert_int_equal(outbox_generate(ob, t0 + 155000, 100), 2);
    assert_string_equal(rows_of(ob, f, "queued", &rs, buf, sizeof(buf)), "pd:open desk:open");
    assert_non_null(strstr(rs.r[0].ctx, "maintenance DB patching"));

    /* the window ended while the collector was down: lifted at its first pass after the
     * restart (rules_eval.c), and the text says so */
    int64_t g = 0;
    sig.fingerprint = "g|h";
    assert_int_equal(inc_fire(st, &sig, t0 + 160000, &g), 1);
    assert_int_equal(inc_suppress(st, "g|h", 1, "maintenance DB patching", t0 + 160000), 0);
    assert_int_equal(outbox_generate(ob, t0 + 161000, 100), 0);
    assert_int_equal(
        inc_suppress(st, "g|h", 0, "suppression ended while the collector was down", t0 + 170000),
        0);
    assert_int_equal(outbox_generate(ob, t0 + 171000, 100), 2);
    assert_string_equal(rows_of(ob, g, "queued", &rs, buf, sizeof(buf)), "pd:open desk:open");
    assert_non_null(strstr(rs.r[0].ctx, "(maintenance DB patching, since 2026-11-30T08:09:41Z) "
                                        "ended while the collector was down (noticed at "
                                        "2026-11-30T08:09:51Z)"));

    rows_free(&rs);
    outbox_close(ob);
    inc_close(st);
    notify_conf_free(&c, NULL);
    free(path);
}

/* ---- retention --------------------------------------------------------------------------- */

static void queue_report(struct outbox *ob, const char *event_id, int64_t now)
{
    assert_int_equal(outbox_queue_rendered(ob, event_id, "desk", "weekly/2026-W48", "report", "{}",
                                           "POST", "http://x/", "", "body", 4, NULL, now),
                     0);
}

/* The id of the newest message of incident inc (0: reports) with this event_id prefix. */
static int64_t msg_id(struct outbox *ob, int64_t inc, const char *event, struct ob_rows *rs)
{
    char buf[512];
    rows_of(ob, inc, NULL, rs, buf, sizeof(buf));
    for (size_t i = 0; i < rs->n; i++) {
        if (strcmp(rs->r[i].event, event) == 0) {
            return rs->r[i].id;
        }
    }
    fail_msg("no %s message of incident %lld", event, (long long)inc);
    return 0;
}

/* Finished messages go after `keep`, dead letters after `keep_dead`, queued ones never; of an
 * incident's history the newest messages that tell what a destination was told stay, so an
 * announcement after a suppression or a reopen is still right after a prune. */
static void outbox_retention(void **state)
{
    (void)state;
    char *path = wp_xasprintf("%s/retention.db", tmpdir);
    struct notify_conf *c = decode_ok(
        "destinations:\n"
        "  - {name: desk, kind: webhook, url: 'http://x/',\n"
        "     requests: {open: {body: '{}'}, update: {body: '{}'}, resolve: {body: '{}'}}}\n"
        "routes:\n  - {to: [desk]}\n");
    struct inc_store *st = NULL;
    struct outbox *ob = NULL;
    struct ob_rows rs = {0};
    char buf[512], err[256];
    int64_t a = 0, b = 0;
    int more = -1;
    const int64_t day = 86400000, keep = 35 * day, keep_dead = 90 * day;
    const int64_t t0 = 1796026021000;

    assert_int_equal(c->keep_ms, keep); /* the defaults */
    assert_int_equal(c->keep_dead_ms, keep_dead);
    assert_int_equal(inc_open(path, NULL, &st), 0);
    assert_int_equal(outbox_open(path, c, &ob), 0);
    struct inc_signal sig = {.fingerprint = "a|h", .rule = "r", .host = "h", .impact = 1,
                             .urgency = 1, .category = "c", .summary = "s", .values_json = "{}"};

    /* a queued open is never pruned, however old */
    assert_int_equal(inc_fire(st, &sig, t0, &a), 1);
    assert_int_equal(outbox_generate(ob, t0, 100), 1);
    assert_int_equal(outbox_prune(ob, t0 + 1000 * day, keep, keep_dead, 100, &more), 0);
    assert_int_equal(more, 0);
    assert_string_equal(rows_of(ob, a, "queued", &rs, buf, sizeof(buf)), "desk:open");
    /* open, ack, resolve: sent */
    assert_int_equal(outbox_sent(ob, msg_id(ob, a, "open", &rs), 200, "", t0 + 1000), 0);
    assert_int_equal(inc_ack(st, a, "alice", "on it", t0 + 2000, err, sizeof(err)), 0);
    assert_int_equal(outbox_generate(ob, t0 + 2000, 100), 1);
    /* while the ack is queued nothing of (desk, a) goes: delivery order, open state */
    assert_int_equal(outbox_prune(ob, t0 + 100 * day, keep, keep_dead, 100, &more), 0);
    assert_int_equal(outbox_sent(ob, msg_id(ob, a, "ack", &rs), 200, "", t0 + 3000), 0);
    assert_int_equal(inc_clear(st, "a|h", t0 + 4000), 0);
    assert_int_equal(outbox_generate(ob, t0 + 4000, 100), 1);
    assert_int_equal(outbox_sent(ob, msg_id(ob, a, "resolve", &rs), 200, "", t0 + 5000), 0);
    assert_string_equal(rows_of(ob, a, "sent", &rs, buf, sizeof(buf)),
                        "desk:resolve desk:ack desk:open");
    /* younger than keep: nothing */
    assert_int_equal(outbox_prune(ob, t0 + keep - day, keep, keep_dead, 100, &more), 0);
    assert_string_equal(rows_of(ob, a, "sent", &rs, buf, sizeof(buf)),
                        "desk:resolve desk:ack desk:open");
    /* older: the ack goes; the open (what announced it, and the open a follow-up's ticket
     * came from) and the resolve (what ended it) stay */
    assert_int_equal(outbox_prune(ob, t0 + keep + day, keep, keep_dead, 100, &more), 1);
    assert_int_equal(more, 0);
    assert_string_equal(rows_of(ob, a, NULL, &rs, buf, sizeof(buf)), "desk:resolve desk:open");
    assert_int_equal(outbox_prune(ob, t0 + 1000 * day, keep, keep_dead, 100, &more), 0);
    /* it fires again within the reopen window (the prune above ran as if it were later: the
     * store keeps no clock): the desk knew it ended, so a reopen, not a second open */
    int64_t a2 = 0;
    assert_int_equal(inc_fire(st, &sig, t0 + 6000, &a2), 1);
    assert_int_equal(a2, a);
    assert_int_equal(outbox_generate(ob, t0 + 6000, 100), 1);
    assert_string_equal(rows_of(ob, a, "queued", &rs, buf, sizeof(buf)), "desk:reopen");

    /* an incident opened during maintenance, its open skipped and pruned: the lift still
     * announces it (nothing announced it), once; after a second suppression and a prune that
     * keeps the open that went out, nothing again */
    sig.fingerprint = "b|h";
    assert_int_equal(inc_fire(st, &sig, t0 + 10000, &b), 1);
    assert_int_equal(inc_suppress(st, "b|h", 1, "maintenance DB patching", t0 + 10000), 0);
    assert_int_equal(outbox_generate(ob, t0 + 11000, 100), 0);
    assert_string_equal(rows_of(ob, b, "skipped", &rs, buf, sizeof(buf)), "desk:open");
    assert_int_equal(outbox_prune(ob, t0 + keep + day, keep, keep_dead, 100, &more), 1);
    assert_string_equal(rows_of(ob, b, NULL, &rs, buf, sizeof(buf)), "");
    assert_int_equal(inc_suppress(st, "b|h", 0, "no longer", t0 + 20000), 0);
    assert_int_equal(outbox_generate(ob, t0 + 20000, 100), 1);
    assert_string_equal(rows_of(ob, b, "queued", &rs, buf, sizeof(buf)), "desk:open");
    assert_int_equal(outbox_sent(ob, msg_id(ob, b, "open", &rs), 200, "", t0 + 21000), 0);
    assert_int_equal(inc_suppress(st, "b|h", 1, "parent on h", t0 + 30000), 0);
    assert_int_equal(inc_suppress(st, "b|h", 0, "no longer", t0 + 31000), 0);
    assert_int_equal(outbox_prune(ob, t0 + 3 * keep, keep, keep_dead, 100, &more), 0);
    assert_int_equal(outbox_generate(ob, t0 + 32000, 100), 0);
    assert_string_equal(rows_of(ob, b, NULL, &rs, buf, sizeof(buf)), "desk:open");

    /* report mails (incident 0): sent ones go after keep, a dead letter after keep_dead, a
     * queued one never */
    const int64_t t1 = t0 + 400 * day;
    queue_report(ob, "r-sent", t1);
    queue_report(ob, "r-dead", t1);
    queue_report(ob, "r-queued", t1);
    rows_of(ob, 0, NULL, &rs, buf, sizeof(buf));
    assert_int_equal(rs.n, 3);
    assert_int_equal(outbox_sent(ob, rs.r[2].id, 250, "", t1 + 1000), 0);
    assert_int_equal(outbox_dead(ob, rs.r[1].id, 550, "mailbox full", t1 + 1000), 0);
    assert_int_equal(outbox_prune(ob, t1 + keep + day, keep, keep_dead, 100, &more), 1);
    assert_string_equal(rows_of(ob, 0, "dead", &rs, buf, sizeof(buf)), "desk:report");
    assert_int_equal(outbox_prune(ob, t1 + keep_dead - day, keep, keep_dead, 100, &more), 0);
    assert_int_equal(outbox_prune(ob, t1 + keep_dead + day, keep, keep_dead, 100, &more), 1);
    assert_string_equal(rows_of(ob, 0, NULL, &rs, buf, sizeof(buf)), "desk:report");
    assert_string_equal(rs.r[0].state, "queued");

    /* bounded batches: at most max a call, and whether there is more */
    const int64_t t2 = t1 + 10 * day;
    for (int i = 0; i < 5; i++) {
        char ev[32];
        snprintf(ev, sizeof(ev), "batch-%d", i);
        queue_report(ob, ev, t2);
    }
    rows_of(ob, 0, "queued", &rs, buf, sizeof(buf));
    assert_int_equal(rs.n, 6);
    for (size_t i = 0; i < 5; i++) { /* newest first: all but r-queued */
        assert_int_equal(outbox_sent(ob, rs.r[i].id, 250, "", t2 + 1000), 0);
    }
    /* a call looks at 2 messages: the pass over the table takes several, each deleting at
     * most 2, the last one saying it is through */
    int calls = 0, deleted = 0, rc;
    do {
        rc = outbox_prune(ob, t2 + keep + day, keep, keep_dead, 2, &more);
        assert_true(rc >= 0 && rc <= 2);
        deleted += rc;
        calls++;
    } while (more && calls < 100);
    assert_int_equal(more, 0);
    assert_int_equal(deleted, 5);
    assert_true(calls >= 3);
    assert_int_equal(outbox_prune(ob, t2 + keep + day, keep, keep_dead, 100, &more), 0);
    assert_string_equal(rows_of(ob, 0, NULL, &rs, buf, sizeof(buf)), "desk:report");
    assert_string_equal(rs.r[0].event_id, "r-queued");

    rows_free(&rs);
    outbox_close(ob);
    inc_close(st);
    notify_conf_free(&c, NULL);
    free(path);
}

/* ---- follow-ups of a ticket that was never created ---------------------------------------- */

struct tlx {
    char text[8192]; /* "kind: text\n"... */
};

static int tlx_cb(void *arg, int64_t at, const char *kind, const char *by, const char *text)
{
    struct tlx *t = arg;
    (void)at;
    (void)by;
    snprintf(t->text + strlen(t->text), sizeof(t->text) - strlen(t->text), "%s: %s\n", kind, text);
    return 0;
}

static void stopped(void *arg)
{
    *(int *)arg = 1;
}

/* Pump the delivery worker until nothing of incident inc is queued (bounded). */
static void pump_until_done(struct deliver *dl, struct outbox *ob, int64_t inc)
{
    struct ob_rows rs = {0};
    char buf[512];
    for (int i = 0; i < 20; i++) {
        deliver_pump(dl, wp_clock_now_ms());
        if (rows_of(ob, inc, "queued", &rs, buf, sizeof(buf))[0] == '\0') {
            rows_free(&rs);
            return;
        }
    }
    fail_msg("incident %lld: still queued after 20 pumps: %s", (long long)inc, buf);
}

/* An acknowledgement or resolution for a ticket its destination never got (the open was
 * skipped while the incident was suppressed) is skipped at delivery with the reason on the
 * timeline: no dead letter, no notify_dead_letter incident. When the open went out or was
 * given up, a follow-up without a ticket id is still a dead letter. */
static void ticketless_followups(void **state)
{
    (void)state;
    char *path = wp_xasprintf("%s/ticketless.db", tmpdir);
    /* nothing listens at port 9: this test must never send a request */
    char *yaml = wp_xasprintf(
        "domain: noc.test\n"
        "destinations:\n"
        "  - {name: rt, kind: rt, url: 'http://127.0.0.1:9', queue: NOC, secret_file: %s}\n"
        "  - name: desk\n"
        "    kind: webhook\n"
        "    url: 'http://127.0.0.1:9/api/tickets'\n"
        "    events: [open, ack, resolve]\n"
        "    requests:\n"
        "      open: {body: '{\"t\": {summary}}'}\n"
        "      update: {url: 'http://127.0.0.1:9/api/tickets/{remote_id}/notes',"
        " body: '{\"x\": {event_text}}'}\n"
        "    store: id\n"
        "routes:\n  - {priorities: [P1, P2], to: [rt, desk]}\n",
        secret_path);
    struct notify_conf *c = decode_ok(yaml);
    free(yaml);
    struct inc_store *st = NULL;
    struct outbox *ob = NULL;
    struct deliver *dl = NULL;
    struct ob_rows rs = {0};
    struct inc_row row;
    struct tlx t;
    uv_loop_t loop;
    char buf[512], err[256];
    int64_t a = 0, b = 0;
    int64_t now = wp_clock_now_ms();

    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(inc_open(path, NULL, &st), 0);
    assert_int_equal(outbox_open(path, c, &ob), 0);
    assert_int_equal(deliver_start(&loop, c, ob, st, &dl), 0);
    struct inc_signal sig = {.fingerprint = "a|h", .rule = "r", .host = "h", .impact = 1,
                             .urgency = 1, .category = "c", .summary = "in maintenance",
                             .values_json = "{}"};

    /* opened in a maintenance window (its open skipped), acknowledged and resolved in it */
    assert_int_equal(inc_fire(st, &sig, now - 5000, &a), 1);
    assert_int_equal(inc_suppress(st, "a|h", 1, "maintenance DB patching", now - 5000), 0);
    assert_int_equal(inc_ack(st, a, "alice", "patching", now - 4000, err, sizeof(err)), 0);
    assert_int_equal(inc_clear(st, "a|h", now - 3000), 0);
    pump_until_done(dl, ob, a);
    assert_string_equal(rows_of(ob, a, NULL, &rs, buf, sizeof(buf)),
                        "rt:resolve desk:ack rt:ack desk:open rt:open"); /* desk: no resolve */
    for (size_t i = 0; i < rs.n; i++) {
        assert_string_equal(rs.r[i].state, "skipped");
    }
    assert_string_equal(rs.r[0].last_error, "no ticket at rt: the incident's open was never sent");
    assert_string_equal(rs.r[1].last_error,
                        "no ticket at desk: the incident's open was never sent");
    memset(&t, 0, sizeof(t));
    assert_int_equal(inc_timeline(st, a, tlx_cb, &t), 0);
    assert_non_null(strstr(t.text, "notify skipped: ack to rt not sent: no ticket at rt: the "
                                   "incident's open was never sent"));
    assert_non_null(strstr(t.text, "notify skipped: resolve to rt not sent: no ticket at rt"));
    assert_non_null(strstr(t.text, "notify skipped: ack to desk not sent: no ticket at desk"));
    assert_null(strstr(t.text, "notify dead"));
    memset(&row, 0, sizeof(row));
    assert_int_equal(inc_find_open(st, "notify_dead_letter|noc.test|dest=rt", &row), WP_ENOTFOUND);
    assert_int_equal(inc_find_open(st, "notify_dead_letter|noc.test|dest=desk", &row),
                     WP_ENOTFOUND);

    /* an open that was given up (a 4xx): the ack after it is a dead letter, as before */
    sig.fingerprint = "b|h";
    assert_int_equal(inc_fire(st, &sig, now - 2000, &b), 1);
    assert_int_equal(outbox_generate(ob, now - 2000, 100), 2);
    assert_string_equal(rows_of(ob, b, "queued", &rs, buf, sizeof(buf)), "desk:open rt:open");
    for (size_t i = 0; i < rs.n; i++) {
        assert_int_equal(outbox_dead(ob, rs.r[i].id, 400, "HTTP 400: no such queue", now - 1500),
                         0);
    }
    assert_int_equal(inc_ack(st, b, "bob", "on it", now - 1000, err, sizeof(err)), 0);
    pump_until_done(dl, ob, b);
    assert_string_equal(rows_of(ob, b, "dead", &rs, buf, sizeof(buf)),
                        "desk:ack rt:ack desk:open rt:open");
    assert_non_null(strstr(rs.r[1].last_error, "no RT ticket is known"));
    assert_non_null(strstr(rs.r[1].last_error, ") is dead"));
    assert_int_equal(inc_find_open(st, "notify_dead_letter|noc.test|dest=rt", &row), 0);
    inc_row_cleanup(&row);

    int done = 0;
    deliver_stop(dl, stopped, &done);
    for (int i = 0; i < 100 && !done; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    assert_true(done);
    assert_int_equal(uv_loop_close(&loop), 0);
    rows_free(&rs);
    outbox_close(ob);
    inc_close(st);
    notify_conf_free(&c, NULL);
    free(path);
}

static int setup(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(tmpdir));
    snprintf(secret_path, sizeof(secret_path), "%s/secret", tmpdir);
    FILE *f = fopen(secret_path, "w");
    assert_non_null(f);
    fputs("s3cr3t\n", f);
    fclose(f);
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(config_errors),    cmocka_unit_test(routing),
        cmocka_unit_test(webhook_templates), cmocka_unit_test(pagerduty_body),
        cmocka_unit_test(outbox_cursor),
        cmocka_unit_test(outbox_after_suppression),
        cmocka_unit_test(ticketless_followups),
        cmocka_unit_test(outbox_retention),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
