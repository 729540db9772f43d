/* SPDX-License-Identifier: Apache-2.0 */
/* The Request Tracker adapter's requests and answers (notify_render.c; docs/RT.md): the create
 * with queue, priority and the correlation custom field, comments (status on resolve), the
 * reconcile search (TicketSQL on the key field, lowest id first), the ids in RT's answers and
 * RT's 201 that did not change the status. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka needs these first, in this order */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <jansson.h>

#include "notify_render.h"
#include "wp/err.h"

static char name[] = "rt", url[] = "http://127.0.0.1:8999/", secret[] = "1-31-abc",
            queue[] = "NOC", key_field[] = "Watchpost-Key", domain[] = "noc.test";

static struct notify_dest rt_dest(void)
{
    struct notify_dest d;
    memset(&d, 0, sizeof(d));
    d.name = name;
    d.kind = NOTIFY_RT;
    d.url = url;
    d.secret = secret;
    d.queue = queue;
    d.key_field = key_field;
    return d;
}

static struct notify_conf conf(struct notify_dest *d)
{
    struct notify_conf c;
    memset(&c, 0, sizeof(c));
    c.domain = domain;
    c.dests = d;
    c.ndests = 1;
    return c;
}

static struct outbox_msg msg(const char *event)
{
    static char ctx[512];
    struct outbox_msg m;
    memset(&m, 0, sizeof(m));
    snprintf(ctx, sizeof(ctx),
             "{\"id\": 7, \"priority\": 1, \"summary\": \"vm sends nothing\", \"host\": \"vm\","
             " \"event\": \"%s\", \"event_by\": \"rule\", \"event_text\": \"condition\","
             " \"values\": {}}",
             event);
    m.id = 1;
    m.event_id = "rt-7-3";
    m.dest = "rt";
    m.event = event;
    m.incident_id = 7;
    m.ctx = ctx;
    return m;
}

static void test_create(void **state)
{
    (void)state;
    struct notify_dest d = rt_dest();
    struct notify_conf c = conf(&d);
    struct outbox_msg m = msg("open");
    struct notify_request rq;
    char why[256];

    assert_int_equal(notify_render(&c, &d, &m, "", &rq, why, sizeof(why)), 0);
    assert_string_equal(rq.method, "POST");
    assert_string_equal(rq.url, "http://127.0.0.1:8999/REST/2.0/ticket");
    assert_non_null(strstr(rq.headers, "Authorization: token 1-31-abc\n"));
    assert_non_null(strstr(rq.headers, "Content-Type: application/json\n"));
    json_t *b = json_loadb(rq.body, rq.body_len, 0, NULL);
    assert_non_null(b);
    assert_string_equal(json_string_value(json_object_get(b, "Queue")), "NOC");
    assert_int_equal(json_integer_value(json_object_get(b, "Priority")), 90);
    assert_string_equal(json_string_value(json_object_get(b, "Subject")),
                        "[INC-7] P1 vm sends nothing");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(b, "CustomFields"), "Watchpost-Key")),
        "noc.test/INC-7");
    assert_string_equal(json_string_value(json_object_get(b, "ContentType")), "text/plain");
    json_decref(b);
    notify_request_free(&rq);
    /* RT's answer: the id is a string */
    char id[32];
    const char *ans = "{\"type\":\"ticket\",\"_url\":\"http://x/REST/2.0/ticket/12\",\"id\":\"12\"}";
    assert_int_equal(notify_json_pick(ans, strlen(ans), notify_store_path(&d), id, sizeof(id)), 0);
    assert_string_equal(id, "12");
}

static void test_comments(void **state)
{
    (void)state;
    struct notify_dest d = rt_dest();
    struct notify_conf c = conf(&d);
    struct notify_request rq;
    char why[256];
    static const struct {
        const char *ev, *status;
    } cases[] = {{"escalate", NULL}, {"ack", NULL}, {"resolve", "resolved"},
                 {"close", "resolved"}, {"reopen", "open"}};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct outbox_msg m = msg(cases[i].ev);
        assert_int_equal(notify_render(&c, &d, &m, "12", &rq, why, sizeof(why)), 0);
        assert_string_equal(rq.method, "POST");
        assert_string_equal(rq.url, "http://127.0.0.1:8999/REST/2.0/ticket/12/comment");
        json_t *b = json_loadb(rq.body, rq.body_len, 0, NULL);
        assert_string_equal(json_string_value(json_object_get(b, "ContentType")), "text/plain");
        assert_non_null(strstr(json_string_value(json_object_get(b, "Content")), "[INC-7] P1"));
        const char *st = json_string_value(json_object_get(b, "Status"));
        if (cases[i].status == NULL) {
            assert_null(st);
        } else {
            assert_string_equal(st, cases[i].status);
        }
        json_decref(b);
        notify_request_free(&rq);
    }
    /* without a ticket id: refused (its open never went to RT) */
    struct outbox_msg m = msg("resolve");
    assert_int_equal(notify_render(&c, &d, &m, "", &rq, why, sizeof(why)), WP_ENOTFOUND);
}

static void test_search(void **state)
{
    (void)state;
    struct notify_dest d = rt_dest();
    struct notify_conf c = conf(&d);
    struct outbox_msg m = msg("open");
    struct notify_request rq;
    char why[256], id[32];

    assert_int_equal(notify_render_search(&c, &d, &m, &rq, why, sizeof(why)), 0);
    assert_string_equal(rq.method, "GET");
    /* 'CF.{Watchpost-Key}' = 'noc.test/INC-7', lowest id first */
    assert_string_equal(rq.url, "http://127.0.0.1:8999/REST/2.0/tickets?query="
                                "%27CF.%7BWatchpost-Key%7D%27%20%3D%20%27noc.test%2FINC-7%27"
                                "&orderby=id&order=ASC");
    assert_non_null(strstr(rq.headers, "Authorization: token 1-31-abc\n"));
    notify_request_free(&rq);

    const char *two = "{\"total\":2,\"count\":2,\"page\":1,\"items\":[{\"type\":\"ticket\","
                      "\"id\":\"3\",\"_url\":\"x\"},{\"type\":\"ticket\",\"id\":\"5\"}]}";
    assert_int_equal(notify_json_pick(two, strlen(two), notify_search_path(&d), id, sizeof(id)),
                     0);
    assert_string_equal(id, "3");
    const char *none = "{\"total\":0,\"count\":0,\"items\":[],\"pages\":0.0}";
    assert_int_equal(notify_json_pick(none, strlen(none), notify_search_path(&d), id, sizeof(id)),
                     WP_ENOTFOUND);
}

static int check(const struct notify_dest *d, const char *req, const char *resp, char *why,
                 size_t whylen)
{
    why[0] = '\0';
    return notify_response_check(d, req, strlen(req), resp, resp != NULL ? strlen(resp) : 0,
                                 why, whylen);
}

static void test_status_answer(void **state)
{
    (void)state;
    struct notify_dest d = rt_dest();
    char why[600];
    const char *resolve = "{\"Content\":\"x\",\"ContentType\":\"text/plain\",\"Status\":\"resolved\"}";
    const char *reopen = "{\"Content\":\"x\",\"ContentType\":\"text/plain\",\"Status\":\"open\"}";

    /* done (the answers of RT 5.0.3) */
    assert_int_equal(check(&d, resolve,
                           "[\n   \"Comments added\",\n"
                           "   \"Status changed from 'new' to 'resolved'\"\n]\n",
                           why, sizeof(why)),
                     0);
    assert_int_equal(check(&d, reopen, "[\"Comments added\",\"Status changed from 'resolved' to "
                                       "'open'\"]",
                           why, sizeof(why)),
                     0);
    /* already resolved (a retry, a close after the resolve): done too */
    assert_int_equal(check(&d, resolve, "[\"Comments added\",\"You can't change status from "
                                        "'resolved' to 'resolved'.\"]",
                           why, sizeof(why)),
                     0);
    /* refused, with 201 */
    assert_int_equal(check(&d, resolve, "[\"Comments added\",\"That ticket has unresolved "
                                        "dependencies\"]",
                           why, sizeof(why)),
                     -EPROTO);
    assert_non_null(strstr(why, "did not set Status resolved"));
    assert_non_null(strstr(why, "unresolved dependencies"));
    assert_int_equal(check(&d, resolve, "[\"Comments added\",\"Permission Denied\"]", why,
                           sizeof(why)),
                     -EPROTO);
    assert_int_equal(check(&d, resolve, "[\"Comments added\",\"You can't change status from "
                                        "'stalled' to 'resolved'.\"]",
                           why, sizeof(why)),
                     -EPROTO);
    assert_int_equal(check(&d, reopen, "[\"Comments added\",\"Status changed from 'new' to "
                                       "'resolved'\"]",
                           why, sizeof(why)),
                     -EPROTO);
    assert_int_equal(check(&d, resolve, "[\"Comments added\"]", why, sizeof(why)), -EPROTO);
    assert_int_equal(check(&d, resolve, "", why, sizeof(why)), -EPROTO);
    assert_int_equal(check(&d, resolve, "<html>ok</html>", why, sizeof(why)), -EPROTO);
    assert_int_equal(check(&d, resolve, NULL, why, sizeof(why)), -EPROTO);
    /* a comment without a status, a create: nothing to check */
    assert_int_equal(check(&d, "{\"Content\":\"x\",\"ContentType\":\"text/plain\"}",
                           "[\"Comments added\"]", why, sizeof(why)),
                     0);
    assert_int_equal(check(&d, "{\"Queue\":\"NOC\",\"Subject\":\"s\"}", "{\"id\":\"1\"}", why,
                           sizeof(why)),
                     0);
    /* other destinations: never */
    d.kind = NOTIFY_WEBHOOK;
    assert_int_equal(check(&d, "{\"Status\":\"resolved\"}", "[]", why, sizeof(why)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create),
        cmocka_unit_test(test_comments),
        cmocka_unit_test(test_search),
        cmocka_unit_test(test_status_answer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
