/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for the rules loader: the input is a rules file. Every error must be a
 * positioned message naming the file; every loaded set must be consistent (kinds, levels,
 * references) and usable by the engine: a few samples and events go through it. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"
#include "rules_eval.h"
#include "wp/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_rules: invariant broken: %s\n", what);
        abort();
    }
}

static int f_fire(void *arg, const struct inc_signal *sig, int64_t now)
{
    (void)arg;
    (void)now;
    check(sig->fingerprint != NULL && sig->summary != NULL, "signals carry a fingerprint");
    check(sig->impact >= 1 && sig->impact <= 3 && sig->urgency >= 1 && sig->urgency <= 3,
          "levels in range");
    return 0;
}

static int f_clear(void *arg, const char *fp, int64_t now)
{
    (void)arg;
    (void)now;
    check(fp != NULL, "clears carry a fingerprint");
    return 0;
}

static int f_suppress(void *arg, const char *fp, int on, const char *reason, int64_t now)
{
    (void)arg;
    (void)now;
    (void)on;
    check(fp != NULL && reason != NULL, "suppressions carry a reason");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rule_set *rs = NULL;
    struct wp_conf_err err;

    memset(&err, 0, sizeof(err));
    int rc = rules_parse("fuzz.yaml", (const char *)data, size, &err, &rs);
    if (rc < 0) {
        check(rs == NULL, "no rule set on error");
        check(strncmp(err.msg, "fuzz.yaml", 9) == 0, "errors name the file");
        return 0;
    }
    check(rs != NULL, "a rule set on success");
    for (size_t i = 0; i < rs->nrules; i++) {
        const struct rule *r = &rs->rules[i];
        check(r->name != NULL && r->name[0] != '\0', "rules have names");
        check(r->kind >= RULE_THRESHOLD && r->kind <= RULE_KIND_LAST, "kind in range");
        check(r->impact >= RULE_HIGH && r->impact <= RULE_LOW, "impact in range");
        check(r->urgency >= RULE_HIGH && r->urgency <= RULE_LOW, "urgency in range");
        check(r->for_ms >= 0 && r->recover_for_ms >= 0, "durations not negative");
        check(r->kind != RULE_THRESHOLD || r->metric != NULL, "thresholds have a metric");
        check(r->kind != RULE_LOG || r->log_re != NULL, "log rules have a compiled pattern");
        for (size_t j = 0; j < i; j++) {
            check(strcmp(rs->rules[j].name, r->name) != 0, "names are unique");
        }
    }
    /* the engine takes whatever the loader accepted */
    struct rules_sink sink = {.fire = f_fire, .clear = f_clear, .suppress = f_suppress};
    struct rules_eng *e = rules_eng_new(rs, &sink);
    int64_t t0 = 1767225600000LL;
    struct rules_host *h = rules_eng_host(e, "db-1", "db-1", NULL, t0);
    for (size_t i = 0; i < rs->nrules && i < 16; i++) {
        const struct rule *r = &rs->rules[i];
        if (r->metric == NULL) {
            continue;
        }
        struct rules_series *se = rules_eng_series(e, h, r->metric, "/u01");
        for (int k = 0; k < 8 && se != NULL; k++) {
            rules_sample(e, se, t0 + k * 10000LL, k % 2 ? 1e9 : -1e9);
        }
    }
    rules_log(e, h, "/u01/alert_orcl.log", "ORA-00600: internal error", t0 + 1000);
    rules_line(e, h, "8001", "ivr", "blocked", t0 + 2000);
    rules_check(e, h, "sip_hotline", CHECK_CRITICAL, "no answer", t0 + 3000);
    rules_eng_tick(e, t0 + 86400000LL);
    rules_eng_free(e);
    rules_free(rs);
    return 0;
}
